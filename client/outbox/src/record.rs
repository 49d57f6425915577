//! One vote in the outbox and the only transitions it may make.
//!
//! ```text
//! pending --verified receipt--> confirmed
//! pending --definitive refusal--> rejected --verified receipt--> confirmed
//! pending --anything else--> pending (attempts + 1, later next attempt)
//! ```
//!
//! Confirmed is final. A refusal never outranks a receipt: if one tab records
//! a refusal and another then holds a node's signature for the same entry,
//! the signature is the stronger fact.
//!
//! A record carries the keys of the nodes whose receipts may confirm it,
//! taken from the poll's page when the vote was cast: whoever sends it later
//! (another tab, the service worker with no page open) applies the same rule.

use crdt::{EntryHash, PollId, PublicKey, Receipt, Vote};
use serde::{Deserialize, Serialize};

use crate::backoff::{retry_delay_ms, MAX_RETRY_AFTER_MS};
use crate::reply::{Outcome, Refusal};

/// Where a vote stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Signed and stored on this device; no node has acknowledged it yet.
    Pending,
    /// A node holds it: `receipt` is its signature.
    Confirmed,
    /// Refused for good: `refusal` says why. Never sent again.
    Rejected,
}

impl State {
    /// `pending`, `confirmed` or `rejected`, as in the JSON form.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Confirmed => "confirmed",
            State::Rejected => "rejected",
        }
    }
}

/// A vote in the outbox, with what is known of its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The entry hash: the vote's identity, and the record's key.
    pub entry: EntryHash,
    /// The poll voted in.
    pub poll: PollId,
    /// The option chosen.
    pub choice: u32,
    /// The voter's revision number for this poll; the highest counts.
    pub seq: u64,
    /// When it was cast, unix ms (signed into the vote).
    pub cast_at: u64,
    /// The signed vote, exactly as sent.
    pub vote: Vote,
    /// The nodes whose receipt confirms it (sorted, no duplicates): the
    /// regional nodes the poll's page named. Empty confirms nothing.
    #[serde(default)]
    pub trusted: Vec<PublicKey>,
    /// Where it stands.
    pub state: State,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix ms before which a flush on the backoff timer does not send it
    /// again ([`Record::is_due`]).
    pub next_attempt_at: u64,
    /// Unix ms before which nothing sends it again, not even a flush on
    /// regained connectivity: the wait a relay asked for with `Retry-After`
    /// (0: none).
    #[serde(default)]
    pub hold_until: u64,
    /// Why the last attempt failed, while pending.
    pub last_failure: Option<String>,
    /// Answers that carried a receipt from a node not in `trusted`: a sign
    /// of a hostile or broken path between this browser and the nodes.
    #[serde(default)]
    pub untrusted_receipts: u32,
    /// The node's receipt, once confirmed.
    pub receipt: Option<Receipt>,
    /// Why it was refused, once rejected.
    pub refusal: Option<Refusal>,
}

impl Record {
    /// A new pending record for `vote`, due at once, which a receipt from
    /// one of the `trusted` nodes confirms.
    pub fn pending(vote: Vote, trusted: &[PublicKey]) -> Record {
        let body = vote.body();
        let mut trusted = trusted.to_vec();
        trusted.sort();
        trusted.dedup();
        Record {
            entry: vote.hash(),
            poll: body.poll,
            choice: body.choice,
            seq: body.seq,
            cast_at: body.cast_at,
            state: State::Pending,
            attempts: 0,
            next_attempt_at: 0,
            hold_until: 0,
            last_failure: None,
            untrusted_receipts: 0,
            trusted,
            receipt: None,
            refusal: None,
            vote,
        }
    }

    /// Whether a flush on the backoff timer at `now_ms` should send it.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.state == State::Pending && self.next_attempt_at <= now_ms
    }

    /// Whether a flush prompted by a change (connectivity back, a Background
    /// Sync, a page opened or shown again) at `now_ms` should send it: any
    /// pending vote, unless a relay asked to wait longer.
    pub fn is_due_now(&self, now_ms: u64) -> bool {
        self.state == State::Pending && self.hold_until <= now_ms
    }

    /// Adds `keys` to the nodes trusted for a pending record (a newer page
    /// of the same poll may name more nodes). Never removes one, so two tabs
    /// holding pages of different ages cannot take turns undoing each other.
    /// Returns whether the record changed.
    pub fn trust(&mut self, keys: &[PublicKey]) -> bool {
        if self.state != State::Pending {
            return false;
        }
        let before = self.trusted.len();
        self.trusted.extend_from_slice(keys);
        self.trusted.sort();
        self.trusted.dedup();
        self.trusted.len() != before
    }

    /// Applies what an attempt at `now_ms` established; `jitter` is a uniform
    /// draw from `[0, 1)` for the backoff. Returns whether the record changed.
    ///
    /// Idempotent for receipts and refusals, and never moves a confirmed
    /// record, so it is safe to apply to whatever another tab wrote meanwhile.
    pub fn apply(&mut self, outcome: &Outcome, now_ms: u64, jitter: f64) -> bool {
        match (self.state, outcome) {
            (State::Confirmed, _) => false,
            (_, Outcome::Confirmed(checked)) => {
                if checked.receipt().entry != self.entry {
                    return false;
                }
                self.state = State::Confirmed;
                self.receipt = Some(checked.receipt().clone());
                self.refusal = None;
                self.last_failure = None;
                true
            }
            (State::Pending, Outcome::Refused(refusal)) => {
                self.state = State::Rejected;
                self.refusal = Some(refusal.clone());
                self.last_failure = None;
                true
            }
            (State::Pending, Outcome::Retry(retry)) => {
                self.attempts = self.attempts.saturating_add(1);
                let wait = retry_delay_ms(self.attempts, jitter, retry.retry_after_ms);
                self.next_attempt_at = now_ms.saturating_add(wait);
                self.hold_until = retry.retry_after_ms.map_or(0, |asked| {
                    now_ms.saturating_add(asked.min(MAX_RETRY_AFTER_MS))
                });
                self.last_failure = Some(retry.reason.clone());
                if retry.untrusted_node.is_some() {
                    self.untrusted_receipts = self.untrusted_receipts.saturating_add(1);
                }
                true
            }
            (State::Rejected, _) => false,
        }
    }
}

/// The voter's confirmed votes with their receipts, as a JSON array of
/// `{"vote": ..., "receipt": ...}`: what a voter keeps outside the browser
/// to ask any node later whether it holds their vote.
pub fn receipts_json(records: &[Record]) -> String {
    let kept: Vec<_> = records
        .iter()
        .filter_map(|r| {
            let receipt = r.receipt.as_ref().filter(|_| r.state == State::Confirmed)?;
            Some(serde_json::json!({ "vote": r.vote, "receipt": receipt }))
        })
        .collect();
    serde_json::Value::Array(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{check_receipt, Retry};
    use crdt::{SecretKey, VoteBody, VoteId};

    fn record() -> Record {
        let voter = SecretKey::from_seed(&[1; 32]);
        let vote = VoteBody {
            poll: PollId([7; 32]),
            voter: voter.public(),
            choice: 0,
            seq: 1,
            vote_id: VoteId::from_bytes([3; 16]),
            cast_at: 1_000,
            credential: None,
        }
        .sign(&voter);
        Record::pending(vote, &[node()])
    }

    fn node() -> PublicKey {
        SecretKey::from_seed(&[5; 32]).public()
    }

    fn confirmed(record: &Record) -> Outcome {
        let node = SecretKey::from_seed(&[5; 32]);
        let tree = crdt::GroupTree::new(&[record.entry]).unwrap();
        let receipt = crdt::GroupStatement::sign(&node, record.poll, &tree, 2_000)
            .receipt(&tree, 0)
            .unwrap();
        let checked = check_receipt(&record.vote, receipt, &record.trusted);
        Outcome::Confirmed(checked.expect("valid receipt"))
    }

    fn retry(after: Option<u64>) -> Outcome {
        Outcome::Retry(Retry {
            reason: "network error: offline".into(),
            retry_after_ms: after,
            untrusted_node: None,
        })
    }

    fn refused() -> Outcome {
        Outcome::Refused(Refusal {
            code: "outside_window".into(),
            message: "closed".into(),
        })
    }

    #[test]
    fn a_failure_keeps_it_pending_and_pushes_the_next_attempt_out() {
        let mut r = record();

        assert!(r.apply(&retry(None), 10_000, 0.5));

        assert_eq!(r.state, State::Pending);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.next_attempt_at, 11_000);
        assert!(!r.is_due(10_999));
        assert!(r.is_due(11_000));
        assert_eq!(r.last_failure.as_deref(), Some("network error: offline"));
    }

    #[test]
    fn retry_after_sets_the_next_attempt() {
        let mut r = record();

        r.apply(&retry(Some(60_000)), 10_000, 0.0);

        assert_eq!(r.next_attempt_at, 70_000);
    }

    #[test]
    fn a_prompted_flush_skips_the_backoff_but_not_a_relays_retry_after() {
        let mut r = record();
        r.apply(&retry(None), 10_000, 0.5);
        assert!(!r.is_due(10_500));
        assert!(
            r.is_due_now(10_500),
            "own backoff does not hold back a prompted flush"
        );

        r.apply(&retry(Some(60_000)), 10_500, 0.0);
        assert!(!r.is_due_now(69_000), "the relay asked to wait");
        assert!(r.is_due_now(70_500));

        r.apply(&retry(None), 70_500, 0.0);
        assert!(
            r.is_due_now(70_500),
            "a later failure without Retry-After lifts the hold"
        );
    }

    #[test]
    fn confirmed_is_final() {
        let mut r = record();
        let ok = confirmed(&r);

        assert!(r.apply(&ok, 1, 0.0));
        let before = r.clone();

        assert!(!r.apply(&retry(None), 2, 0.0));
        assert!(!r.apply(&refused(), 3, 0.0));
        assert!(!r.apply(&ok, 4, 0.0));
        assert_eq!(r, before);
        assert!(!r.is_due(u64::MAX));
    }

    #[test]
    fn a_refusal_is_kept_and_never_retried() {
        let mut r = record();

        assert!(r.apply(&refused(), 1, 0.0));
        assert!(!r.apply(&retry(None), 2, 0.0));

        assert_eq!(r.state, State::Rejected);
        assert_eq!(r.attempts, 0);
        assert_eq!(
            r.refusal.as_ref().map(|e| e.code.as_str()),
            Some("outside_window")
        );
        assert!(!r.is_due(u64::MAX));
    }

    #[test]
    fn a_receipt_outranks_an_earlier_refusal() {
        let mut r = record();
        let ok = confirmed(&r);

        r.apply(&refused(), 1, 0.0);
        assert!(r.apply(&ok, 2, 0.0));

        assert_eq!(r.state, State::Confirmed);
        assert_eq!(r.refusal, None);
    }

    #[test]
    fn a_receipt_for_another_record_changes_nothing() {
        let mut r = record();
        let mut other = record();
        other.entry = EntryHash([1; 32]);
        other.vote = {
            let voter = SecretKey::from_seed(&[2; 32]);
            let mut body = r.vote.body().clone();
            body.seq = 9;
            body.sign(&voter)
        };
        other.entry = other.vote.hash();

        assert!(!r.apply(&confirmed(&other), 1, 0.0));
        assert_eq!(r.state, State::Pending);
    }

    #[test]
    fn receipts_export_lists_confirmed_votes_only() {
        let pending = record();
        let mut done = record();
        done.apply(&confirmed(&done), 1, 0.0);

        let json: serde_json::Value =
            serde_json::from_str(&receipts_json(&[pending, done.clone()])).expect("json");

        let list = json.as_array().expect("array");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["receipt"]["entry"], done.entry.to_string());
        assert_eq!(list[0]["vote"]["seq"], 1);
    }

    #[test]
    fn a_receipt_from_an_untrusted_node_is_counted_and_retried() {
        let mut r = record();
        let stranger = SecretKey::from_seed(&[6; 32]);
        let tree = crdt::GroupTree::new(&[r.entry]).unwrap();
        let receipt = crdt::GroupStatement::sign(&stranger, r.poll, &tree, 2_000)
            .receipt(&tree, 0)
            .unwrap();
        let body = serde_json::json!({ "receipt": receipt }).to_string();
        let reply = crate::Reply {
            status: 200,
            retry_after: None,
            body: &body,
        };
        let outcome = crate::classify(&r.vote, &r.trusted, reply);

        assert!(r.apply(&outcome, 10_000, 0.5));

        assert_eq!(
            (r.state, r.attempts, r.untrusted_receipts),
            (State::Pending, 1, 1)
        );
        assert_eq!(r.receipt, None);
        assert!(r.is_due(r.next_attempt_at));
    }

    #[test]
    fn trust_only_adds_keys_and_only_to_pending_votes() {
        let mut r = record();
        let other = SecretKey::from_seed(&[6; 32]).public();

        assert!(r.trust(&[other, node()]));
        assert!(!r.trust(&[node()]), "nothing new");
        assert_eq!(r.trusted.len(), 2);
        assert!(r.trusted.windows(2).all(|w| w[0] < w[1]), "sorted");

        let mut done = record();
        done.apply(&confirmed(&done), 1, 0.0);
        assert!(!done.trust(&[other]));
        assert_eq!(done.trusted, vec![node()]);
    }

    #[test]
    fn a_record_stored_before_trusted_keys_reads_with_none() {
        let mut json = serde_json::to_value(record()).expect("serialize");
        let fields = json.as_object_mut().expect("object");
        fields.remove("trusted");
        fields.remove("untrusted_receipts");

        let old: Record = serde_json::from_value(json).expect("parse");

        assert_eq!((old.trusted.len(), old.untrusted_receipts), (0, 0));
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let mut r = record();
        r.apply(&retry(None), 5, 0.3);

        let json = serde_json::to_string(&r).expect("serialize");

        assert_eq!(serde_json::from_str::<Record>(&json).expect("parse"), r);
    }
}
