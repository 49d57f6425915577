//! Receipts: one signature per commit group and poll, one path per entry.
//!
//! The committer signs a [`GroupStatement`] over the Merkle root of the
//! entry hashes it makes durable together, and hands each vote its receipt
//! with the inclusion path. Later requests for the same entry (a retry, or
//! `GET /v1/polls/{id}/entries/{hash}`) rebuild the identical receipt from
//! the stored group: its signature and entry hashes (see [`crate::store`]).
//!
//! An entry stored without a group (by an earlier version, or written
//! straight to the store) gets a receipt for a group of one, signed when
//! asked: ed25519 signatures are deterministic, so it is the same receipt
//! every time.

use std::collections::HashMap;
use std::sync::Arc;

use crdt::{EntryHash, GroupStatement, GroupTree, PollId, Receipt, SecretKey};

use crate::error::StoreError;
use crate::store::{EntryRef, Store, StoredGroup};

/// A group's statement with its tree, to hand out receipts.
pub(crate) struct Group {
    pub(crate) statement: GroupStatement,
    pub(crate) tree: GroupTree,
}

impl Group {
    /// Signs a new group over `entries` (ascending, unique, not empty).
    pub(crate) fn sign(
        key: &SecretKey,
        poll: PollId,
        entries: &[EntryHash],
        received_at: u64,
    ) -> Option<Group> {
        let tree = GroupTree::new(entries).ok()?;
        let statement = GroupStatement::sign(key, poll, &tree, received_at);
        Some(Group { statement, tree })
    }

    /// What the store keeps of it.
    pub(crate) fn stored(&self) -> StoredGroup {
        StoredGroup {
            received_at: self.statement.received_at,
            signature: self.statement.signature,
            entries: self.tree.entries().to_vec(),
        }
    }

    /// The receipt of `entry`, if the group holds it.
    pub(crate) fn receipt(&self, entry: &EntryHash) -> Option<Receipt> {
        let index = self.tree.position(entry)?;
        self.statement.receipt(&self.tree, index)
    }
}

/// The receipt of an entry held in no group: a group of one.
pub(crate) fn single(key: &SecretKey, poll: PollId, entry: EntryHash, received_at: u64) -> Receipt {
    Group::sign(key, poll, &[entry], received_at)
        .and_then(|g| g.receipt(&entry))
        .expect("a group of one entry holds it")
}

/// Rebuilds the receipts of stored entries of one poll, reading each group
/// from the store once.
pub(crate) struct Receipts<'a> {
    store: &'a dyn Store,
    key: &'a SecretKey,
    poll: PollId,
    /// Groups read so far; `None` for one that is missing or unusable.
    groups: HashMap<u64, Option<Arc<Group>>>,
}

impl<'a> Receipts<'a> {
    pub(crate) fn new(store: &'a dyn Store, key: &'a SecretKey, poll: PollId) -> Self {
        Receipts {
            store,
            key,
            poll,
            groups: HashMap::new(),
        }
    }

    /// The receipt of a held entry, or `None` if the store does not hold it.
    pub(crate) fn lookup(&mut self, entry: &EntryHash) -> Result<Option<Receipt>, StoreError> {
        match self.store.entry_ref(&self.poll, entry)? {
            Some(at) => self.of(entry, at).map(Some),
            None => Ok(None),
        }
    }

    /// The receipt of a stored entry, the same every time it is asked for.
    pub(crate) fn of(&mut self, entry: &EntryHash, at: EntryRef) -> Result<Receipt, StoreError> {
        if let Some(id) = at.group {
            if let Some(receipt) = self.group(id)?.and_then(|g| g.receipt(entry)) {
                return Ok(receipt);
            }
            // The group was not written before a crash (the entry was never
            // acknowledged then), or it does not hold the entry.
            tracing::debug!(poll = %self.poll.short(), entry = %entry.short(), group = id, "receipt group unusable; signing the entry alone");
        }
        Ok(single(self.key, self.poll, *entry, at.received_at))
    }

    fn group(&mut self, id: u64) -> Result<Option<Arc<Group>>, StoreError> {
        if let Some(known) = self.groups.get(&id) {
            return Ok(known.clone());
        }
        let loaded = self
            .store
            .group(&self.poll, id)?
            .and_then(|stored| self.rebuild(id, stored))
            .map(Arc::new);
        self.groups.insert(id, loaded.clone());
        Ok(loaded)
    }

    /// The group's statement and tree, if its signature still verifies
    /// (it does not after damage, or if the node key was replaced).
    fn rebuild(&self, id: u64, stored: StoredGroup) -> Option<Group> {
        let tree = GroupTree::new(&stored.entries).ok()?;
        let statement = GroupStatement {
            node: self.key.public(),
            poll: self.poll,
            root: tree.root(),
            size: tree.size(),
            received_at: stored.received_at,
            signature: stored.signature,
        };
        if let Err(e) = statement.verify() {
            tracing::warn!(poll = %self.poll.short(), group = id, error = %e, "stored receipt group does not verify; its entries get receipts of their own");
            return None;
        }
        Some(Group { statement, tree })
    }
}
