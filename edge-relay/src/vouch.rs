//! The relay's check of the receipts it passes on.
//!
//! A receipt is only worth something if the node that stored the vote signed
//! it. The relay knows which node answered and that node's key (pinned or
//! learnt, see `upstream`), so it passes a receipt on only when that key
//! signed it and it names the vote sent. Browsers check again on their side
//! against the keys their page names: this check keeps a broken or
//! impersonated node from ever reaching them, and tells the operator.

use crdt::{EntryHash, PollId, PublicKey, Receipt, Vote};
use serde::Deserialize;

#[derive(Deserialize)]
struct Stored {
    receipt: Receipt,
}

#[derive(Deserialize)]
struct BatchReply {
    results: Vec<serde_json::Value>,
}

/// Checks a node's 2xx answer to one vote: a receipt for `vote`, signed by
/// `node`, the key of the node that answered. Says what is wrong otherwise.
pub(crate) fn check_vote_reply(node: &PublicKey, vote: &Vote, body: &[u8]) -> Result<(), String> {
    check_entry_reply(node, vote.body().poll, vote.hash(), body)
}

/// Checks a node's 2xx answer naming one entry (a vote's receipt, or
/// `GET /v1/polls/{id}/entries/{hash}`): a receipt for `entry` of `poll`,
/// signed by `node`, the key of the node that answered.
pub(crate) fn check_entry_reply(
    node: &PublicKey,
    poll: PollId,
    entry: EntryHash,
    body: &[u8],
) -> Result<(), String> {
    let stored: Stored =
        serde_json::from_slice(body).map_err(|e| format!("the answer carries no receipt: {e}"))?;
    let receipt = stored.receipt;
    if receipt.poll != poll || receipt.entry != entry {
        return Err(format!(
            "the receipt is for entry {} of poll {}, not {} of {}",
            receipt.entry.short(),
            receipt.poll.short(),
            entry.short(),
            poll.short()
        ));
    }
    check_receipt(node, &receipt)
}

/// Checks a node's 2xx answer to a batch: every receipt in it is signed by
/// `node`. Items that are errors carry no receipt and pass as they are.
pub(crate) fn check_batch_reply(node: &PublicKey, body: &[u8]) -> Result<(), String> {
    let reply: BatchReply = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not a batch result: {e}"))?;
    for (i, item) in reply.results.iter().enumerate() {
        let Some(receipt) = item.get("receipt") else {
            continue;
        };
        let receipt: Receipt = serde_json::from_value(receipt.clone())
            .map_err(|e| format!("result {i}: the receipt does not parse: {e}"))?;
        check_receipt(node, &receipt).map_err(|reason| format!("result {i}: {reason}"))?;
    }
    Ok(())
}

fn check_receipt(node: &PublicKey, receipt: &Receipt) -> Result<(), String> {
    if receipt.node != *node {
        return Err(format!(
            "the receipt names key {}, not the key {} of the node that answered",
            receipt.node.short(),
            node.short()
        ));
    }
    receipt
        .verify()
        .map_err(|e| format!("the receipt's signature does not verify: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{SecretKey, VoteBody, VoteId};
    use serde_json::json;

    fn vote() -> Vote {
        let voter = SecretKey::from_seed(&[1; 32]);
        VoteBody {
            poll: PollId([7; 32]),
            voter: voter.public(),
            choice: 0,
            seq: 1,
            vote_id: VoteId::from_bytes([2; 16]),
            cast_at: 5,
            credential: None,
        }
        .sign(&voter)
    }

    fn node() -> SecretKey {
        SecretKey::from_seed(&[5; 32])
    }

    /// The group receipt `node` signs for `entry` committed alone.
    fn signed(node: &SecretKey, poll: crdt::PollId, entry: crdt::EntryHash, at: u64) -> Receipt {
        let tree = crdt::GroupTree::new(&[entry]).unwrap();
        crdt::GroupStatement::sign(node, poll, &tree, at)
            .receipt(&tree, 0)
            .unwrap()
    }

    fn answer(receipt: &Receipt) -> Vec<u8> {
        json!({ "receipt": receipt, "status": "stored" })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_answering_nodes_receipt_for_the_vote_passes() {
        let vote = vote();
        let receipt = signed(&node(), vote.body().poll, vote.hash(), 9);

        assert_eq!(
            check_vote_reply(&node().public(), &vote, &answer(&receipt)),
            Ok(())
        );
    }

    #[test]
    fn a_receipt_signed_by_another_key_is_refused() {
        let vote = vote();
        let stranger = SecretKey::from_seed(&[6; 32]);
        let receipt = signed(&stranger, vote.body().poll, vote.hash(), 9);

        let refused = check_vote_reply(&node().public(), &vote, &answer(&receipt)).unwrap_err();

        assert!(refused.contains("not the key"), "{refused}");
    }

    #[test]
    fn a_broken_signature_another_entry_or_no_receipt_is_refused() {
        let vote = vote();
        let mut broken = signed(&node(), vote.body().poll, vote.hash(), 9);
        broken.received_at += 1;
        let other = signed(&node(), vote.body().poll, crdt::EntryHash([3; 32]), 9);
        let key = node().public();

        assert!(check_vote_reply(&key, &vote, &answer(&broken)).is_err());
        assert!(check_vote_reply(&key, &vote, &answer(&other)).is_err());
        assert!(check_vote_reply(&key, &vote, b"{\"status\":\"stored\"}").is_err());
    }

    #[test]
    fn every_receipt_of_a_batch_must_be_the_nodes() {
        let vote = vote();
        let good = signed(&node(), vote.body().poll, vote.hash(), 9);
        let stranger = signed(
            &SecretKey::from_seed(&[6; 32]),
            vote.body().poll,
            vote.hash(),
            9,
        );
        let failed = json!({"error": {"code": "bad_signature", "message": "x"}});
        let batch = |items: Vec<serde_json::Value>| json!({ "results": items }).to_string();
        let key = node().public();

        let fine = batch(vec![
            json!({"receipt": good, "status": "stored"}),
            failed.clone(),
        ]);
        assert_eq!(check_batch_reply(&key, fine.as_bytes()), Ok(()));
        let mixed = batch(vec![
            json!({"receipt": good, "status": "stored"}),
            json!({"receipt": stranger, "status": "stored"}),
        ]);
        let refused = check_batch_reply(&key, mixed.as_bytes()).unwrap_err();
        assert!(refused.starts_with("result 1:"), "{refused}");
    }
}
