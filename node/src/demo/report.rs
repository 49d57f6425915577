//! The demo's result: printed as a table, or as one JSON object with `--json`.

use std::path::Path;

use serde::Serialize;

use super::cluster::{NodeProcess, NodeTally};

/// One candidate's row of the result.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) expected: u64,
    pub(crate) recounted: u64,
}

/// One node's state at the end, and the verifier's word on its export.
#[derive(Debug, Serialize)]
pub(crate) struct NodeRow {
    pub(crate) node: String,
    pub(crate) entries: u64,
    pub(crate) digest: String,
    /// The node's own tally equals the recount of its export.
    pub(crate) tally_matches_recount: bool,
    pub(crate) verified: bool,
    pub(crate) checks_failed: u64,
    pub(crate) counts: Vec<u64>,
    pub(crate) export: String,
}

impl NodeRow {
    pub(crate) fn new(
        node: &NodeProcess,
        tally: &NodeTally,
        report: &crdt::audit::Report,
        export: &Path,
    ) -> NodeRow {
        let counts = report
            .tally
            .as_ref()
            .map(|t| t.counts.clone())
            .unwrap_or_default();
        let digest = report.digest.map(|d| d.to_string()).unwrap_or_default();
        NodeRow {
            node: node.key.to_string(),
            entries: tally.entries,
            tally_matches_recount: tally.counts == counts && tally.digest == digest,
            digest,
            verified: report.verified(),
            checks_failed: report.checks.iter().map(|c| c.failed).sum(),
            counts,
            export: export.display().to_string(),
        }
    }
}

/// What the partition did.
#[derive(Debug, Serialize)]
pub(crate) struct Partition {
    /// 1-based index of the node cut off.
    pub(crate) cut_off_node: u32,
    pub(crate) votes_during_partition: u64,
    pub(crate) entries_on_cut_off_node: u64,
    pub(crate) entries_on_other_nodes: u64,
    /// From the heal until every node held the same entries.
    pub(crate) converged_after_heal_ms: u64,
    /// From the end of the replay until every node held every vote.
    pub(crate) final_settle_ms: u64,
}

/// What a live subscriber on a relay saw.
#[derive(Debug, Serialize)]
pub(crate) struct Live {
    pub(crate) relay: String,
    /// Updates received (coalesced: far fewer than votes).
    pub(crate) updates: u64,
    /// Version of the last update (the entry count).
    pub(crate) version: u64,
    pub(crate) counts_equal_recount: bool,
    pub(crate) digest_equal: bool,
}

/// The result, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) election: String,
    pub(crate) poll: String,
    pub(crate) ballots: u64,
    pub(crate) candidates: Vec<Row>,
    pub(crate) total: Row,
    pub(crate) all_rows_equal: bool,
    pub(crate) digests_equal: bool,
    pub(crate) digest: String,
    pub(crate) verified: bool,
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) partition: Option<Partition>,
    pub(crate) live: Live,
    pub(crate) votes_per_second: f64,
    pub(crate) ingest_seconds: f64,
    pub(crate) batch: u32,
    pub(crate) concurrency: u32,
    pub(crate) rejected: u64,
    pub(crate) duplicates: u64,
    pub(crate) retries: u64,
    pub(crate) receipts_verified: u64,
    pub(crate) retried_duplicates: u64,
    pub(crate) export: String,
}

impl Outcome {
    pub(crate) fn success(&self) -> bool {
        self.all_rows_equal
            && self.verified
            && self.digests_equal
            && self.nodes.iter().all(|n| n.tally_matches_recount)
            && self.live.counts_equal_recount
            && self.live.digest_equal
    }
}

pub(crate) fn print(o: &Outcome) {
    let width = o
        .candidates
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(9);
    println!();
    println!(
        "  {:<width$}  {:>9}  {:>9}",
        "candidate", "expected", "recounted"
    );
    for row in o.candidates.iter().chain(std::iter::once(&o.total)) {
        let mark = if row.expected == row.recounted {
            "equal"
        } else {
            "DIFFERENT"
        };
        println!(
            "  {:<width$}  {:>9}  {:>9}  {mark}",
            row.name, row.expected, row.recounted
        );
    }

    println!();
    for (i, n) in o.nodes.iter().enumerate() {
        let verdict = if n.verified {
            "verified".to_string()
        } else {
            format!("NOT verified ({} failures)", n.checks_failed)
        };
        println!(
            "  node {} {}  {} entries  digest {}  {verdict}",
            i + 1,
            &n.node[..8],
            n.entries,
            n.digest
        );
    }
    if let Some(p) = &o.partition {
        println!(
            "  partition  node {} cut off for {} votes, converged {:.2} s after the heal",
            p.cut_off_node,
            p.votes_during_partition,
            p.converged_after_heal_ms as f64 / 1000.0
        );
    }
    println!(
        "  live       a subscriber on relay 1 got {} updates; final counts {} the recount",
        o.live.updates,
        if o.live.counts_equal_recount {
            "equal"
        } else {
            "DIFFER FROM"
        }
    );
    println!(
        "  ingest     {:.0} votes/s, durable before acknowledged ({} votes per request, {} in flight)",
        o.votes_per_second, o.batch, o.concurrency
    );
    println!(
        "  receipts   {} signed receipts checked",
        o.receipts_verified
    );
    let result = if o.success() {
        "every row equal, every node's export verified, all digests equal, live counts equal"
    } else {
        "MISMATCH"
    };
    println!("  result     {result}");
    println!();
    println!(
        "  recount it yourself: cargo run --release -p votemesh-verify -- {}",
        o.export
    );
}
