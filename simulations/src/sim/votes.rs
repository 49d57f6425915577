//! The simulated polls and votes, and entries as protocol messages.

use super::*;

/// The simulated polls: signed once, for real, with fixed keys.
pub(crate) fn make_polls(count: usize, options: u32) -> Vec<Poll> {
    let organizer = SecretKey::from_seed(&[7; 32]);
    (0..count)
        .map(|i| {
            PollDraft {
                organizer: organizer.public(),
                created_at: i as u64,
                opens_at: 0,
                closes_at: u64::MAX / 2,
                title: format!("simulated poll {i}"),
                options: (0..options).map(|o| format!("option {o}")).collect(),
                eligibility: Eligibility::Open,
            }
            .sign(&organizer)
            .expect("the simulated poll is well formed")
        })
        .collect()
}

/// Vote number `index`: a fresh voter key per vote and a signature that is
/// not checked (the simulator models replication, not signatures). Key and
/// signature are pseudo-random bytes derived from the index, so encodings are
/// as incompressible as real ones (this matters to compressing baselines).
pub(crate) fn make_vote(poll: &Poll, index: u32, choice: u32, cast_at_ms: u64) -> Vote {
    use sha2::{Digest as _, Sha256};

    let voter: [u8; 32] = Sha256::digest(index.to_be_bytes()).into();
    let low: [u8; 32] = Sha256::digest(voter).into();
    let high: [u8; 32] = Sha256::digest(low).into();
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&low);
    signature[32..].copy_from_slice(&high);
    let mut vote_id = [0u8; 16];
    vote_id.copy_from_slice(&high[..16]);
    let body = VoteBody {
        poll: poll.id,
        voter: PublicKey(voter),
        choice,
        seq: 1,
        vote_id: VoteId::from_bytes(vote_id),
        cast_at: cast_at_ms,
        credential: None,
    };
    Vote::new(body, Signature(signature))
}

pub(super) fn all_entries(replica: &Replica) -> Vec<Vote> {
    replica.state().entries().cloned().collect()
}

/// Entries in messages bounded like the sync protocol's own.
pub(crate) fn entries_messages(poll: crdt::PollId, entries: Vec<Vote>, last: bool) -> Vec<Message> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for vote in entries {
        if batch.len() == crdt::sync::MAX_ENTRIES
            || bytes + vote.encoded().len() > crdt::sync::ENTRIES_SOFT_BYTES
        {
            out.push(Message::Entries {
                poll,
                entries: std::mem::take(&mut batch),
                last: false,
            });
            bytes = 0;
        }
        bytes += vote.encoded().len();
        batch.push(vote);
    }
    if !batch.is_empty() || last {
        out.push(Message::Entries {
            poll,
            entries: batch,
            last,
        });
    }
    out
}
