//! What the relay's answer to `POST /v1/polls/{id}/votes` means for the vote.
//!
//! Three outcomes, and only two leave the pending state: a receipt that
//! names this vote, comes from a node the voter's page trusts and verifies
//! ([`Outcome::Confirmed`]), or a node's or relay's refusal of the vote itself
//! ([`Outcome::Refused`]). Everything else is [`Outcome::Retry`]: whatever a
//! proxy, a captive portal or a misconfigured gateway on the way may answer
//! never ends the retries.

use crdt::{EntryHash, PollId, PublicKey, Receipt, Vote};
use serde::{Deserialize, Serialize};

use crate::backoff::parse_retry_after;

/// A node's receipt that has been checked against the vote it acknowledges
/// and the nodes trusted for it. Only [`check_receipt`] makes one.
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
    /// The receipt is signed by a key that is not one of the trusted nodes:
    /// anyone can sign a receipt, only a trusted node's says the vote is held.
    #[error("receipt is from node {node}, which is not a trusted node")]
    UntrustedNode {
        /// The key named in the receipt.
        node: PublicKey,
    },
}

/// Checks that `receipt` acknowledges this exact vote, comes from one of the
/// `trusted` nodes and carries that node's valid signature.
///
/// Three steps, in this order: the receipt names the vote's poll and entry;
/// its node is trusted ([`check_trusted`]); its signature verifies (for a
/// group receipt, version 2, its inclusion path leads from the entry to the
/// group's root and the node's signature over that root verifies; for a
/// version-1 receipt, the node's signature over the entry verifies). The trust
/// step looks at the key the receipt names, not at how the signature is
/// carried, so it applies unchanged to any form of signed receipt.
pub fn check_receipt(
    vote: &Vote,
    receipt: Receipt,
    trusted: &[PublicKey],
) -> Result<CheckedReceipt, ReceiptError> {
    check_names(vote, &receipt)?;
    check_trusted(&receipt, trusted)?;
    match receipt.verify() {
        Ok(()) => Ok(CheckedReceipt(receipt)),
        Err(crdt::ReceiptError::Path { .. }) => Err(ReceiptError::BadPath { node: receipt.node }),
        Err(_) => Err(ReceiptError::BadSignature { node: receipt.node }),
    }
}

/// Whether the node that `receipt` names is one of the `trusted` keys. An
/// empty set trusts no one.
pub fn check_trusted(receipt: &Receipt, trusted: &[PublicKey]) -> Result<(), ReceiptError> {
    if trusted.contains(&receipt.node) {
        return Ok(());
    }
    Err(ReceiptError::UntrustedNode { node: receipt.node })
}

fn check_names(vote: &Vote, receipt: &Receipt) -> Result<(), ReceiptError> {
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
    Ok(())
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
    /// The answer carried a receipt from this node, which is not trusted
    /// for the vote: counted apart, as a sign of a hostile or broken path.
    pub untrusted_node: Option<PublicKey>,
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

/// The error codes, of a node (`node/src/error.rs`, the admission rule's
/// `crdt::Rejection::code`) or of the relay (`edge-relay/src/api.rs`), that
/// say the signed vote itself can never be admitted: sending the same bytes
/// again cannot help. Any other code, known or not, is retried.
///
/// Not here, on purpose: `invalid_json`, `unsupported_media_type`,
/// `body_too_large` and `invalid_path` (the vote this client signed is well
/// formed and tiny, so these say something on the way mangled or limited the
/// request), `unknown_poll` (a node may learn the poll later) and
/// `rate_limited`, `request_timeout`, `storage_unavailable`, `no_upstream`.
pub const REFUSAL_CODES: [&str; 11] = [
    "wrong_poll",
    "unknown_option",
    "outside_window",
    "missing_credential",
    "unexpected_credential",
    "credential_mismatch",
    "bad_credential_signature",
    "not_allowed",
    "non_canonical_signature",
    "bad_voter_key",
    "bad_signature",
];

/// Classifies the answer to sending `vote`, whose receipts count only from
/// the `trusted` nodes.
///
/// A 2xx must carry a receipt for this vote from a trusted node
/// ([`check_receipt`]). A refusal is a 4xx (but 404, 408, 425 and 429)
/// whose body is the node's or relay's JSON error with one of the
/// [`REFUSAL_CODES`]. Anything else, an HTML page of a proxy, a 403 or 413 of
/// something on the way, an unknown code, is retried with backoff.
pub fn classify(vote: &Vote, trusted: &[PublicKey], reply: Reply<'_>) -> Outcome {
    let retry = |reason: String, untrusted_node: Option<PublicKey>| {
        Outcome::Retry(Retry {
            reason,
            retry_after_ms: reply.retry_after.and_then(parse_retry_after),
            untrusted_node,
        })
    };

    if (200..300).contains(&reply.status) {
        let stored = match serde_json::from_str::<Stored>(reply.body) {
            Ok(stored) => stored,
            Err(e) => {
                let reason = format!("reply {} carries no receipt: {e}", reply.status);
                return retry(reason, None);
            }
        };
        return match check_receipt(vote, stored.receipt, trusted) {
            Ok(checked) => Outcome::Confirmed(checked),
            Err(e @ ReceiptError::UntrustedNode { node }) => retry(e.to_string(), Some(node)),
            Err(e) => retry(e.to_string(), None),
        };
    }

    let error = serde_json::from_str::<ErrorBody>(reply.body).ok();
    match error {
        Some(e) if may_refuse(reply.status) && is_refusal_code(&e.error.code) => {
            Outcome::Refused(e.error)
        }
        Some(e) => retry(
            format!("{} {}: {}", reply.status, e.error.code, e.error.message),
            None,
        ),
        None if reply.body.trim().is_empty() => retry(format!("http {}", reply.status), None),
        None => retry(
            format!("http {}: {}", reply.status, excerpt(reply.body)),
            None,
        ),
    }
}

/// Whether `code` is one of the [`REFUSAL_CODES`].
pub fn is_refusal_code(code: &str) -> bool {
    REFUSAL_CODES.contains(&code)
}

/// The outcome of a request that got no HTTP answer at all.
pub fn network_failure(message: &str) -> Outcome {
    Outcome::Retry(Retry {
        reason: format!("network error: {message}"),
        retry_after_ms: None,
        untrusted_node: None,
    })
}

/// Statuses that may carry a refusal: the client errors, but those that
/// mean "not now" (404 the poll is not known yet, 408 timeout, 425 too
/// early, 429 rate limited).
fn may_refuse(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 404 | 408 | 425 | 429)
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

    const NODE: [u8; 32] = [5; 32];
    const STRANGER: [u8; 32] = [6; 32];

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

    fn trusted() -> Vec<PublicKey> {
        vec![SecretKey::from_seed(&NODE).public()]
    }

    /// The receipt of node `seed` for `entry` in a group with two other entries.
    fn group_receipt_by(seed: [u8; 32], poll: PollId, entry: EntryHash) -> Receipt {
        let mut group = vec![entry, EntryHash([0x11; 32]), EntryHash([0xee; 32])];
        group.sort();
        let tree = GroupTree::new(&group).unwrap();
        let statement = GroupStatement::sign(&SecretKey::from_seed(&seed), poll, &tree, 2_000);
        statement
            .receipt(&tree, tree.position(&entry).unwrap())
            .unwrap()
    }

    /// The trusted node's receipt for `entry` in a group of three.
    fn group_receipt(poll: PollId, entry: EntryHash) -> Receipt {
        group_receipt_by(NODE, poll, entry)
    }

    fn receipt_by(seed: [u8; 32], vote: &Vote) -> Receipt {
        group_receipt_by(seed, vote.body().poll, vote.hash())
    }

    fn receipt_for(vote: &Vote) -> Receipt {
        receipt_by(NODE, vote)
    }

    fn reply(status: u16, body: &str) -> Reply<'_> {
        Reply {
            status,
            retry_after: None,
            body,
        }
    }

    fn error_body(code: &str) -> String {
        json!({"error": {"code": code, "message": "m"}}).to_string()
    }

    #[test]
    fn a_receipt_for_the_vote_confirms_it() {
        let vote = vote();
        let body = json!({"receipt": receipt_for(&vote), "status": "duplicate"}).to_string();

        let outcome = classify(&vote, &trusted(), reply(200, &body));

        let Outcome::Confirmed(checked) = outcome else {
            panic!("not confirmed: {outcome:?}");
        };
        assert_eq!(checked.receipt(), &receipt_for(&vote));
    }

    #[test]
    fn a_version_1_receipt_for_the_vote_still_confirms_it() {
        let vote = vote();
        let node = SecretKey::from_seed(&NODE);
        let v1 = Receipt::sign_v1(&node, vote.body().poll, vote.hash(), 2_000);

        assert_eq!(
            check_receipt(&vote, v1.clone(), &trusted())
                .unwrap()
                .receipt(),
            &v1
        );
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
                check_receipt(&vote, bad.clone(), &trusted()),
                Err(ReceiptError::BadPath { node: good.node })
            );
            let body = json!({"receipt": bad, "status": "stored"}).to_string();
            assert!(matches!(
                classify(&vote, &trusted(), reply(200, &body)),
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
            check_receipt(&vote, other.clone(), &trusted()),
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
            classify(&vote, &trusted(), reply(200, &body)),
            Outcome::Retry(Retry {
                untrusted_node: None,
                ..
            })
        ));
        assert_eq!(
            check_receipt(&vote, forged.clone(), &trusted()),
            Err(ReceiptError::BadSignature { node: forged.node })
        );
    }

    #[test]
    fn a_valid_receipt_from_a_stranger_key_is_no_confirmation() {
        let vote = vote();
        let stranger = receipt_by(STRANGER, &vote);
        assert!(stranger.verify().is_ok(), "the signature itself is fine");
        let body = json!({"receipt": stranger, "status": "stored"}).to_string();

        let outcome = classify(&vote, &trusted(), reply(200, &body));

        let Outcome::Retry(retry) = outcome else {
            panic!("a stranger's receipt confirmed the vote: {outcome:?}");
        };
        assert_eq!(retry.untrusted_node, Some(stranger.node));
        assert!(
            retry.reason.contains("not a trusted node"),
            "{}",
            retry.reason
        );
        assert_eq!(
            check_receipt(&vote, stranger.clone(), &trusted()),
            Err(ReceiptError::UntrustedNode {
                node: stranger.node
            })
        );
    }

    #[test]
    fn an_empty_trusted_set_confirms_nothing() {
        let vote = vote();

        assert_eq!(
            check_receipt(&vote, receipt_for(&vote), &[]),
            Err(ReceiptError::UntrustedNode {
                node: SecretKey::from_seed(&NODE).public()
            })
        );
    }

    #[test]
    fn any_of_several_trusted_nodes_may_confirm() {
        let vote = vote();
        let both = vec![
            SecretKey::from_seed(&STRANGER).public(),
            SecretKey::from_seed(&NODE).public(),
        ];

        assert!(check_receipt(&vote, receipt_for(&vote), &both).is_ok());
        assert!(check_receipt(&vote, receipt_by(STRANGER, &vote), &both).is_ok());
    }

    #[test]
    fn the_trust_step_stands_alone_from_the_signature() {
        let vote = vote();
        let mut broken = receipt_for(&vote);
        broken.signature.0[3] ^= 1;

        assert_eq!(check_trusted(&broken, &trusted()), Ok(()));
        assert!(check_trusted(&receipt_by(STRANGER, &vote), &trusted()).is_err());
    }

    #[test]
    fn a_receipt_for_another_entry_or_poll_is_refused() {
        let vote = vote();
        let other_entry = group_receipt(vote.body().poll, EntryHash([9; 32]));
        let other_poll = group_receipt(PollId([8; 32]), vote.hash());

        assert!(matches!(
            check_receipt(&vote, other_entry, &trusted()),
            Err(ReceiptError::WrongEntry { .. })
        ));
        assert!(matches!(
            check_receipt(&vote, other_poll, &trusted()),
            Err(ReceiptError::WrongPoll { .. })
        ));
    }

    #[test]
    fn a_2xx_without_a_receipt_is_retried() {
        let vote = vote();

        assert!(matches!(
            classify(&vote, &trusted(), reply(200, "<html>")),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(&vote, &trusted(), reply(201, "{}")),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn a_422_is_a_refusal_with_the_node_code() {
        let body = r#"{"error":{"code":"outside_window","message":"poll closed"}}"#;

        let outcome = classify(&vote(), &trusted(), reply(422, body));

        assert_eq!(
            outcome,
            Outcome::Refused(Refusal {
                code: "outside_window".into(),
                message: "poll closed".into()
            })
        );
    }

    #[test]
    fn every_code_that_condemns_the_vote_is_a_refusal() {
        for code in REFUSAL_CODES {
            let body = error_body(code);
            for status in [400, 422] {
                let outcome = classify(&vote(), &trusted(), reply(status, &body));

                assert!(
                    matches!(&outcome, Outcome::Refused(r) if r.code == code),
                    "{status} {code}: {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn a_4xx_of_something_on_the_way_is_retried() {
        let html = "<!doctype html><title>Forbidden</title><h1>Access denied</h1>";
        for status in [400, 401, 403, 405, 413, 415, 418, 451] {
            let outcome = classify(&vote(), &trusted(), reply(status, html));

            let Outcome::Retry(retry) = outcome else {
                panic!("{status} with an html body ended the vote: {outcome:?}");
            };
            assert!(
                retry.reason.starts_with(&format!("http {status}")),
                "{}",
                retry.reason
            );
            assert!(retry.reason.contains("Access denied"), "{}", retry.reason);
        }
        assert!(matches!(
            classify(&vote(), &trusted(), reply(413, "")),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn a_json_error_with_a_code_that_does_not_condemn_the_vote_is_retried() {
        for code in [
            "invalid_json",
            "body_too_large",
            "unsupported_media_type",
            "invalid_path",
            "forbidden",
            "some_future_code",
        ] {
            let body = error_body(code);
            for status in [400, 403, 413, 415, 422] {
                assert!(
                    matches!(
                        classify(&vote(), &trusted(), reply(status, &body)),
                        Outcome::Retry(_)
                    ),
                    "{status} {code}"
                );
            }
        }
    }

    #[test]
    fn a_refusal_code_outside_a_4xx_or_on_a_not_now_status_is_retried() {
        let body = error_body("bad_signature");
        for status in [404, 408, 425, 429, 500, 502, 503, 200, 302] {
            assert!(
                matches!(
                    classify(&vote(), &trusted(), reply(status, &body)),
                    Outcome::Retry(_)
                ),
                "status {status}"
            );
        }
    }

    #[test]
    fn timeouts_rate_limits_unknown_polls_and_5xx_are_retried() {
        let vote = vote();
        for status in [404, 408, 425, 429, 500, 502, 503, 504, 302, 100] {
            let body = r#"{"error":{"code":"x","message":"y"}}"#;
            assert!(
                matches!(
                    classify(&vote, &trusted(), reply(status, body)),
                    Outcome::Retry(_)
                ),
                "status {status}"
            );
        }
    }

    #[test]
    fn retry_after_is_carried_in_milliseconds() {
        for status in [408, 425, 429] {
            let busy = Reply {
                status,
                retry_after: Some("30"),
                body: "<html>slow down</html>",
            };

            let Outcome::Retry(retry) = classify(&vote(), &trusted(), busy) else {
                panic!("{status} must be retried");
            };
            assert_eq!(retry.retry_after_ms, Some(30_000), "{status}");
        }
    }
}
