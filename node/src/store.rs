//! Durable storage behind a small trait, and its sled implementation.
//!
//! Layout: tree `polls` maps a poll id to the poll's canonical signed
//! encoding; tree `entries/<poll id hex>` maps an entry hash to the time the
//! node first stored it (u64 big-endian), then, for an entry stored in a
//! receipt group, the byte `0x01` and the group's id (u64 big-endian), then
//! the vote's canonical signed encoding (which starts with the byte `v`, so
//! entries written without a group, by earlier versions, read as before);
//! tree `groups/<poll id hex>` holds each group as the time it was stored
//! (u64), the node's signature over the group statement (64 bytes) and its
//! entry hashes in ascending order (32 bytes each), cut into chunks of at
//! most 120 hashes keyed by the group id (u64 big-endian) and the chunk's
//! number (u32 big-endian), so no sled page becomes a blob.
//!
//! Receipts are rebuilt from that: a group's tree is recomputed from its
//! entry hashes (about two SHA-256 per entry) and the entry's path read off
//! it, rather than storing a path per entry. What a receipt costs to keep is
//! 9 bytes in the entry's value and its 32-byte hash in its group, plus 72
//! bytes per group. Writes become durable only at [`Store::sync`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crdt::{EntryHash, Poll, PollId, Signature, Vote};

use crate::error::StoreError;

/// An entry to write: its hash, when it was first stored, its receipt
/// group, its encoding.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// The entry hash (key).
    pub hash: EntryHash,
    /// When the node first stored it, unix ms.
    pub received_at: u64,
    /// The receipt group it was stored in ([`Store::put_group`]); `None`
    /// for an entry whose receipt is signed for it alone.
    pub group: Option<u64>,
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

/// Where a stored entry's receipt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// When the node first stored it, unix ms.
    pub received_at: u64,
    /// Its receipt group, if it was stored in one.
    pub group: Option<u64>,
}

/// A receipt group as stored: what the node signed once for all its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// When the group was stored, unix ms (every entry's `received_at`).
    pub received_at: u64,
    /// The node's signature over the group statement.
    pub signature: Signature,
    /// The group's entry hashes, ascending.
    pub entries: Vec<EntryHash>,
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
    /// When the entry was first stored and in which group, if it is stored.
    fn entry_ref(&self, poll: &PollId, entry: &EntryHash) -> Result<Option<EntryRef>, StoreError>;
    /// A fresh group id, never handed out before (not even before a crash).
    fn new_group_id(&self) -> Result<u64, StoreError>;
    /// Writes a receipt group of one poll.
    fn put_group(&self, poll: &PollId, id: u64, group: &StoredGroup) -> Result<(), StoreError>;
    /// A receipt group, if it is stored.
    fn group(&self, poll: &PollId, id: u64) -> Result<Option<StoredGroup>, StoreError>;
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
        let db = sled::Config::new().path(dir).open().map_err(|e| match e {
            // sled holds an exclusive lock on its files while open, and says
            // so only in the text of its error.
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                StoreError::InUse {
                    path: dir.to_path_buf(),
                }
            }
            other => StoreError::Sled(other),
        })?;
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

fn groups_tree_name(poll: &PollId) -> String {
    format!("groups/{poll}")
}

/// Entry hashes per stored chunk of a group (3,840 bytes).
const GROUP_CHUNK: usize = 120;

/// A group chunk's key: the group id, then the chunk's number.
fn group_chunk_key(id: u64, chunk: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The byte after `received_at` that marks a group id; a vote's encoding
/// starts with `v` instead.
const IN_GROUP: u8 = 0x01;

/// Splits an entry value into its reference and the vote's encoding.
fn split_entry<'v>(
    tree: &str,
    key: &[u8],
    value: &'v [u8],
) -> Result<(EntryRef, &'v [u8]), StoreError> {
    let too_short = || {
        corrupt(
            tree,
            key,
            format!("value of {} bytes is too short", value.len()),
        )
    };
    let (at, rest) = value.split_first_chunk::<8>().ok_or_else(too_short)?;
    let received_at = u64::from_be_bytes(*at);
    match rest.split_first() {
        Some((&IN_GROUP, rest)) => {
            let (group, encoded) = rest.split_first_chunk::<8>().ok_or_else(too_short)?;
            let group = Some(u64::from_be_bytes(*group));
            Ok((EntryRef { received_at, group }, encoded))
        }
        _ => Ok((
            EntryRef {
                received_at,
                group: None,
            },
            rest,
        )),
    }
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
    let (at, encoded) = split_entry(tree, key, value)?;
    let vote = Vote::decode(encoded).map_err(|e| corrupt(tree, key, e.to_string()))?;
    if vote.hash().as_bytes().as_slice() != key {
        return Err(corrupt(
            tree,
            key,
            format!("vote hashes to {}", vote.hash()),
        ));
    }
    Ok(StoredEntry {
        received_at: at.received_at,
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
            let mut value = Vec::with_capacity(17 + entry.encoded.len());
            value.extend_from_slice(&entry.received_at.to_be_bytes());
            if let Some(group) = entry.group {
                value.push(IN_GROUP);
                value.extend_from_slice(&group.to_be_bytes());
            }
            value.extend_from_slice(entry.encoded);
            batch.insert(entry.hash.as_bytes(), value);
        }
        self.tree(poll)?.apply_batch(batch)?;
        Ok(())
    }

    fn entry_ref(&self, poll: &PollId, entry: &EntryHash) -> Result<Option<EntryRef>, StoreError> {
        let Some(value) = self.tree(poll)?.get(entry.as_bytes())? else {
            return Ok(None);
        };
        let (at, _) = split_entry(&tree_name(poll), entry.as_bytes(), &value)?;
        Ok(Some(at))
    }

    fn new_group_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    fn put_group(&self, poll: &PollId, id: u64, group: &StoredGroup) -> Result<(), StoreError> {
        // In chunks, so no sled page grows past its blob threshold (a blob
        // costs two more fsyncs per group); one batch, written atomically.
        let mut batch = sled::Batch::default();
        for (n, hashes) in group.entries.chunks(GROUP_CHUNK).enumerate() {
            let mut value = Vec::with_capacity(72 + 32 * hashes.len());
            if n == 0 {
                value.extend_from_slice(&group.received_at.to_be_bytes());
                value.extend_from_slice(&group.signature.0);
            }
            for entry in hashes {
                value.extend_from_slice(entry.as_bytes());
            }
            batch.insert(&group_chunk_key(id, n as u32)[..], value);
        }
        self.db
            .open_tree(groups_tree_name(poll))?
            .apply_batch(batch)?;
        Ok(())
    }

    fn group(&self, poll: &PollId, id: u64) -> Result<Option<StoredGroup>, StoreError> {
        let name = groups_tree_name(poll);
        let key = id.to_be_bytes();
        let bad = |reason: String| corrupt(&name, &key, reason);
        let mut value = Vec::new();
        for (n, chunk) in self.db.open_tree(&name)?.scan_prefix(key).enumerate() {
            let (chunk_key, bytes) = chunk?;
            if chunk_key[..] != group_chunk_key(id, n as u32)[..] {
                return Err(bad(format!("chunk {n} is missing")));
            }
            value.extend_from_slice(&bytes);
        }
        if value.is_empty() {
            return Ok(None);
        }
        let (at, rest) = value
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("value is too short".into()))?;
        let (signature, hashes) = rest
            .split_first_chunk::<64>()
            .ok_or_else(|| bad("value is too short".into()))?;
        if hashes.is_empty() || hashes.len() % 32 != 0 {
            return Err(bad(format!("{} bytes of entry hashes", hashes.len())));
        }
        let entries = hashes
            .chunks_exact(32)
            .map(|h| EntryHash(h.try_into().expect("32-byte chunk")))
            .collect();
        Ok(Some(StoredGroup {
            received_at: u64::from_be_bytes(*at),
            signature: Signature(*signature),
            entries,
        }))
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

    /// One signed vote for `poll`.
    fn vote_in(poll: &crdt::Poll) -> crdt::Vote {
        VoteBody {
            poll: poll.id,
            voter: SecretKey::from_seed(&[2; 32]).public(),
            choice: 1,
            seq: 1,
            vote_id: VoteId::from_bytes([1; 16]),
            cast_at: 5,
            credential: None,
        }
        .sign(&SecretKey::from_seed(&[2; 32]))
    }

    #[test]
    fn a_store_already_open_is_reported_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();

        let second = SledStore::open(dir.path()).err().expect("the lock is held");

        assert!(matches!(second, StoreError::InUse { .. }), "{second}");
        assert!(second.to_string().contains("another node"), "{second}");
    }

    #[test]
    fn entries_and_polls_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let poll = poll();
        let vote = vote_in(&poll);

        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put_poll(&poll).unwrap();
            let entry = NewEntry {
                hash: vote.hash(),
                received_at: 42,
                group: Some(7),
                encoded: vote.encoded(),
            };
            let group = StoredGroup {
                received_at: 42,
                signature: Signature([3; 64]),
                entries: vec![vote.hash()],
            };
            store.put_group(&poll.id, 7, &group).unwrap();
            store.put_entries(&poll.id, &[entry]).unwrap();
            store.sync().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();

        assert_eq!(store.polls().unwrap(), vec![poll.clone()]);
        assert_eq!(
            store.entry_ref(&poll.id, &vote.hash()).unwrap(),
            Some(EntryRef {
                received_at: 42,
                group: Some(7)
            })
        );
        let group = store.group(&poll.id, 7).unwrap().unwrap();
        assert_eq!(group.entries, vec![vote.hash()]);
        assert_eq!(group.signature, Signature([3; 64]));
        assert_eq!(store.group(&poll.id, 8).unwrap(), None);
        assert_eq!(store.group(&poll.id, 6).unwrap(), None);

        // A group of many chunks reads back whole, next to its neighbours.
        let many: Vec<EntryHash> = (0..301u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_be_bytes());
                EntryHash(h)
            })
            .collect();
        let big = StoredGroup {
            received_at: 43,
            signature: Signature([4; 64]),
            entries: many,
        };
        store.put_group(&poll.id, 8, &big).unwrap();
        store.sync().unwrap();
        assert_eq!(store.group(&poll.id, 8).unwrap(), Some(big));
        assert_eq!(store.group(&poll.id, 7).unwrap().unwrap().entries.len(), 1);
        let entries: Vec<_> = store
            .entries(&poll.id)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].vote, vote);
    }

    #[test]
    fn entries_written_without_a_group_read_back_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let poll = poll();
        let vote = vote_in(&poll);
        let store = SledStore::open(dir.path()).unwrap();
        // The layout of earlier versions: received_at, then the vote.
        let value = [&9u64.to_be_bytes()[..], vote.encoded()].concat();
        store
            .tree(&poll.id)
            .unwrap()
            .insert(vote.hash().as_bytes(), value)
            .unwrap();

        let entry_ref = store.entry_ref(&poll.id, &vote.hash()).unwrap();
        let entries: Vec<_> = store
            .entries(&poll.id)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();

        assert_eq!(
            entry_ref,
            Some(EntryRef {
                received_at: 9,
                group: None
            })
        );
        assert_eq!(entries[0].vote, vote);
        assert_eq!(entries[0].received_at, 9);
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
