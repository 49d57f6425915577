//! What the relay's answer to `POST /v1/polls/{id}/votes` means for the vote.
//!
//! Three outcomes, and only two leave the pending state: a receipt that
//! verifies and names this vote ([`Outcome::Confirmed`]), or a definitive
//! refusal ([`Outcome::Refused`]). Everything else is [`Outcome::Retry`].

use crdt::{EntryHash, PollId, Receipt, Vote};
use serde::{Deserialize, Serialize};

use crate::backoff::parse_retry_after;

/// A node's receipt that has been checked against the vote it acknowledges.
/// Only [`check_receipt`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReceipt(Receipt);

impl CheckedReceipt {
    /// The receipt.
    pub fn receipt(&self) -> &Receipt {
        &self.0
    }

    /// The receipt, by value.
    pub fn into_receipt(self) -> Receipt {
        self.0
    }
}

/// Why a receipt does not acknowledge a vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The node's signature does not verify.
    #[error("receipt signature of node {node} does not verify")]
    BadSignature {
        /// The node named in the receipt.
        node: crdt::PublicKey,
    },
    /// The receipt's inclusion path does not lead from this vote to the root
    /// the node signed.
    #[error("receipt of node {node} does not include the vote in the group it signed")]
    BadPath {
        /// The node named in the receipt.
        node: crdt::PublicKey,
    },
    /// The receipt is for another poll.
    #[error("receipt is for poll {got}, the vote for poll {want}")]
    WrongPoll {
        /// The vote's poll.
        want: PollId,
        /// The receipt's poll.
        got: PollId,
    },
    /// The receipt is for another entry.
    #[error("receipt is for entry {got}, the vote is entry {want}")]
    WrongEntry {
        /// The vote's entry hash.
        want: EntryHash,
        /// The receipt's entry hash.
        got: EntryHash,
    },
}

/// Checks that `receipt` is a node's valid signature over this exact vote:
/// the receipt names the vote's poll and entry; for a group receipt
/// (version 2), its inclusion path leads from the entry to the group's root
/// and the node's signature over that root verifies; for a version-1
/// receipt, the node's signature over the entry verifies.
pub fn check_receipt(vote: &Vote, receipt: Receipt) -> Result<CheckedReceipt, ReceiptError> {
    if receipt.poll != vote.body().poll {
        return Err(ReceiptError::WrongPoll {
            want: vote.body().poll,
            got: receipt.poll,
        });
    }
    if receipt.entry != vote.hash() {
        return Err(ReceiptError::WrongEntry {
            want: vote.hash(),
            got: receipt.entry,
        });
    }
    match receipt.verify() {
        Ok(()) => Ok(CheckedReceipt(receipt)),
        Err(crdt::ReceiptError::Path { .. }) => Err(ReceiptError::BadPath { node: receipt.node }),
        Err(_) => Err(ReceiptError::BadSignature { node: receipt.node }),
    }
}

/// A definitive refusal, shown to the voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The machine-readable code (`bad_signature`, `outside_window`, ...).
    pub code: String,
    /// The relay's or node's explanation.
    pub message: String,
}

/// A failure worth trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// What went wrong, for the voter's view of a pending vote.
    pub reason: String,
    /// The server's `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

/// What one attempt to send a vote established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A node holds the vote and signed for it.
    Confirmed(CheckedReceipt),
    /// The vote is refused for good; sending it again cannot help.
    Refused(Refusal),
    /// Nothing is known yet: try again later.
    Retry(Retry),
}

/// An HTTP answer as it came back.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    /// The body text.
    pub body: &'a str,
}

#[derive(Deserialize)]
struct Stored {
    receipt: Receipt,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Refusal,
}

/// Classifies the answer to sending `vote`.
///
/// 2xx must carry a receipt for this vote; 4xx is a refusal except 404 (the
/// relay does not know the poll yet, or the origin is wrong), 408 and 429;
/// anything else is retried.
pub fn classify(vote: &Vote, reply: Reply<'_>) -> Outcome {
    let retry = |reason: String| {
        Outcome::Retry(Retry {
            reason,
            retry_after_ms: reply.retry_after.and_then(parse_retry_after),
        })
    };

    if (200..300).contains(&reply.status) {
        let stored = match serde_json::from_str::<Stored>(reply.body) {
            Ok(stored) => stored,
            Err(e) => return retry(format!("reply {} carries no receipt: {e}", reply.status)),
        };
        return match check_receipt(vote, stored.receipt) {
            Ok(checked) => Outcome::Confirmed(checked),
            Err(e) => retry(e.to_string()),
        };
    }

    let error = serde_json::from_str::<ErrorBody>(reply.body).ok();
    if is_definitive(reply.status) {
        return Outcome::Refused(error.map_or_else(
            || Refusal {
                code: format!("http_{}", reply.status),
                message: excerpt(reply.body),
            },
            |e| e.error,
        ));
    }
    match error {
        Some(e) => retry(format!(
            "{} {}: {}",
            reply.status, e.error.code, e.error.message
        )),
        None => retry(format!("http {}", reply.status)),
    }
}

/// The outcome of a request that got no HTTP answer at all.
pub fn network_failure(message: &str) -> Outcome {
    Outcome::Retry(Retry {
        reason: format!("network error: {message}"),
        retry_after_ms: None,
    })
}

fn is_definitive(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 404 | 408 | 429)
}

/// The first 200 characters of a body that is not our JSON error.
fn excerpt(body: &str) -> String {
    body.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{GroupStatement, GroupTree, SecretKey, VoteBody, VoteId};
    use serde_json::json;

    fn vote() -> Vote {
        VoteBody {
            poll: PollId([7; 32]),
            voter: SecretKey::from_seed(&[1; 32]).public(),
            choice: 1,
            seq: 1,
            vote_id: VoteId::from_bytes([3; 16]),
            cast_at: 1_000,
            credential: None,
        }
        .sign(&SecretKey::from_seed(&[1; 32]))
    }

    /// A node's receipt for `entry` in a group with two other entries.
    fn group_receipt(poll: PollId, entry: EntryHash) -> Receipt {
        let mut group = vec![entry, EntryHash([0x11; 32]), EntryHash([0xee; 32])];
        group.sort();
        let tree = GroupTree::new(&group).unwrap();
        let statement = GroupStatement::sign(&SecretKey::from_seed(&[5; 32]), poll, &tree, 2_000);
        statement
            .receipt(&tree, tree.position(&entry).unwrap())
            .unwrap()
    }

    fn receipt_for(vote: &Vote) -> Receipt {
        group_receipt(vote.body().poll, vote.hash())
    }

    fn reply(status: u16, body: &str) -> Reply<'_> {
        Reply {
            status,
            retry_after: None,
            body,
        }
    }

    #[test]
    fn a_receipt_for_the_vote_confirms_it() {
        let vote = vote();
        let body = json!({"receipt": receipt_for(&vote), "status": "duplicate"}).to_string();

        let outcome = classify(&vote, reply(200, &body));

        let Outcome::Confirmed(checked) = outcome else {
            panic!("not confirmed: {outcome:?}");
        };
        assert_eq!(checked.receipt(), &receipt_for(&vote));
    }

    #[test]
    fn a_version_1_receipt_for_the_vote_still_confirms_it() {
        let vote = vote();
        let node = SecretKey::from_seed(&[5; 32]);
        let v1 = Receipt::sign_v1(&node, vote.body().poll, vote.hash(), 2_000);

        assert_eq!(check_receipt(&vote, v1.clone()).unwrap().receipt(), &v1);
    }

    #[test]
    fn a_receipt_whose_path_does_not_reach_the_signed_root_is_refused() {
        let vote = vote();
        let good = receipt_for(&vote);
        let mut bent = good.clone();
        bent.group.as_mut().unwrap().path[0].0[0] ^= 1;
        let mut moved = good.clone();
        moved.group.as_mut().unwrap().index ^= 1;
        let mut shorter = good.clone();
        shorter.group.as_mut().unwrap().path.pop();

        for bad in [bent, moved, shorter] {
            assert_eq!(
                check_receipt(&vote, bad.clone()),
                Err(ReceiptError::BadPath { node: good.node })
            );
            let body = json!({"receipt": bad, "status": "stored"}).to_string();
            assert!(matches!(
                classify(&vote, reply(200, &body)),
                Outcome::Retry(_)
            ));
        }
    }

    #[test]
    fn a_group_receipt_signed_over_another_root_is_refused() {
        let vote = vote();
        // A real path to a root the node never signed.
        let mut other = receipt_for(&vote);
        let elsewhere = group_receipt(PollId([8; 32]), vote.hash());
        other.signature = elsewhere.signature;

        assert_eq!(
            check_receipt(&vote, other.clone()),
            Err(ReceiptError::BadSignature { node: other.node })
        );
    }

    #[test]
    fn a_forged_receipt_keeps_the_vote_pending() {
        let vote = vote();
        let mut forged = receipt_for(&vote);
        forged.received_at += 1;
        let body = json!({"receipt": forged, "status": "stored"}).to_string();

        assert!(matches!(
            classify(&vote, reply(200, &body)),
            Outcome::Retry(_)
        ));
        assert_eq!(
            check_receipt(&vote, forged.clone()),
            Err(ReceiptError::BadSignature { node: forged.node })
        );
    }

    #[test]
    fn a_receipt_for_another_entry_or_poll_is_refused() {
        let vote = vote();
        let other_entry = group_receipt(vote.body().poll, EntryHash([9; 32]));
        let other_poll = group_receipt(PollId([8; 32]), vote.hash());

        assert!(matches!(
            check_receipt(&vote, other_entry),
            Err(ReceiptError::WrongEntry { .. })
        ));
        assert!(matches!(
            check_receipt(&vote, other_poll),
            Err(ReceiptError::WrongPoll { .. })
        ));
    }

    #[test]
    fn a_2xx_without_a_receipt_is_retried() {
        let vote = vote();

        assert!(matches!(
            classify(&vote, reply(200, "<html>")),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(&vote, reply(201, "{}")),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn a_422_is_a_refusal_with_the_node_code() {
        let body = r#"{"error":{"code":"outside_window","message":"poll closed"}}"#;

        let outcome = classify(&vote(), reply(422, body));

        assert_eq!(
            outcome,
            Outcome::Refused(Refusal {
                code: "outside_window".into(),
                message: "poll closed".into()
            })
        );
    }

    #[test]
    fn a_4xx_without_our_error_body_is_still_a_refusal() {
        let outcome = classify(&vote(), reply(413, "  too big  "));

        assert_eq!(
            outcome,
            Outcome::Refused(Refusal {
                code: "http_413".into(),
                message: "too big".into()
            })
        );
    }

    #[test]
    fn timeouts_rate_limits_unknown_polls_and_5xx_are_retried() {
        let vote = vote();
        for status in [404, 408, 429, 500, 502, 503, 504, 302, 100] {
            let body = r#"{"error":{"code":"x","message":"y"}}"#;
            assert!(
                matches!(classify(&vote, reply(status, body)), Outcome::Retry(_)),
                "status {status}"
            );
        }
    }

    #[test]
    fn retry_after_is_carried_in_milliseconds() {
        let busy = Reply {
            status: 429,
            retry_after: Some("30"),
            body: "",
        };

        let Outcome::Retry(retry) = classify(&vote(), busy) else {
            panic!("429 must be retried");
        };
        assert_eq!(retry.retry_after_ms, Some(30_000));
    }
}
