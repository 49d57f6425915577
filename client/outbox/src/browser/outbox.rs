//! The voter's outbox: cast writes, flush sends, records shows.

use crdt::{Credential, Eligibility, Poll, PollId, PublicKey, SecretKey, VoteBody, VoteId};
use rexie::Rexie;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::net::{self, NetError};
use super::{js, store};
use crate::error::{CastError, CredentialError, FlushError, OpenError, StoreError};
use crate::pow::{accept_credential, check_credential, Challenge};
use crate::record::{receipts_json, Record, State};
use crate::reply::{classify, network_failure, Reply};

/// The IndexedDB database the page and the service worker share.
pub const DATABASE: &str = "votemesh";

/// The `BroadcastChannel` on which every cast and flush is announced, so that
/// other tabs and the page behind a service worker re-read the outbox.
/// Messages: `{"type":"cast","poll","entry"}` and
/// `{"type":"flushed", ...FlushReport}`.
pub const CHANNEL: &str = "votemesh-outbox";

/// Proof-of-work counters tried between two yields to the event loop.
const SOLVE_SLICE: u64 = 1 << 14;

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Votes sent (due pending records).
    pub sent: u32,
    /// Of those, now confirmed.
    pub confirmed: u32,
    /// Of those, now rejected.
    pub rejected: u32,
    /// Of those, still pending after a failure.
    pub retrying: u32,
    /// Of those, answered with a receipt from a node not trusted for the
    /// vote (so still pending): a hostile or broken path to the nodes.
    pub untrusted: u32,
    /// Records pending after the flush, due or not.
    pub pending: u32,
    /// The earliest next attempt among them (unix ms): when to flush again.
    pub next_attempt_at: Option<u64>,
}

/// The voter's key and outbox, in IndexedDB.
///
/// Open one per page or worker; any number may be open at once on the same
/// database (tabs, service worker): every update is a transaction.
pub struct Outbox {
    db: Rexie,
    key: SecretKey,
}

impl Outbox {
    /// Opens the shared database [`DATABASE`], creating the voter key on
    /// first use.
    pub async fn open() -> Result<Outbox, OpenError> {
        Outbox::open_named(DATABASE).await
    }

    /// Opens the database `name` (tests use their own), creating the voter
    /// key from `crypto.getRandomValues` on first use and reusing it after.
    pub async fn open_named(name: &str) -> Result<Outbox, OpenError> {
        let mut fresh = [0u8; 32];
        js::random_bytes(&mut fresh).map_err(OpenError::Random)?;

        let db = store::open(name).await?;
        let key = store::voter_key(&db, fresh).await?;
        Ok(Outbox { db, key })
    }

    /// Closes the database connection.
    pub fn close(self) {
        self.db.close();
    }

    /// This voter's public key.
    pub fn voter(&self) -> PublicKey {
        self.key.public()
    }

    /// Signs a vote for `choice` and stores it as pending before returning,
    /// with the `trusted` nodes, the only ones whose receipt confirms it.
    /// Sends nothing: call [`Outbox::flush`] next.
    ///
    /// Its `seq` is one more than any this outbox holds for the poll, so a
    /// second cast changes the vote. The credential held for the poll, if
    /// any, is attached. The poll's time window is left to the node (the
    /// device clock may be wrong); a vote outside it ends up rejected.
    pub async fn cast(
        &self,
        poll: &Poll,
        choice: u32,
        now_ms: u64,
        trusted: &[PublicKey],
    ) -> Result<Record, CastError> {
        let voter = self.voter();
        if trusted.is_empty() {
            return Err(CastError::NoTrustedNode { poll: poll.id });
        }
        if choice as usize >= poll.option_count() {
            return Err(CastError::UnknownOption {
                poll: poll.id,
                choice,
                options: poll.option_count(),
            });
        }
        let credential = match &poll.draft.eligibility {
            Eligibility::Open => None,
            Eligibility::AllowList { voters } => {
                if voters.binary_search(&voter).is_err() {
                    return Err(CastError::NotAllowed {
                        poll: poll.id,
                        voter,
                    });
                }
                None
            }
            Eligibility::Credential { .. } => {
                let held = store::credential(&self.db, poll.id).await?;
                let valid = held.filter(|c| check_credential(c, poll, &voter).is_ok());
                Some(valid.ok_or(CastError::NeedsCredential { poll: poll.id })?)
            }
        };
        let mut vote_id = [0u8; 16];
        js::random_bytes(&mut vote_id).map_err(CastError::Random)?;

        let body = |seq| VoteBody {
            poll: poll.id,
            voter,
            choice,
            seq,
            vote_id: VoteId(uuid::Builder::from_random_bytes(vote_id).into_uuid()),
            cast_at: now_ms,
            credential,
        };
        let record = store::insert_next(&self.db, poll.id, |seq| {
            Record::pending(body(seq).sign(&self.key), trusted)
        })
        .await?;

        announce(&serde_json::json!({
            "type": "cast",
            "poll": record.poll,
            "entry": record.entry,
        }));
        Ok(record)
    }

    /// Adds `trusted` to the nodes trusted for this voter's pending votes on
    /// `poll` (see [`Record::trust`]): a page names the nodes it trusts
    /// when it opens, and votes cast from an older page gain the newer
    /// page's nodes. Returns how many records changed.
    pub async fn trust(&self, poll: PollId, trusted: &[PublicKey]) -> Result<u32, StoreError> {
        let mut changed = 0;
        for record in store::records(&self.db, Some(poll)).await? {
            if record.state != State::Pending || trusted.iter().all(|k| record.trusted.contains(k))
            {
                continue;
            }
            let mut added = false;
            store::update(&self.db, record.entry, |r| {
                added = r.trust(trusted);
                added
            })
            .await?;
            changed += u32::from(added);
        }
        Ok(changed)
    }

    /// Sends every pending vote whose backoff has expired to
    /// `{origin}/v1/polls/{poll}/votes`, one at a time, and records what each
    /// answer established (see [`crate::Outcome`]).
    ///
    /// Safe to run concurrently with itself anywhere (tabs, service worker):
    /// nodes are idempotent by entry hash and each record is updated in its
    /// own transaction on its stored state. Fails only when the outbox
    /// cannot be read or written; the network's failures are recorded.
    pub async fn flush(&self, origin: &str) -> Result<FlushReport, FlushError> {
        self.flush_where(origin, Record::is_due).await
    }

    /// Like [`Outbox::flush`], for a flush prompted by a change rather than
    /// the backoff timer (connectivity back, a Background Sync, the page
    /// opened or shown again): sends every pending vote at once, except
    /// those a relay asked to hold back with `Retry-After`.
    pub async fn flush_now(&self, origin: &str) -> Result<FlushReport, FlushError> {
        self.flush_where(origin, Record::is_due_now).await
    }

    async fn flush_where(
        &self,
        origin: &str,
        due: fn(&Record, u64) -> bool,
    ) -> Result<FlushReport, FlushError> {
        let origin = origin.trim_end_matches('/');
        let now = js::now_ms();
        let due: Vec<Record> = store::records(&self.db, None)
            .await?
            .into_iter()
            .filter(|r| due(r, now))
            .collect();

        let mut report = FlushReport::default();
        for record in due {
            let outcome = self.send(origin, &record).await?;
            if let crate::Outcome::Retry(crate::Retry {
                untrusted_node: Some(node),
                ..
            }) = &outcome
            {
                report.untrusted += 1;
                js::warn(&format!(
                    "votemesh: a reply for vote {} carried a receipt signed by {node}, \
                     which is not a trusted node: the vote stays pending and is sent again",
                    record.entry.short()
                ));
            }
            let stored = store::update(&self.db, record.entry, |r| {
                r.apply(&outcome, js::now_ms(), js::jitter())
            })
            .await?;

            report.sent += 1;
            match stored.map(|r| r.state) {
                Some(State::Confirmed) => report.confirmed += 1,
                Some(State::Rejected) => report.rejected += 1,
                Some(State::Pending) => report.retrying += 1,
                None => {}
            }
        }

        let pending = store::records(&self.db, None).await?;
        let pending = pending.iter().filter(|r| r.state == State::Pending);
        report.pending = pending.clone().count() as u32;
        report.next_attempt_at = pending.map(|r| r.next_attempt_at).min();
        if report.sent > 0 {
            announce(&flushed_message(&report));
        }
        Ok(report)
    }

    async fn send(&self, origin: &str, record: &Record) -> Result<crate::Outcome, FlushError> {
        let url = format!("{origin}/v1/polls/{}/votes", record.poll);
        let body = serde_json::to_string(&record.vote).map_err(|e| StoreError::Corrupt {
            what: "record",
            key: record.entry.to_string(),
            reason: e.to_string(),
        })?;

        match net::post_json(&url, &body).await {
            Ok(reply) => Ok(classify(
                &record.vote,
                &record.trusted,
                Reply {
                    status: reply.status,
                    retry_after: reply.retry_after.as_deref(),
                    body: &reply.body,
                },
            )),
            Err(NetError::Network(message)) => Ok(network_failure(&message)),
            Err(NetError::Build(message)) => Err(FlushError::BadUrl { url, message }),
        }
    }

    /// This voter's records for `poll`, by seq: pending, confirmed (with the
    /// receipt) and rejected (with the refusal).
    pub async fn records(&self, poll: PollId) -> Result<Vec<Record>, StoreError> {
        store::records(&self.db, Some(poll)).await
    }

    /// Every record in the outbox, by poll then seq.
    pub async fn all_records(&self) -> Result<Vec<Record>, StoreError> {
        store::records(&self.db, None).await
    }

    /// The confirmed votes of `poll` (or of every poll) with their receipts,
    /// as JSON text for the voter to save: see [`crate::receipts_json`].
    pub async fn receipts_json(&self, poll: Option<PollId>) -> Result<String, StoreError> {
        Ok(receipts_json(&store::records(&self.db, poll).await?))
    }

    /// The credential held for `poll`, if any.
    pub async fn held_credential(&self, poll: PollId) -> Result<Option<Credential>, StoreError> {
        store::credential(&self.db, poll).await
    }

    /// Obtains a credential for a poll whose eligibility is `credential`,
    /// through the relay at `origin`: asks for a challenge, solves the proof
    /// of work here (yielding to the event loop between slices), redeems it,
    /// checks the credential against the poll's registrar and stores it.
    /// Returns the credential already held if it is still valid.
    pub async fn credential(
        &self,
        origin: &str,
        poll: &Poll,
    ) -> Result<Credential, CredentialError> {
        let origin = origin.trim_end_matches('/');
        let voter = self.voter();
        if let Some(held) = store::credential(&self.db, poll.id).await? {
            if check_credential(&held, poll, &voter).is_ok() {
                return Ok(held);
            }
        }
        if !matches!(poll.draft.eligibility, Eligibility::Credential { .. }) {
            return Err(CredentialError::NotNeeded { poll: poll.id });
        }

        let url = format!("{origin}/v1/polls/{}/challenge", poll.id);
        let challenge = Challenge::parse(&post("challenge", &url, "{}").await?)?;
        let solution = solve(&challenge, &voter).await;

        let url = format!("{origin}/v1/polls/{}/credential", poll.id);
        let request = serde_json::json!({
            "voter": voter,
            "nonce": hex::encode(challenge.nonce),
            "solution": hex::encode(solution),
        });
        let body = post("credential", &url, &request.to_string()).await?;
        let credential = accept_credential(&body, poll, &voter)?;
        store::put_credential(&self.db, &credential).await?;
        Ok(credential)
    }
}

/// Searches counters from 0 in slices until one solves the challenge.
async fn solve(challenge: &Challenge, voter: &PublicKey) -> [u8; 8] {
    let mut from = 0u64;
    loop {
        if let Some(solution) = challenge.solve_range(voter, from, SOLVE_SLICE) {
            return solution;
        }
        from = from.saturating_add(SOLVE_SLICE);
        js::yield_now().await;
    }
}

/// POSTs for a credential step; a non-2xx answer is a refusal.
async fn post(step: &'static str, url: &str, body: &str) -> Result<String, CredentialError> {
    let reply = net::post_json(url, body).await.map_err(|e| match e {
        NetError::Build(message) | NetError::Network(message) => {
            CredentialError::Network { step, message }
        }
    })?;
    if (200..300).contains(&reply.status) {
        return Ok(reply.body);
    }

    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: crate::Refusal,
    }
    let error = serde_json::from_str::<ErrorBody>(&reply.body).ok();
    let (code, message) = match error {
        Some(e) => (e.error.code, e.error.message),
        None => (format!("http_{}", reply.status), reply.body),
    };
    Err(CredentialError::Refused {
        step,
        status: reply.status,
        code,
        message,
    })
}

fn flushed_message(report: &FlushReport) -> serde_json::Value {
    let mut message = serde_json::to_value(report).unwrap_or_default();
    if let Some(fields) = message.as_object_mut() {
        fields.insert("type".into(), "flushed".into());
    }
    message
}

/// Posts `message` on [`CHANNEL`]. Best effort: browsers without
/// `BroadcastChannel` (Safari before 15.4) rely on the page's own re-reads.
fn announce(message: &serde_json::Value) {
    let Ok(value) = js_sys::JSON::parse(&message.to_string()) else {
        return;
    };
    if let Ok(channel) = web_sys::BroadcastChannel::new(CHANNEL) {
        let _ = channel.post_message(&value);
        channel.close();
    }
}

impl From<FlushReport> for JsValue {
    fn from(report: FlushReport) -> JsValue {
        js_sys::JSON::parse(&flushed_message(&report).to_string()).unwrap_or(JsValue::NULL)
    }
}
