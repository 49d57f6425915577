//! The tally stream: Server-Sent Events of the poll's tally on every change.

mod common;

use std::time::{Duration, Instant};

use common::{data_dir, poll, vote, Node};
use serde_json::Value;

/// One SSE event: its `id:` and its `data:` as JSON.
struct Event {
    id: u64,
    data: Value,
}

/// Reads events off a streaming response, chunk by chunk.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(node: &Node, path: &str) -> Events {
        let response = reqwest::Client::new()
            .get(node.url(path))
            .send()
            .await
            .expect("connect");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("read")
                .expect("stream still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events until one reports `entries`; returns them all.
    async fn until(&mut self, entries: u64) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await;
            let done = event.id == entries;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

/// A block without data (a heartbeat comment) is no event.
fn parse(block: &str) -> Option<Event> {
    let mut id = None;
    let mut data = None;
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().parse().expect("numeric id"));
        } else if let Some(value) = line.strip_prefix("data:") {
            data = Some(serde_json::from_str(value.trim()).expect("json data"));
        }
    }
    Some(Event {
        id: id?,
        data: data?,
    })
}

#[tokio::test]
async fn a_subscriber_gets_the_tally_at_once_then_every_change() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("stream");
    node.create_poll(&poll).await;
    let path = format!("/v1/polls/{}/tally/stream", poll.id);

    let mut events = Events::open(&node, &path).await;
    let first = events.next().await;
    assert_eq!(first.id, 0);
    assert_eq!(first.data["counts"], serde_json::json!([0, 0, 0]));

    for n in 0..5 {
        let (status, body) = node.vote(&vote(&poll, n, n % 3, 1)).await;
        assert_eq!(status, 200, "{body}");
    }
    let last = events.until(5).await.pop().unwrap();

    let tally = node.tally(&poll).await;
    for field in ["counts", "voters", "entries", "digest", "poll", "options"] {
        assert_eq!(last.data[field], tally[field], "{field}");
    }
    assert_eq!(last.data["signed"]["digest"], tally["digest"]);
}

#[tokio::test]
async fn a_burst_of_votes_is_coalesced_to_ten_events_a_second() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("coalesced");
    node.create_poll(&poll).await;
    let path = format!("/v1/polls/{}/tally/stream", poll.id);
    let mut events = Events::open(&node, &path).await;
    events.next().await;

    let started = Instant::now();
    let votes: Vec<_> = (0..200).map(|n| vote(&poll, n, n % 3, 1)).collect();
    let sender = {
        let node_url = node.url("");
        let votes = votes.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for vote in votes {
                let url = format!("{node_url}/v1/polls/{}/votes", vote.body().poll);
                let sent = client.post(url).json(&vote).send().await.unwrap();
                assert_eq!(sent.status(), 200);
            }
        })
    };
    let seen = events.until(200).await;
    sender.await.unwrap();

    // n events need at least (n - 1) gaps of 100 ms.
    let took = started.elapsed();
    let most = 1 + (took.as_millis() / 100) as usize + 1;
    assert!(seen.len() <= most, "{} events in {took:?}", seen.len());
    let ids: Vec<u64> = seen.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
}

#[tokio::test]
async fn a_stream_of_an_unknown_poll_is_a_json_404() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let unknown = "00".repeat(32);

    let (status, body) = node.get(&format!("/v1/polls/{unknown}/tally/stream")).await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_poll");
}
