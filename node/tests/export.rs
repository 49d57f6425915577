//! Exports recount to the node's own tally.

mod common;

use std::time::{Duration, Instant};

use common::{data_dir, poll, vote, Node};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

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

/// A client that asks for an export and never reads a byte of it, with a
/// small receive buffer so the export stalls early.
async fn stalled_export(node: &Node, poll: &crdt::Poll) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(node.addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /v1/polls/{}/export HTTP/1.1\r\nHost: x\r\n\r\n",
        poll.id
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Polls a metric until it equals `want`, for at most `limit`.
async fn wait_for_metric(node: &Node, name: &str, want: f64, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    loop {
        let value = node.metric(name).await;
        if value == want || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn stalled_export_readers_do_not_hold_up_votes_or_tallies() {
    let (_guard, dir) = data_dir();
    let args = ["--max-exports", "4", "--write-timeout-secs", "3"];
    let node = Node::start(&dir, &args);
    let poll = poll("stalled");
    node.create_poll(&poll).await;
    // About 6 MiB of export: more than the node's socket send buffer can take.
    let votes: Vec<_> = (0..15_000).map(|n| vote(&poll, n, n % 3, 1)).collect();
    for chunk in votes.chunks(1000) {
        let (status, _) = node.batch(&poll, chunk).await;
        assert_eq!(status, 200);
    }

    let mut stalled = Vec::new();
    for _ in 0..40 {
        stalled.push(stalled_export(&node, &poll).await);
    }
    let active = wait_for_metric(
        &node,
        "votemesh_exports_active",
        4.0,
        Duration::from_secs(5),
    )
    .await;
    let refused = wait_for_metric(
        &node,
        "votemesh_exports_refused_total",
        36.0,
        Duration::from_secs(5),
    )
    .await;

    let started = Instant::now();
    let (vote_status, _) = node.vote(&vote(&poll, 90_000, 1, 1)).await;
    let tally = node.tally(&poll).await;
    let took = started.elapsed();
    let busy = node
        .client
        .get(node.url(&format!("/v1/polls/{}/export", poll.id)))
        .send()
        .await
        .unwrap();

    assert_eq!(active, 4.0, "four exports stall, holding every slot");
    assert_eq!(refused, 36.0, "the other readers were refused");
    assert_eq!(vote_status, 200);
    assert_eq!(tally["entries"], 15_001);
    assert!(
        took < Duration::from_secs(2),
        "vote and tally took {took:?}"
    );
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "5");
    let busy: serde_json::Value = busy.json().await.unwrap();
    assert_eq!(busy["error"]["code"], "export_busy");

    // The stall limit cuts the silent readers off and frees their slots.
    let active = wait_for_metric(
        &node,
        "votemesh_exports_active",
        0.0,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(active, 0.0, "stalled exports were dropped");
    let text = node
        .get_text(&format!("/v1/polls/{}/export", poll.id))
        .await
        .1;
    let report = crdt::audit::audit_texts([("node.ndjson", text.as_str())]);
    assert!(report.verified(), "audit failures: {:?}", report.failures);
    assert_eq!(report.tally.unwrap().entries, 15_001);
    drop(stalled);
}
