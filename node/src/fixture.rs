//! Shared fixtures for the node's unit tests.

use crdt::{Eligibility, Poll, PollDraft, SecretKey};

/// A small open poll (options `a` and `b`, window 0..100 ms) signed by seed 1.
pub(crate) fn poll() -> Poll {
    let organizer = SecretKey::from_seed(&[1; 32]);
    PollDraft {
        organizer: organizer.public(),
        created_at: 0,
        opens_at: 0,
        closes_at: 100,
        title: "t".into(),
        options: vec!["a".into(), "b".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer)
    .unwrap()
}
