//! Exports recount to the node's own tally.

mod common;

use common::{data_dir, poll, vote, Node};

#[tokio::test]
async fn an_export_passes_the_audit_with_the_same_counts() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("audited");
    node.create_poll(&poll).await;
    let mut votes: Vec<_> = (0..50).map(|n| vote(&poll, n, n % 3, 1)).collect();
    // Two voters change their minds: superseded entries are exported too.
    votes.push(vote(&poll, 1, 0, 2));
    votes.push(vote(&poll, 2, 0, 2));
    let (status, _) = node.batch(&poll, &votes).await;
    assert_eq!(status, 200);
    let tally = node.tally(&poll).await;

    let response = node
        .client
        .get(node.url(&format!("/v1/polls/{}/export", poll.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let report = crdt::audit::audit_texts([("node.ndjson", text.as_str())]);

    assert!(report.verified(), "audit failures: {:?}", report.failures);
    let recount = report.tally.expect("a recount");
    assert_eq!(
        serde_json::to_value(&recount.counts).unwrap(),
        tally["counts"]
    );
    assert_eq!(recount.entries, 52);
    assert_eq!(report.digest.unwrap().to_string(), tally["digest"]);
    assert_eq!(report.files[0].node.unwrap().to_string(), node.key);
}
