//! A replica of one poll: the grow-only set of admitted entries and its tally.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use crate::admit::{admit, admit_batch};
use crate::digest::digest_sorted;
use crate::error::Rejection;
use crate::ids::{Digest, EntryHash};
use crate::poll::Poll;
use crate::tally::{Equivocation, Tally, TallyState};
use crate::vote::Vote;

/// One poll's state: its definition, every admitted entry keyed by hash, and
/// the tally over them.
///
/// The set only grows. [`PollState::merge`] is set union: commutative,
/// associative and idempotent, so replicas that have seen the same entries
/// hold the same state and the same tally, in whatever order they arrived.
#[derive(Debug, Clone)]
pub struct PollState {
    poll: Poll,
    entries: BTreeMap<EntryHash, Vote>,
    tally: TallyState,
}

/// What happened to an entry offered to a [`PollState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// It was new and is now part of the set.
    New,
    /// The set already held it; nothing changed.
    Duplicate,
}

impl PollState {
    /// An empty replica of `poll`.
    pub fn new(poll: Poll) -> Self {
        let tally = TallyState::new(poll.option_count());
        Self {
            poll,
            entries: BTreeMap::new(),
            tally,
        }
    }

    /// The poll definition.
    pub fn poll(&self) -> &Poll {
        &self.poll
    }

    /// Applies the admission rule, then adds the entry if it is new.
    pub fn insert(&mut self, vote: Vote) -> Result<Inserted, Rejection> {
        if self.entries.contains_key(&vote.hash()) {
            return Ok(Inserted::Duplicate);
        }
        admit(&self.poll, &vote)?;
        Ok(self.insert_admitted(vote))
    }

    /// Admits a batch (signatures checked together) and adds what passes.
    /// One result per vote, in order.
    pub fn insert_batch(&mut self, votes: Vec<Vote>) -> Vec<Result<Inserted, Rejection>> {
        let verdicts = admit_batch(&self.poll, &votes);
        votes
            .into_iter()
            .zip(verdicts)
            .map(|(vote, verdict)| verdict.map(|()| self.insert_admitted(vote)))
            .collect()
    }

    /// Adds an entry that already passed [`crate::admit`] for this poll, for
    /// example one read back from the replica's own durable store.
    ///
    /// Callers must not pass unadmitted entries: the set would then hold
    /// something other replicas reject.
    pub fn insert_admitted(&mut self, vote: Vote) -> Inserted {
        debug_assert_eq!(vote.body().poll, self.poll.id);
        if self.entries.contains_key(&vote.hash()) {
            return Inserted::Duplicate;
        }
        self.tally.add(&vote);
        self.entries.insert(vote.hash(), vote);
        Inserted::New
    }

    /// Set union with another replica of the same poll. Entries are taken
    /// only from replicas of the same poll definition.
    pub fn merge(&mut self, other: &PollState) {
        assert_eq!(
            self.poll.id, other.poll.id,
            "merging replicas of different polls"
        );
        for vote in other.entries.values() {
            self.insert_admitted(vote.clone());
        }
    }

    /// Whether the set holds this entry.
    pub fn contains(&self, hash: &EntryHash) -> bool {
        self.entries.contains_key(hash)
    }

    /// The entry with this hash.
    pub fn get(&self, hash: &EntryHash) -> Option<&Vote> {
        self.entries.get(hash)
    }

    /// Entries whose hash lies in `range`, in ascending hash order.
    pub fn range(&self, range: impl RangeBounds<EntryHash>) -> impl Iterator<Item = &Vote> {
        self.entries.range(range).map(|(_, vote)| vote)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in ascending hash order.
    pub fn entries(&self) -> impl Iterator<Item = &Vote> {
        self.entries.values()
    }

    /// The current counts.
    pub fn tally(&self) -> Tally {
        self.tally.tally()
    }

    /// The tally state, for per-voter queries.
    pub fn tally_state(&self) -> &TallyState {
        &self.tally
    }

    /// Every equivocation among the entries.
    pub fn equivocations(&self) -> Vec<Equivocation> {
        self.tally.equivocations()
    }

    /// The Merkle root over the entry hashes. `O(n)`: callers that ask often cache it.
    pub fn digest(&self) -> Digest {
        digest_sorted(self.entries.keys()).expect("BTreeMap keys are ascending")
    }
}
