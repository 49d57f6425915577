//! Submitting votes: counts, digest, receipts and retries.

mod common;

use common::{data_dir, poll, replica, vote, Node};
use crdt::Receipt;
use serde_json::Value;

#[tokio::test]
async fn submitted_votes_are_tallied_like_a_local_replica() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("lunch");
    node.create_poll(&poll).await;
    let singles = vec![
        vote(&poll, 1, 0, 1),
        vote(&poll, 2, 1, 1),
        vote(&poll, 1, 2, 2),
    ];
    let batch: Vec<_> = (10..40).map(|n| vote(&poll, n, n % 3, 1)).collect();

    for v in &singles {
        let (status, body) = node.vote(v).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "stored");
    }
    let (status, body) = node.batch(&poll, &batch).await;
    assert_eq!(status, 200, "{body}");

    let all: Vec<_> = singles.iter().chain(&batch).cloned().collect();
    let local = replica(&poll, &all);
    let tally = node.tally(&poll).await;
    assert_eq!(
        tally["counts"],
        serde_json::to_value(&local.tally().counts).unwrap()
    );
    assert_eq!(tally["entries"], 33);
    assert_eq!(tally["voters"], 32);
    assert_eq!(tally["digest"], local.digest().to_string());
    assert_eq!(
        tally["options"],
        serde_json::json!(["soup", "salad", "pie"])
    );
    let signed: crdt::SignedTally = serde_json::from_value(tally["signed"].clone()).unwrap();
    signed.verify().unwrap();
    assert_eq!(signed.digest, local.digest());
    assert_eq!(signed.node.to_string(), node.key);
}

#[tokio::test]
async fn a_vote_retried_five_times_counts_once_with_one_receipt() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("retry");
    node.create_poll(&poll).await;
    let v = vote(&poll, 7, 2, 1);

    let (_, first) = node.vote(&v).await;
    let mut retries = Vec::new();
    for _ in 0..5 {
        retries.push(node.vote(&v).await);
    }

    assert_eq!(first["status"], "stored");
    for (status, body) in &retries {
        assert_eq!(*status, 200);
        assert_eq!(body["status"], "duplicate");
        assert_eq!(body["receipt"], first["receipt"], "retry receipt differs");
    }
    let receipt: Receipt = serde_json::from_value(first["receipt"].clone()).unwrap();
    receipt.verify().unwrap();
    assert_eq!(receipt.entry, v.hash());
    assert_eq!(receipt.poll, poll.id);
    assert_eq!(receipt.node.to_string(), node.key);
    let tally = node.tally(&poll).await;
    assert_eq!(tally["entries"], 1);
    assert_eq!(tally["counts"], serde_json::json!([0, 0, 1]));
}

#[tokio::test]
async fn concurrent_identical_votes_get_identical_receipts() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("race");
    node.create_poll(&poll).await;
    let v = vote(&poll, 3, 0, 1);

    let replies = futures_join(&node, &v, 8).await;

    let receipts: Vec<&Value> = replies.iter().map(|(_, b)| &b["receipt"]).collect();
    assert!(
        receipts.iter().all(|r| *r == receipts[0]),
        "receipts differ: {receipts:?}"
    );
    let stored = replies
        .iter()
        .filter(|(_, b)| b["status"] == "stored")
        .count();
    assert_eq!(stored, 1, "exactly one request stores the vote");
    assert_eq!(node.tally(&poll).await["entries"], 1);
}

async fn futures_join(node: &Node, v: &crdt::Vote, n: usize) -> Vec<(u16, Value)> {
    let url = node.url(&format!("/v1/polls/{}/votes", v.body().poll));
    let body = serde_json::to_value(v).unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = node.client.post(&url).json(&body);
            tokio::spawn(async move {
                let response = request.send().await.expect("post");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("json"))
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    replies
}

#[tokio::test]
async fn a_batch_answers_each_vote_in_request_order() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &["--max-batch", "4"]);
    let poll = poll("batch");
    node.create_poll(&poll).await;
    let good = vote(&poll, 1, 0, 1);
    let bad_option = vote(&poll, 2, 9, 1);
    let path = format!("/v1/polls/{}/votes/batch", poll.id);

    let body = serde_json::json!({ "votes": [good, {"nonsense": true}, bad_option, good] });
    let (status, reply) = node.post(&path, &body).await;

    assert_eq!(status, 200, "{reply}");
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "stored");
    assert_eq!(results[1]["error"]["code"], "invalid_json");
    assert_eq!(results[2]["error"]["code"], "unknown_option");
    assert_eq!(results[3]["status"], "duplicate");
    assert_eq!(results[3]["receipt"], results[0]["receipt"]);

    let too_many: Vec<_> = (0..5).map(|n| vote(&poll, n, 0, 1)).collect();
    let (status, reply) = node.batch(&poll, &too_many).await;
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["code"], "batch_too_large");
    assert_eq!(node.tally(&poll).await["entries"], 1);
}

#[tokio::test]
async fn a_known_poll_is_answered_200_and_listed_once() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("twice");
    node.create_poll(&poll).await;

    let (status, again) = node
        .post("/v1/polls", &serde_json::to_value(&poll).unwrap())
        .await;
    let (_, listed) = node.get("/v1/polls").await;
    let (_, fetched) = node.get(&format!("/v1/polls/{}", poll.id)).await;

    assert_eq!(status, 200);
    assert_eq!(again["id"], poll.id.to_string());
    assert_eq!(
        listed,
        serde_json::json!([{ "id": poll.id.to_string(), "title": "twice" }])
    );
    assert_eq!(crdt::Poll::from_json(&fetched).unwrap(), poll);
}

#[tokio::test]
async fn a_batch_is_signed_once_and_each_receipt_verifies_alone() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("group");
    node.create_poll(&poll).await;
    let votes: Vec<_> = (0..37).map(|n| vote(&poll, n, n % 3, 1)).collect();

    let (status, reply) = node.batch(&poll, &votes).await;
    assert_eq!(status, 200, "{reply}");
    let results = reply["results"].as_array().unwrap();
    let receipts: Vec<Receipt> = results
        .iter()
        .map(|r| serde_json::from_value(r["receipt"].clone()).unwrap())
        .collect();

    for (receipt, v) in receipts.iter().zip(&votes) {
        receipt.verify().unwrap();
        assert_eq!(receipt.entry, v.hash());
        assert_eq!(receipt.version(), 2);
        assert_eq!(receipt.node.to_string(), node.key);
    }
    // One request, one group: one statement and one signature for all.
    let statements: std::collections::HashSet<_> = receipts
        .iter()
        .map(|r| r.statement().unwrap().signature)
        .collect();
    assert_eq!(statements.len(), 1, "one signature for the batch");
    let group = receipts[0].group.clone().unwrap();
    assert_eq!(group.size, 37);
    let mut indexes: Vec<u64> = receipts
        .iter()
        .map(|r| r.group.as_ref().unwrap().index)
        .collect();
    indexes.sort();
    assert_eq!(indexes, (0..37).collect::<Vec<u64>>());

    // A retry of the whole batch and a lookup of each entry give the same receipts.
    let (_, again) = node.batch(&poll, &votes).await;
    for (first, retry) in results.iter().zip(again["results"].as_array().unwrap()) {
        assert_eq!(retry["status"], "duplicate");
        assert_eq!(retry["receipt"], first["receipt"]);
    }
    for (v, first) in votes.iter().zip(results) {
        let (status, held) = node
            .get(&format!("/v1/polls/{}/entries/{}", poll.id, v.hash()))
            .await;
        assert_eq!(status, 200);
        assert_eq!(held["receipt"], first["receipt"]);
    }
}
