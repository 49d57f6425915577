//! Vote forwarding: receipts passed through, idempotent retries, failover.

mod common;

use std::collections::HashSet;

use common::*;
use futures_util::future::join_all;
use serde_json::Value;

#[tokio::test]
async fn a_vote_sent_twice_through_the_relay_gets_the_nodes_same_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let relay = start_relay(&[&node], &NO_LIMITS, &dir.path().join("relay.log"));
    let poll = poll("idempotent");
    node.create_poll(&poll).await;
    let ballot = vote(&poll, 1, 2, 1);

    let (first_status, first) = relay.vote(&ballot).await;
    let (again_status, again) = relay.vote(&ballot).await;

    assert_eq!((first_status, again_status), (200, 200));
    assert_eq!(first["status"], "stored");
    assert_eq!(again["status"], "duplicate");
    assert_eq!(first["receipt"], again["receipt"]);
    let receipt: crdt::Receipt = serde_json::from_value(first["receipt"].clone()).unwrap();
    receipt.verify().expect("the node's signature, unchanged");
    assert_eq!(node.tally(&poll).await["entries"], 1);
}

#[tokio::test]
async fn the_relay_learns_its_nodes_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let relay = start_relay(&[&node], &NO_LIMITS, &dir.path().join("relay.log"));
    let poll = poll("learnt key");
    node.create_poll(&poll).await;
    let key = node.get("/v1/node").await.1["node"].clone();

    let (status, answer) = relay.vote(&vote(&poll, 1, 0, 1)).await;
    let (_, listed) = relay.get("/v1/nodes").await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["receipt"]["node"], key);
    assert_eq!(
        listed["nodes"],
        serde_json::json!([{ "key": key, "pinned": false }])
    );
    let entry = answer["receipt"]["entry"].as_str().unwrap();
    let (held, again) = relay
        .get(&format!("/v1/polls/{}/entries/{entry}", poll.id))
        .await;
    assert_eq!((held, &again["receipt"]), (200, &answer["receipt"]));
}

#[tokio::test]
async fn a_receipt_not_signed_by_the_pinned_key_is_not_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    // The relay expects another key than the one this node signs with, as
    // if someone answered in the node's place.
    let expected = crdt::SecretKey::from_seed(&[0x77; 32]).public().to_string();
    let mut args = NO_LIMITS.to_vec();
    args.extend(["--node-key", &expected]);
    let relay = start_relay(&[&node], &args, &dir.path().join("relay.log"));
    let poll = poll("pinned key");
    node.create_poll(&poll).await;

    let ballot = vote(&poll, 1, 0, 1);

    let (status, answer) = relay.vote(&ballot).await;
    let (held, asked) = relay
        .get(&format!("/v1/polls/{}/entries/{}", poll.id, ballot.hash()))
        .await;
    let (_, listed) = relay.get("/v1/nodes").await;
    let metrics = relay
        .client
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "untrusted_receipt");
    assert!(
        answer.get("receipt").is_none(),
        "no receipt reaches the voter"
    );
    assert_eq!(held, 502, "{asked}");
    assert_eq!(asked["error"]["code"], "untrusted_receipt");
    assert_eq!(
        listed["nodes"],
        serde_json::json!([{ "key": expected, "pinned": true }])
    );
    assert!(
        metrics.contains("votemesh_relay_receipts_refused_total 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_burst_loses_no_acknowledged_vote() {
    let dir = tempfile::tempdir().unwrap();
    let first_dir = dir.path().join("first");
    let mut first = start_node(&first_dir);
    let second = start_node(&dir.path().join("second"));
    let args = [
        &NO_LIMITS[..],
        &["--hedge-after-ms", "200", "--backoff-ms", "20"],
    ]
    .concat();
    let relay = start_relay(&[&first, &second], &args, &dir.path().join("relay.log"));
    let poll = poll("failover");
    first.create_poll(&poll).await;
    second.create_poll(&poll).await;
    let first_key = first.get("/v1/node").await.1["node"].clone();
    let second_key = second.get("/v1/node").await.1["node"].clone();

    // 300 votes, 20 at a time; the first node dies a third of the way in.
    let votes: Vec<_> = (0..300).map(|i| vote(&poll, i, i % 3, 1)).collect();
    let mut receipts: Vec<Value> = Vec::new();
    for (round, chunk) in votes.chunks(20).enumerate() {
        if round == 5 {
            first.kill_9();
        }
        let replies = join_all(chunk.iter().map(|v| relay.vote(v))).await;
        for (status, body) in replies {
            assert_eq!(
                status, 200,
                "every vote is acknowledged by some node: {body}"
            );
            receipts.push(body["receipt"].clone());
        }
    }

    // Bring the dead node back from its disk and ask each node about its receipts.
    let first = start_node(&first_dir);
    let mut held_by = [0usize; 2];
    for receipt in &receipts {
        let node = if receipt["node"] == first_key {
            &first
        } else {
            &second
        };
        assert!(receipt["node"] == first_key || receipt["node"] == second_key);
        let path = format!(
            "/v1/polls/{}/entries/{}",
            poll.id,
            receipt["entry"].as_str().unwrap()
        );
        let (status, body) = node.get(&path).await;
        assert_eq!(
            status, 200,
            "acknowledged entry missing from its node: {body}"
        );
        held_by[usize::from(node.addr == second.addr)] += 1;
    }
    assert!(
        held_by[0] > 0 && held_by[1] > 0,
        "both nodes served: {held_by:?}"
    );

    // The union of the two replicas holds each vote once.
    let mut union = HashSet::new();
    for node in [&first, &second] {
        for vote in &votes {
            let path = format!("/v1/polls/{}/entries/{}", poll.id, vote.hash());
            if node.get(&path).await.0 == 200 {
                union.insert(vote.hash());
            }
        }
    }
    assert_eq!(union.len(), 300);
    let entries = |t: Value| t["entries"].as_u64().unwrap();
    let total = entries(first.tally(&poll).await) + entries(second.tally(&poll).await);
    assert!(total >= 300, "{total}");
}
