//! The outbox's IndexedDB database.
//!
//! Three object stores:
//!
//! - `records`: one value per vote, keyed by entry hash, indexed by poll:
//!   `{entry, poll, state, json}` where `json` is the [`Record`] as JSON text
//!   (text, so that u64 fields never pass through a JavaScript number);
//! - `keys`: the voter key's seed as hex, under `voter`;
//! - `credentials`: a credential's JSON text, keyed by poll id.
//!
//! Every read-modify-write happens inside one `readwrite` transaction, and
//! IndexedDB serialises such transactions across tabs and workers: this is
//! what keeps two concurrent flushes from undoing each other.

use crdt::{Credential, EntryHash, PollId, SecretKey};
use js_sys::{Object, Reflect};
use rexie::{Index, KeyRange, ObjectStore, Rexie, Transaction, TransactionMode};
use wasm_bindgen::JsValue;

use super::js;
use crate::error::StoreError;
use crate::record::Record;

const RECORDS: &str = "records";
const KEYS: &str = "keys";
const CREDENTIALS: &str = "credentials";
const BY_POLL: &str = "poll";
const VOTER_KEY: &str = "voter";

fn idb(op: &'static str) -> impl Fn(rexie::Error) -> StoreError {
    move |e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            message = format!("{message}: {inner}");
            source = inner.source();
        }
        StoreError::Idb { op, message }
    }
}

fn js_err(op: &'static str) -> impl Fn(JsValue) -> StoreError {
    move |e| StoreError::Idb {
        op,
        message: js::text(&e),
    }
}

/// Opens (creating or upgrading) the database `name`.
pub(crate) async fn open(name: &str) -> Result<Rexie, StoreError> {
    Rexie::builder(name)
        .version(1)
        .add_object_store(
            ObjectStore::new(RECORDS)
                .key_path("entry")
                .add_index(Index::new(BY_POLL, "poll")),
        )
        .add_object_store(ObjectStore::new(KEYS))
        .add_object_store(ObjectStore::new(CREDENTIALS))
        .build()
        .await
        .map_err(idb("open"))
}

async fn commit(tx: Transaction, op: &'static str) -> Result<(), StoreError> {
    let result = tx.done().await.map_err(idb(op))?;
    if !result.is_committed() {
        return Err(StoreError::Idb {
            op,
            message: "transaction aborted".into(),
        });
    }
    Ok(())
}

/// The stored voter key, or `fresh` stored as the voter key if there is none.
/// Check and write share a transaction: two tabs starting at once agree on
/// one key.
pub(crate) async fn voter_key(db: &Rexie, fresh: [u8; 32]) -> Result<SecretKey, StoreError> {
    let tx = db
        .transaction(&[KEYS], TransactionMode::ReadWrite)
        .map_err(idb("open voter key"))?;
    let store = tx.store(KEYS).map_err(idb("open voter key"))?;
    let key = JsValue::from_str(VOTER_KEY);

    let seed = match store
        .get(key.clone())
        .await
        .map_err(idb("read voter key"))?
    {
        Some(stored) => parse_seed(&stored)?,
        None => {
            store
                .put(&JsValue::from_str(&hex::encode(fresh)), Some(&key))
                .await
                .map_err(idb("write voter key"))?;
            fresh
        }
    };
    commit(tx, "write voter key").await?;
    Ok(SecretKey::from_seed(&seed))
}

fn parse_seed(stored: &JsValue) -> Result<[u8; 32], StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        what: "voter key",
        key: VOTER_KEY.into(),
        reason: reason.into(),
    };
    let text = stored.as_string().ok_or_else(|| corrupt("not a string"))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(&text, &mut seed).map_err(|_| corrupt("not 32 bytes of hex"))?;
    Ok(seed)
}

fn to_value(record: &Record) -> Result<JsValue, StoreError> {
    let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt {
        what: "record",
        key: record.entry.to_string(),
        reason: e.to_string(),
    })?;
    let value = Object::new();
    let set = |field: &str, v: JsValue| {
        Reflect::set(&value, &JsValue::from_str(field), &v).map_err(js_err("encode record"))
    };
    set("entry", JsValue::from_str(&record.entry.to_string()))?;
    set("poll", JsValue::from_str(&record.poll.to_string()))?;
    set("state", JsValue::from_str(record.state.as_str()))?;
    set("json", JsValue::from_str(&json))?;
    Ok(value.into())
}

fn from_value(value: &JsValue) -> Result<Record, StoreError> {
    let field = |name: &str| {
        Reflect::get(value, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
    };
    let key = field("entry").unwrap_or_default();
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "record",
        key: key.clone(),
        reason,
    };
    let json = field("json").ok_or_else(|| corrupt("no json field".into()))?;
    let record: Record = serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
    if record.entry.to_string() != key || record.vote.hash() != record.entry {
        return Err(corrupt("entry hash does not match the vote".into()));
    }
    Ok(record)
}

/// Stores the record `make(seq)` where `seq` is one more than the highest
/// seq of the records already held for `poll`. Read and write share a
/// transaction, so two tabs casting at once get distinct seqs.
pub(crate) async fn insert_next(
    db: &Rexie,
    poll: PollId,
    make: impl FnOnce(u64) -> Record,
) -> Result<Record, StoreError> {
    let tx = db
        .transaction(&[RECORDS], TransactionMode::ReadWrite)
        .map_err(idb("cast"))?;
    let store = tx.store(RECORDS).map_err(idb("cast"))?;

    let held = poll_records(&store, poll).await?;
    let seq = held
        .iter()
        .map(|r| r.seq)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let record = make(seq);
    store
        .put(&to_value(&record)?, None)
        .await
        .map_err(idb("write record"))?;
    commit(tx, "write record").await?;
    Ok(record)
}

async fn poll_records(store: &rexie::Store, poll: PollId) -> Result<Vec<Record>, StoreError> {
    let range = KeyRange::only(&JsValue::from_str(&poll.to_string()))
        .map_err(rexie::Error::from)
        .map_err(idb("read poll"))?;
    let values = store
        .index(BY_POLL)
        .map_err(idb("read poll"))?
        .get_all(Some(range), None)
        .await
        .map_err(idb("read poll"))?;
    values.iter().map(from_value).collect()
}

/// The records of `poll`, or of every poll, in the order they were cast.
pub(crate) async fn records(db: &Rexie, poll: Option<PollId>) -> Result<Vec<Record>, StoreError> {
    let tx = db
        .transaction(&[RECORDS], TransactionMode::ReadOnly)
        .map_err(idb("read records"))?;
    let store = tx.store(RECORDS).map_err(idb("read records"))?;

    let mut records = match poll {
        Some(poll) => poll_records(&store, poll).await?,
        None => {
            let values = store
                .get_all(None, None)
                .await
                .map_err(idb("read records"))?;
            values
                .iter()
                .map(from_value)
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    records.sort_by_key(|r| (r.poll, r.seq, r.cast_at));
    Ok(records)
}

/// Re-reads the record `entry` and stores `change(record)` if it says it
/// changed. Runs on the stored record, not on a copy read earlier, so what
/// another tab wrote in the meantime is kept. Returns the record as stored.
pub(crate) async fn update(
    db: &Rexie,
    entry: EntryHash,
    change: impl FnOnce(&mut Record) -> bool,
) -> Result<Option<Record>, StoreError> {
    let tx = db
        .transaction(&[RECORDS], TransactionMode::ReadWrite)
        .map_err(idb("update record"))?;
    let store = tx.store(RECORDS).map_err(idb("update record"))?;

    let key = JsValue::from_str(&entry.to_string());
    let Some(value) = store.get(key).await.map_err(idb("read record"))? else {
        commit(tx, "update record").await?;
        return Ok(None);
    };
    let mut record = from_value(&value)?;
    if change(&mut record) {
        store
            .put(&to_value(&record)?, None)
            .await
            .map_err(idb("write record"))?;
    }
    commit(tx, "update record").await?;
    Ok(Some(record))
}

/// The credential held for `poll`, if any.
pub(crate) async fn credential(db: &Rexie, poll: PollId) -> Result<Option<Credential>, StoreError> {
    let tx = db
        .transaction(&[CREDENTIALS], TransactionMode::ReadOnly)
        .map_err(idb("read credential"))?;
    let store = tx.store(CREDENTIALS).map_err(idb("read credential"))?;
    let key = poll.to_string();

    let Some(value) = store
        .get(JsValue::from_str(&key))
        .await
        .map_err(idb("read credential"))?
    else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "credential",
        key: key.clone(),
        reason,
    };
    let text = value
        .as_string()
        .ok_or_else(|| corrupt("not a string".into()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Stores `credential` for its poll, replacing any other.
pub(crate) async fn put_credential(db: &Rexie, credential: &Credential) -> Result<(), StoreError> {
    let json = serde_json::to_string(credential).map_err(|e| StoreError::Corrupt {
        what: "credential",
        key: credential.poll.to_string(),
        reason: e.to_string(),
    })?;
    let tx = db
        .transaction(&[CREDENTIALS], TransactionMode::ReadWrite)
        .map_err(idb("write credential"))?;
    let store = tx.store(CREDENTIALS).map_err(idb("write credential"))?;

    store
        .put(
            &JsValue::from_str(&json),
            Some(&JsValue::from_str(&credential.poll.to_string())),
        )
        .await
        .map_err(idb("write credential"))?;
    commit(tx, "write credential").await
}
