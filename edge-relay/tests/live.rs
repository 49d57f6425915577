//! Live counts through the relay: many browsers, resume, relay restart.

mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;

const WAIT: Duration = Duration::from_secs(15);

/// Sends votes 0..n for voters `from..from + n`, all through the relay.
async fn burst(relay: &Proc, poll: &crdt::Poll, from: u32, n: u32) {
    let sends = (from..from + n).map(|i| async move {
        let (status, body) = relay.vote(&vote(poll, i, i % 3, 1)).await;
        assert_eq!(status, 200, "{body}");
    });
    join_all(sends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_sse_and_websocket_clients_end_on_the_nodes_tally() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let relay = start_relay(&[&node], &NO_LIMITS, &dir.path().join("relay.log"));
    let poll = poll("crowd");
    node.create_poll(&poll).await;

    let sse = join_all((0..100).map(|_| SseClient::open(&relay, &poll, None))).await;
    let ws = join_all((0..100).map(|_| WsClient::open(&relay, &poll))).await;

    burst(&relay, &poll, 0, 300).await;

    let tally = node.tally(&poll).await;
    assert_eq!(tally["entries"], 300);
    let sse_done = sse
        .into_iter()
        .map(|mut c| async move { until_version(&mut c, 300, WAIT).await });
    let ws_done = ws
        .into_iter()
        .map(|mut c| async move { until_version(&mut c, 300, WAIT).await });
    let finals: Vec<_> = join_all(sse_done)
        .await
        .into_iter()
        .chain(join_all(ws_done).await)
        .collect();
    assert_eq!(finals.len(), 200);
    for (version, message) in finals {
        assert_eq!(version, 300);
        assert_eq!(message["counts"], tally["counts"]);
        assert_eq!(message["digest"], tally["digest"]);
    }
}

#[tokio::test]
async fn an_sse_client_resumes_with_last_event_id_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let relay = start_relay(&[&node], &NO_LIMITS, &dir.path().join("relay.log"));
    let poll = poll("resume");
    node.create_poll(&poll).await;

    let mut client = SseClient::open(&relay, &poll, None).await;
    burst(&relay, &poll, 0, 10).await;
    let (held, _) = until_version(&mut client, 10, WAIT).await;
    drop(client);

    // Nothing new: a resumed client is sent nothing it already holds.
    let mut resumed = SseClient::open(&relay, &poll, Some(held)).await;
    assert!(resumed.next(Duration::from_millis(500)).await.is_none());

    burst(&relay, &poll, 10, 5).await;
    let (version, message) = until_version(&mut resumed, 15, WAIT).await;

    let tally = node.tally(&poll).await;
    assert_eq!(version, 15);
    assert_eq!(message["counts"], tally["counts"]);
    let total: u64 = message["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 15, "absolute counts, each vote once");
}

#[tokio::test]
async fn clients_of_a_restarted_relay_resume_on_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let log = dir.path().join("relay.log");
    let mut relay = start_relay(&[&node], &NO_LIMITS, &log);
    let poll = poll("restart");
    node.create_poll(&poll).await;
    let mut sse = SseClient::open(&relay, &poll, None).await;
    burst(&relay, &poll, 0, 20).await;
    let (held, _) = until_version(&mut sse, 20, WAIT).await;

    relay.kill_9();
    assert!(
        sse.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends with the relay"
    );
    burst(&node, &poll, 20, 10).await;
    let relay = start_relay_on(&relay.addr.clone(), &[&node], &NO_LIMITS, &log);

    let mut sse = SseClient::open(&relay, &poll, Some(held)).await;
    let mut ws = WsClient::open(&relay, &poll).await;
    let (sse_version, sse_message) = until_version(&mut sse, 30, WAIT).await;
    let (ws_version, ws_message) = until_version(&mut ws, 30, WAIT).await;

    let tally = node.tally(&poll).await;
    assert_eq!((sse_version, ws_version), (30, 30));
    assert_eq!(sse_message["counts"], tally["counts"]);
    assert_eq!(ws_message["counts"], tally["counts"]);
}

#[tokio::test]
async fn a_slow_client_is_sent_the_latest_snapshot_not_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node"));
    let relay = start_relay(&[&node], &NO_LIMITS, &dir.path().join("relay.log"));
    let poll = poll("slow");
    node.create_poll(&poll).await;
    let mut ws = WsClient::open(&relay, &poll).await;
    assert_eq!(ws.next(WAIT).await.unwrap().0, 0);

    // The client reads nothing while 100 votes land one by one.
    let started = std::time::Instant::now();
    for i in 0..100 {
        relay.vote(&vote(&poll, i, 0, 1)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = started.elapsed();

    // What reached the socket is the feed's paced snapshots, not one per vote.
    let mut received = Vec::new();
    while let Some((version, _)) = ws.next(Duration::from_millis(500)).await {
        received.push(version);
    }
    assert_eq!(received.last(), Some(&100));
    let most = 2 + took.as_millis() as usize / 100;
    assert!(
        received.len() <= most,
        "{} messages in {took:?}: {received:?}",
        received.len()
    );
}
