//! Durable storage behind a small trait, and its sled implementation.
//!
//! Layout: tree `polls` maps a poll id to the poll's canonical signed
//! encoding; tree `entries/<poll id hex>` maps an entry hash to the time the
//! node first stored it (u64 big-endian) followed by the vote's canonical
//! signed encoding. Writes become durable only at [`Store::sync`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crdt::{EntryHash, Poll, PollId, Vote};

use crate::error::StoreError;

/// An entry to write: its hash, when it was first stored, its encoding.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// The entry hash (key).
    pub hash: EntryHash,
    /// When the node first stored it, unix ms.
    pub received_at: u64,
    /// The vote's canonical signed encoding.
    pub encoded: &'a [u8],
}

/// An entry read back.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// When the node first stored it, unix ms.
    pub received_at: u64,
    /// The vote.
    pub vote: Vote,
}

/// The node's durable storage. Implementations must make every earlier
/// `put_*` durable (on stable storage, surviving power loss) before
/// [`Store::sync`] returns `Ok`.
pub trait Store: Send + Sync + 'static {
    /// Writes a poll definition (idempotent).
    fn put_poll(&self, poll: &Poll) -> Result<(), StoreError>;
    /// Writes entries of one poll (idempotent per hash; callers keep the
    /// first `received_at`).
    fn put_entries(&self, poll: &PollId, entries: &[NewEntry<'_>]) -> Result<(), StoreError>;
    /// When the entry was first stored, if it is stored.
    fn received_at(&self, poll: &PollId, entry: &EntryHash) -> Result<Option<u64>, StoreError>;
    /// Every stored poll.
    fn polls(&self) -> Result<Vec<Poll>, StoreError>;
    /// Every stored entry of a poll, in hash order.
    fn entries<'a>(
        &'a self,
        poll: &PollId,
    ) -> Result<Box<dyn Iterator<Item = Result<StoredEntry, StoreError>> + 'a>, StoreError>;
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), StoreError>;
}

/// [`Store`] on sled 0.34.
///
/// sled's `flush` writes its log with `sync_file_range`, which neither
/// flushes the disk's write cache nor the file's metadata, and writes large
/// values to `blobs/` without any sync. [`SledStore::sync`] therefore
/// follows `flush` with `fdatasync` on the log file `db` and `fsync` on
/// every blob file it has not synced yet.
pub struct SledStore {
    db: sled::Db,
    polls: sled::Tree,
    dir: PathBuf,
    log: File,
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let polls = db.open_tree("polls")?;
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|source| StoreError::Sync {
            path: log_path,
            source,
        })?;

        // sled created `db`, `conf` and `blobs/` if they were missing: make the names durable.
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(SledStore {
            db,
            polls,
            dir: dir.to_path_buf(),
            log,
            synced_blobs: Mutex::default(),
        })
    }

    fn tree(&self, poll: &PollId) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(tree_name(poll))?)
    }

    fn sync_blobs(&self) -> Result<(), StoreError> {
        let blobs = self.dir.join("blobs");
        let listing = std::fs::read_dir(&blobs).map_err(|source| StoreError::Sync {
            path: blobs.clone(),
            source,
        })?;
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        let mut any_new = false;
        for item in listing {
            let item = item.map_err(|source| StoreError::Sync {
                path: blobs.clone(),
                source,
            })?;
            let name = item.file_name();
            if !synced.contains(&name) {
                let path = item.path();
                let file = File::open(&path).map_err(|source| StoreError::Sync {
                    path: path.clone(),
                    source,
                })?;
                file.sync_all()
                    .map_err(|source| StoreError::Sync { path, source })?;
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            sync_dir(&blobs)?;
        }
        // sled deletes blobs it no longer needs; forget them.
        *synced = present;
        Ok(())
    }
}

fn tree_name(poll: &PollId) -> String {
    format!("entries/{poll}")
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Sync {
            path: dir.to_path_buf(),
            source,
        })
}

fn corrupt(tree: &str, key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree: tree.to_string(),
        key: hex::encode(key),
        reason: reason.into(),
    }
}

fn decode_entry(tree: &str, key: &[u8], value: &[u8]) -> Result<StoredEntry, StoreError> {
    let Some((at, encoded)) = value.split_first_chunk::<8>() else {
        return Err(corrupt(
            tree,
            key,
            format!("value of {} bytes is too short", value.len()),
        ));
    };
    let vote = Vote::decode(encoded).map_err(|e| corrupt(tree, key, e.to_string()))?;
    if vote.hash().as_bytes().as_slice() != key {
        return Err(corrupt(
            tree,
            key,
            format!("vote hashes to {}", vote.hash()),
        ));
    }
    Ok(StoredEntry {
        received_at: u64::from_be_bytes(*at),
        vote,
    })
}

impl Store for SledStore {
    fn put_poll(&self, poll: &Poll) -> Result<(), StoreError> {
        self.polls.insert(poll.id.as_bytes(), poll.encode())?;
        Ok(())
    }

    fn put_entries(&self, poll: &PollId, entries: &[NewEntry<'_>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let mut value = Vec::with_capacity(8 + entry.encoded.len());
            value.extend_from_slice(&entry.received_at.to_be_bytes());
            value.extend_from_slice(entry.encoded);
            batch.insert(entry.hash.as_bytes(), value);
        }
        self.tree(poll)?.apply_batch(batch)?;
        Ok(())
    }

    fn received_at(&self, poll: &PollId, entry: &EntryHash) -> Result<Option<u64>, StoreError> {
        let Some(value) = self.tree(poll)?.get(entry.as_bytes())? else {
            return Ok(None);
        };
        match value.first_chunk::<8>() {
            Some(at) => Ok(Some(u64::from_be_bytes(*at))),
            None => Err(corrupt(
                &tree_name(poll),
                entry.as_bytes(),
                "value is too short",
            )),
        }
    }

    fn polls(&self) -> Result<Vec<Poll>, StoreError> {
        let mut polls = Vec::new();
        for item in self.polls.iter() {
            let (key, value) = item?;
            let poll = Poll::decode(&value).map_err(|e| corrupt("polls", &key, e.to_string()))?;
            if poll.id.as_bytes().as_slice() != &*key {
                return Err(corrupt("polls", &key, format!("poll has id {}", poll.id)));
            }
            polls.push(poll);
        }
        Ok(polls)
    }

    fn entries<'a>(
        &'a self,
        poll: &PollId,
    ) -> Result<Box<dyn Iterator<Item = Result<StoredEntry, StoreError>> + 'a>, StoreError> {
        let name = tree_name(poll);
        let iter = self.tree(poll)?.iter().map(move |item| {
            let (key, value) = item?;
            decode_entry(&name, &key, &value)
        });
        Ok(Box::new(iter))
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        // Flush before fdatasync: the log bytes must be written before they are synced.
        self.log.sync_data().map_err(|source| StoreError::Sync {
            path: self.dir.join("db"),
            source,
        })?;
        self.sync_blobs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{SecretKey, VoteBody, VoteId};

    use crate::fixture::poll;

    #[test]
    fn entries_and_polls_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let poll = poll();
        let vote = VoteBody {
            poll: poll.id,
            voter: SecretKey::from_seed(&[2; 32]).public(),
            choice: 1,
            seq: 1,
            vote_id: VoteId::from_bytes([1; 16]),
            cast_at: 5,
            credential: None,
        }
        .sign(&SecretKey::from_seed(&[2; 32]));

        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put_poll(&poll).unwrap();
            let entry = NewEntry {
                hash: vote.hash(),
                received_at: 42,
                encoded: vote.encoded(),
            };
            store.put_entries(&poll.id, &[entry]).unwrap();
            store.sync().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();

        assert_eq!(store.polls().unwrap(), vec![poll.clone()]);
        assert_eq!(store.received_at(&poll.id, &vote.hash()).unwrap(), Some(42));
        let entries: Vec<_> = store
            .entries(&poll.id)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].vote, vote);
    }

    #[test]
    fn a_damaged_entry_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let poll = poll();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .tree(&poll.id)
            .unwrap()
            .insert([7u8; 32], vec![0u8; 12])
            .unwrap();

        let first = store.entries(&poll.id).unwrap().next().unwrap();

        assert!(matches!(first, Err(StoreError::Corrupt { .. })));
    }
}
