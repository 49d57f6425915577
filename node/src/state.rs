//! The in-memory replicas: one `crdt::PollState` per poll, rebuilt from the
//! store at start and grown by the committer after each durable group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crdt::{Digest, EntryHash, Inserted, Poll, PollId, PollState, Tally, Vote};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::store::Store;

/// Every poll this node holds.
#[derive(Default)]
pub(crate) struct Polls {
    slots: RwLock<HashMap<PollId, Arc<PollSlot>>>,
}

/// One poll's replica.
pub(crate) struct PollSlot {
    pub(crate) poll: Arc<Poll>,
    state: RwLock<PollState>,
    /// The digest and equivocation count, with the entry count they were
    /// computed at. The set only grows, so a different count means stale.
    summary: Mutex<Option<(usize, Digest, usize)>>,
    /// Every entry in hash order, shared by the exports of one state. Stale
    /// when its length differs from the set's, like `summary`.
    snapshot: Mutex<Option<Arc<[Vote]>>>,
    /// The entry count, published after every insert that grew the set:
    /// what tally streams wait on (see `crate::stream`).
    changes: watch::Sender<usize>,
}

/// What a tally request reads, taken under one lock.
pub(crate) struct TallyView {
    pub(crate) tally: Tally,
    pub(crate) digest: Digest,
    pub(crate) equivocations: usize,
}

/// What a rebuild read back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rebuilt {
    pub(crate) polls: usize,
    pub(crate) entries: usize,
    pub(crate) took: Duration,
}

// A panic while holding a lock leaves the set as it was before or after one
// `insert_admitted`, both valid states: recover the guard instead of spreading
// the panic to every later request.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Polls {
    /// Reads every poll and entry back from the store. Entries were admitted
    /// before they were stored, so they are not verified again.
    pub(crate) fn rebuild(store: &dyn Store) -> Result<(Polls, Rebuilt), StoreError> {
        let started = Instant::now();
        let polls = Polls::default();
        let mut entries = 0;

        for poll in store.polls()? {
            let mut state = PollState::new(poll.clone());
            for stored in store.entries(&poll.id)? {
                state.insert_admitted(stored?.vote);
            }
            entries += state.len();
            tracing::debug!(poll = %poll.id.short(), entries = state.len(), "poll rebuilt");
            polls.insert_state(state);
        }

        let count = read(&polls.slots).len();
        Ok((
            polls,
            Rebuilt {
                polls: count,
                entries,
                took: started.elapsed(),
            },
        ))
    }

    fn insert_state(&self, state: PollState) -> bool {
        let mut slots = write(&self.slots);
        if slots.contains_key(&state.poll().id) {
            return false;
        }
        let (changes, _) = watch::channel(state.len());
        let slot = PollSlot {
            poll: Arc::new(state.poll().clone()),
            changes,
            state: RwLock::new(state),
            summary: Mutex::new(None),
            snapshot: Mutex::new(None),
        };
        slots.insert(slot.poll.id, Arc::new(slot));
        true
    }

    /// Adds a poll; returns false if it was already held.
    pub(crate) fn add(&self, poll: Poll) -> bool {
        self.insert_state(PollState::new(poll))
    }

    pub(crate) fn get(&self, id: &PollId) -> Option<Arc<PollSlot>> {
        read(&self.slots).get(id).cloned()
    }

    /// Every poll, oldest first (by creation time, then id).
    pub(crate) fn list(&self) -> Vec<Arc<Poll>> {
        let mut polls: Vec<Arc<Poll>> =
            read(&self.slots).values().map(|s| s.poll.clone()).collect();
        polls.sort_by_key(|p| (p.draft.created_at, p.id));
        polls
    }
}

impl PollSlot {
    pub(crate) fn contains(&self, hash: &EntryHash) -> bool {
        read(&self.state).contains(hash)
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.state).len()
    }

    /// The replica under its read lock, for a sync session to read. Hold it
    /// briefly and off the async workers: the committer waits for it.
    pub(crate) fn view(&self) -> RwLockReadGuard<'_, PollState> {
        read(&self.state)
    }

    /// Adds entries that passed admission and are durable. Returns, per
    /// vote, whether it was new, and the entry count after.
    pub(crate) fn insert_admitted(&self, votes: Vec<Vote>) -> (Vec<bool>, usize) {
        let mut state = write(&self.state);
        let new = votes
            .into_iter()
            .map(|vote| state.insert_admitted(vote) == Inserted::New)
            .collect();
        let len = state.len();
        drop(state);

        // Only growth wakes the streams; a batch of duplicates changes nothing.
        self.changes.send_if_modified(|held| {
            let grew = *held != len;
            *held = len;
            grew
        });
        (new, len)
    }

    /// Waits on the entry count: marked changed whenever the set grows.
    pub(crate) fn changes(&self) -> watch::Receiver<usize> {
        self.changes.subscribe()
    }

    /// Counts, digest and equivocation count (the last two cached until the
    /// set grows: they are `O(n)`).
    pub(crate) fn tally_view(&self) -> TallyView {
        let state = read(&self.state);
        let len = state.len();
        let mut cache = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        let (digest, equivocations) = match *cache {
            Some((at, digest, equivocations)) if at == len => (digest, equivocations),
            _ => {
                let fresh = (state.digest(), state.equivocations().len());
                *cache = Some((len, fresh.0, fresh.1));
                fresh
            }
        };
        TallyView {
            tally: state.tally(),
            digest,
            equivocations,
        }
    }

    /// Every entry in hash order, for an export to stream without holding
    /// the lock. Copied once per state of the set (`O(n)`), then shared.
    pub(crate) fn snapshot(&self) -> Arc<[Vote]> {
        let state = read(&self.state);
        let mut cache = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some(entries) if entries.len() == state.len() => entries.clone(),
            _ => {
                let entries: Arc<[Vote]> = state.entries().cloned().collect();
                *cache = Some(entries.clone());
                entries
            }
        }
    }

    /// The cached snapshot, if it is still current: no copy, no blocking.
    pub(crate) fn cached_snapshot(&self) -> Option<Arc<[Vote]>> {
        let state = read(&self.state);
        let cache = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        cache.clone().filter(|entries| entries.len() == state.len())
    }
}
