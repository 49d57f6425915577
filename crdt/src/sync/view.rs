//! The read-only view of a replica that a sync session works from.

use std::ops::Bound;

use crate::ids::{Digest, EntryHash};
use crate::state::PollState;
use crate::vote::Vote;

/// An entry's short id: the first eight bytes of its hash, big-endian.
///
/// Short ids are what the coded symbols carry. Two entries may share one;
/// the protocol then falls back to full hashes.
pub fn short_id(hash: &EntryHash) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.0[..8]);
    u64::from_be_bytes(head)
}

/// What a session needs to know about the local set of one poll.
///
/// A session only reads through this view; the caller stores what it
/// receives. The set may grow while a session runs: entries added after the
/// session's first look may or may not be offered to the peer this time.
pub trait SetView {
    /// Number of entries.
    fn count(&self) -> u64;

    /// The digest over all entry hashes (see [`crate::digest_sorted`]).
    fn digest(&self) -> Digest;

    /// The short id of every entry, one per entry, in any order.
    fn short_ids(&self) -> impl Iterator<Item = u64> + '_;

    /// Every entry whose short id is `id` (usually one, rarely several).
    fn with_short_id(&self, id: u64) -> impl Iterator<Item = &Vote> + '_;

    /// The entry with this hash.
    fn get(&self, hash: &EntryHash) -> Option<&Vote>;

    /// Entry hashes within the bounds, ascending.
    fn hashes(
        &self,
        range: (Bound<EntryHash>, Bound<EntryHash>),
    ) -> impl Iterator<Item = EntryHash> + '_;
}

impl SetView for PollState {
    fn count(&self) -> u64 {
        self.len() as u64
    }

    fn digest(&self) -> Digest {
        PollState::digest(self)
    }

    fn short_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries().map(|vote| short_id(&vote.hash()))
    }

    fn with_short_id(&self, id: u64) -> impl Iterator<Item = &Vote> + '_ {
        // The map is ordered by hash bytes, so one prefix is one range.
        let mut low = [0u8; 32];
        let mut high = [0xffu8; 32];
        low[..8].copy_from_slice(&id.to_be_bytes());
        high[..8].copy_from_slice(&id.to_be_bytes());
        self.range(EntryHash(low)..=EntryHash(high))
    }

    fn get(&self, hash: &EntryHash) -> Option<&Vote> {
        PollState::get(self, hash)
    }

    fn hashes(
        &self,
        range: (Bound<EntryHash>, Bound<EntryHash>),
    ) -> impl Iterator<Item = EntryHash> + '_ {
        self.range(range).map(Vote::hash)
    }
}
