//! A node's replica of one poll: the real `crdt::PollState`, with its digest
//! cached between inserts so frequent sessions do not rehash the whole set.

use std::cell::Cell;
use std::ops::Bound;

use crdt::sync::SetView;
use crdt::{Digest, EntryHash, Inserted, Poll, PollState, Vote};

/// One poll's replica on one simulated node.
#[derive(Debug)]
pub(crate) struct Replica {
    state: PollState,
    digest: Cell<Option<Digest>>,
}

impl Replica {
    /// An empty replica.
    pub(crate) fn new(poll: Poll) -> Replica {
        Replica {
            state: PollState::new(poll),
            digest: Cell::new(None),
        }
    }

    /// Adds an entry. The simulator models replication, not signatures: its
    /// votes carry unchecked signatures and skip admission.
    pub(crate) fn insert(&mut self, vote: Vote) -> Inserted {
        let inserted = self.state.insert_admitted(vote);
        if inserted == Inserted::New {
            self.digest.set(None);
        }
        inserted
    }

    /// The underlying state.
    pub(crate) fn state(&self) -> &PollState {
        &self.state
    }

    /// Whether the entry is held.
    pub(crate) fn contains(&self, hash: &EntryHash) -> bool {
        self.state.contains(hash)
    }
}

impl SetView for Replica {
    fn count(&self) -> u64 {
        self.state.len() as u64
    }

    fn digest(&self) -> Digest {
        if let Some(digest) = self.digest.get() {
            return digest;
        }
        let digest = self.state.digest();
        self.digest.set(Some(digest));
        digest
    }

    fn short_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.state.short_ids()
    }

    fn with_short_id(&self, id: u64) -> impl Iterator<Item = &Vote> + '_ {
        self.state.with_short_id(id)
    }

    fn get(&self, hash: &EntryHash) -> Option<&Vote> {
        self.state.get(hash)
    }

    fn hashes(
        &self,
        range: (Bound<EntryHash>, Bound<EntryHash>),
    ) -> impl Iterator<Item = EntryHash> + '_ {
        self.state.hashes(range)
    }
}
