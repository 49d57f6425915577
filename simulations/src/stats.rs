//! Counters, samples and per-vote times collected during a run.

use crdt::sync::Path;
use serde::Serialize;

use crate::queue::Micros;

/// Totals over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Votes cast (simulated).
    pub cast: u64,
    /// Votes whose ack reached the client.
    pub acked: u64,
    /// Client retries (attempts after the first that were sent).
    pub retries: u64,
    /// Requests for a vote the node already held, acked again (idempotent).
    pub duplicate_requests: u64,
    /// Entries received from a peer that the node already held.
    pub redundant_entries: u64,
    /// Node-to-node messages sent (push and sync).
    pub messages: u64,
    /// Node-to-node bytes sent (push and sync), encoded.
    pub bytes: u64,
    /// Push messages sent.
    pub push_messages: u64,
    /// Push bytes sent.
    pub push_bytes: u64,
    /// Sync session messages sent.
    pub sync_messages: u64,
    /// Sync session bytes sent.
    pub sync_bytes: u64,
    /// Node-to-node messages lost (loss, partition, cut, drop, node down).
    pub dropped: u64,
    /// Group commits written to a baseline document (automerge changes,
    /// yrs transactions); 0 for votemesh and naive.
    pub group_commits: u64,
    /// Sessions started.
    pub sessions_started: u64,
    /// Sessions both sides finished.
    pub sessions_done: u64,
    /// Sessions abandoned (timeout, restart, error).
    pub sessions_abandoned: u64,
    /// Sessions whose machine returned an error.
    pub sync_errors: u64,
    /// Messages that failed to decode (must be 0).
    pub decode_errors: u64,
    /// Sessions that found equal digests.
    pub path_same: u64,
    /// Sessions reconciled with coded symbols.
    pub path_symbols: u64,
    /// Sessions where one side was empty (or naive full exchange).
    pub path_bulk: u64,
    /// Sessions that fell back to full hash lists.
    pub path_fallback: u64,
    /// Fallbacks that began when both sets were already equal: entries
    /// pushed while the session ran made the decoded difference empty
    /// though the digests in the hello differed.
    pub fallback_sets_equal: u64,
    /// Acked votes missing from the durable set of the node that acked them.
    pub lost: u64,
    /// Acked votes missing from some live node at the end.
    pub stale: u64,
    /// Votes a node accepted whose client never got an ack by the end.
    pub unacked_at_end: u64,
    /// Votes no node had accepted by the end (client still offline or retrying).
    pub pending_at_end: u64,
}

impl Counters {
    pub(crate) fn count_path(&mut self, path: Path) {
        match path {
            Path::Same => self.path_same += 1,
            Path::Symbols => self.path_symbols += 1,
            Path::Bulk => self.path_bulk += 1,
            _ => self.path_fallback += 1,
        }
    }
}

/// How large one node's replica of a poll is at the end of a run, over the
/// live nodes and polls.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// What was measured.
    pub measured: String,
    /// Replicas measured (live nodes times polls).
    pub replicas: u64,
    /// Entries per replica, mean.
    pub entries_mean: f64,
    /// Serialized replica, bytes, mean over replicas.
    pub serialized_bytes_mean: f64,
    /// Serialized replica, bytes, largest.
    pub serialized_bytes_max: u64,
}

/// One node at one sample time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Simulated time.
    pub at: Micros,
    /// The node.
    pub node: u32,
    /// Its region.
    pub region: u32,
    /// Whether it is running.
    pub up: bool,
    /// Entries held in memory.
    pub entries: u64,
    /// Accepted entries it does not hold (divergence from the truth).
    pub missing: u64,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Messages sent so far.
    pub messages_sent: u64,
}

/// When things happened to one vote.
#[derive(Debug, Clone, Copy, Default)]
pub struct VoteTimes {
    /// Cast by the client.
    pub cast: Micros,
    /// First stored by a node.
    pub accepted: Option<Micros>,
    /// Ack received by the client.
    pub acked: Option<Micros>,
    /// The node whose ack the client received.
    pub acked_by: u32,
    /// First time every node held it.
    pub first_everywhere: Option<Micros>,
    /// Last time every node held it (later than the first if a crash took
    /// it from a node's memory in between).
    pub everywhere: Option<Micros>,
}

/// The `q` quantile (0..=1) of `values`, sorted in place; `None` if empty.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * (values.len() - 1) as f64).round() as usize;
    Some(values[rank.min(values.len() - 1)])
}
