//! Live counts: one upstream subscription per poll that browsers watch, the
//! latest snapshot kept in a `watch` channel, and a paced reader per browser.
//!
//! The first browser to ask about a poll starts a task that follows a node's
//! `GET /v1/polls/{id}/tally/stream` (failing over to the next node when the
//! stream ends) and publishes each tally as a [`Snapshot`]. The task stops
//! when the last browser leaves. A `watch` channel holds only the latest
//! snapshot, so a slow browser skips to it: the relay never queues messages
//! per client.
//!
//! The version of a snapshot is the entry count of the node's replica. The set
//! only grows, so a replica's count only grows: a snapshot at or below the
//! version already published (an older node after a failover, a replayed
//! event) is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use crdt::PollId;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::upstream::Upstreams;

/// The shortest time between two snapshots of one poll: at most 10 a second.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(100);

/// An upstream stream that sends nothing, not even a heartbeat, for this
/// long is taken as dead (nodes send a heartbeat every 15 s).
const UPSTREAM_SILENCE: Duration = Duration::from_secs(40);

/// Pause before following the next node after a stream ends, doubled up to
/// [`MAX_RECONNECT`] while no event comes through.
const FIRST_RECONNECT: Duration = Duration::from_millis(100);
const MAX_RECONNECT: Duration = Duration::from_secs(2);

/// One poll's counts as a browser receives them: absolute, versioned, with
/// the digest, so a replayed or repeated message is harmless.
pub(crate) struct Snapshot {
    /// The node's entry count for the poll.
    pub(crate) version: u64,
    /// The message: `{poll, version, counts, voters, entries, digest, signed}`.
    pub(crate) text: Utf8Bytes,
}

type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

/// Every poll being watched, and the nodes to follow.
pub(crate) struct Hub {
    feeds: Mutex<HashMap<PollId, watch::Sender<Option<Arc<Snapshot>>>>>,
    upstreams: Arc<Upstreams>,
}

impl Hub {
    pub(crate) fn new(upstreams: Arc<Upstreams>) -> Arc<Hub> {
        Arc::new(Hub {
            feeds: Mutex::new(HashMap::new()),
            upstreams,
        })
    }

    /// A receiver of the poll's latest snapshot, starting the upstream
    /// subscription if this is the poll's first watcher.
    pub(crate) fn subscribe(self: &Arc<Self>, poll: PollId) -> Latest {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(&poll) {
            return feed.subscribe();
        }
        let (feed, latest) = watch::channel(None);
        feeds.insert(poll, feed.clone());
        tokio::spawn(self.clone().follow(poll, feed));
        latest
    }

    /// Browsers watching polls right now (for metrics and the bench).
    pub(crate) fn watchers(&self) -> usize {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds.values().map(|f| f.receiver_count()).sum()
    }

    /// Follows the poll's tally stream on one node after another until no
    /// browser watches the poll.
    async fn follow(self: Arc<Self>, poll: PollId, feed: watch::Sender<Option<Arc<Snapshot>>>) {
        let mut pause = FIRST_RECONNECT;
        let mut turn = 0;
        loop {
            let order = self.upstreams.order();
            let node = order[turn % order.len()];
            turn += 1;

            let followed = tokio::select! {
                followed = self.follow_node(poll, node, &feed) => followed,
                () = feed.closed() => 0,
            };
            if self.retire(poll, &feed) {
                tracing::debug!(poll = %poll.short(), "no watchers left: upstream stream closed");
                return;
            }

            // A stream that carried events was healthy: reconnect soon.
            pause = if followed > 0 {
                FIRST_RECONNECT
            } else {
                (pause * 2).min(MAX_RECONNECT)
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = feed.closed() => {}
            }
        }
    }

    /// Removes the poll's feed if nobody watches it; false if someone does.
    fn retire(&self, poll: PollId, feed: &watch::Sender<Option<Arc<Snapshot>>>) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock: `subscribe` cannot hand out a receiver meanwhile.
        if feed.receiver_count() > 0 {
            return false;
        }
        feeds.remove(&poll);
        true
    }

    /// Reads one node's tally stream until it ends; returns how many events
    /// it carried.
    async fn follow_node(
        &self,
        poll: PollId,
        node: usize,
        feed: &watch::Sender<Option<Arc<Snapshot>>>,
    ) -> usize {
        let url = format!(
            "{}/v1/polls/{poll}/tally/stream",
            self.upstreams.node(node).url
        );
        let response = self.upstreams.client().get(&url).send().await;
        let mut response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::debug!(poll = %poll.short(), %url, status = r.status().as_u16(), "tally stream refused");
                return 0;
            }
            Err(e) => {
                tracing::debug!(poll = %poll.short(), %url, error = %e, "tally stream unreachable");
                self.upstreams.mark(node, false);
                return 0;
            }
        };
        tracing::debug!(poll = %poll.short(), %url, "following tally stream");

        // Paced here, once per poll, not per browser: at most one publish per MIN_GAP.
        let mut parser = SseParser::default();
        let mut events = 0;
        let mut pending: Option<String> = None;
        let mut published_at: Option<Instant> = None;
        loop {
            let due = published_at.map_or_else(Instant::now, |at| at + MIN_GAP);
            let read = tokio::select! {
                read = tokio::time::timeout(UPSTREAM_SILENCE, response.chunk()) => read,
                () = tokio::time::sleep_until(due), if pending.is_some() => {
                    if let Some(data) = pending.take() {
                        publish(poll, &data, feed);
                        published_at = Some(Instant::now());
                    }
                    continue;
                }
            };
            let chunk = match read {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    if let Some(data) = pending.take() {
                        publish(poll, &data, feed);
                    }
                    tracing::debug!(poll = %poll.short(), %url, "tally stream ended");
                    return events;
                }
            };
            for data in parser.push(&chunk) {
                events += 1;
                pending = Some(data);
            }
            if pending.is_some() && published_at.is_none_or(|at| at.elapsed() >= MIN_GAP) {
                if let Some(data) = pending.take() {
                    publish(poll, &data, feed);
                    published_at = Some(Instant::now());
                }
            }
        }
    }
}

/// Publishes a node's tally event if it is newer than the latest snapshot.
fn publish(poll: PollId, data: &str, feed: &watch::Sender<Option<Arc<Snapshot>>>) {
    let Some(snapshot) = snapshot(poll, data) else {
        tracing::warn!(poll = %poll.short(), "a node sent a tally event that does not parse; skipped");
        return;
    };
    let snapshot = Arc::new(snapshot);
    feed.send_if_modified(|latest| {
        if latest
            .as_ref()
            .is_some_and(|l| l.version >= snapshot.version)
        {
            return false;
        }
        *latest = Some(snapshot);
        true
    });
}

/// The browser message made of a node's tally JSON.
fn snapshot(poll: PollId, data: &str) -> Option<Snapshot> {
    let tally: Value = serde_json::from_str(data).ok()?;
    if tally["poll"].as_str()? != poll.to_string() {
        return None;
    }
    let version = tally["entries"].as_u64()?;
    let message = json!({
        "poll": tally["poll"],
        "version": version,
        "counts": tally["counts"],
        "voters": tally["voters"],
        "entries": version,
        "digest": tally["digest"],
        "signed": tally["signed"],
    });
    Some(Snapshot {
        version,
        text: Utf8Bytes::from(message.to_string()),
    })
}

/// Splits a Server-Sent Events byte stream into the data of its events.
#[derive(Default)]
struct SseParser {
    buffer: String,
}

impl SseParser {
    /// Most bytes of one unfinished event kept; a node never sends more.
    const MAX_EVENT: usize = 1 << 20;

    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        if self.buffer.len() > Self::MAX_EVENT {
            self.buffer.clear();
        }
        out
    }
}

/// One browser's view of a poll: the next snapshot to send, never one it has
/// already seen. The feed publishes at most one snapshot per [`MIN_GAP`], so
/// a browser gets at most as many; one that reads slowly gets fewer.
pub(crate) struct Subscription {
    latest: Latest,
    /// Versions at or below this are not sent (the last one sent, or the
    /// `Last-Event-ID` the browser resumed from).
    floor: Option<u64>,
    /// A change was seen but not yet sent. Kept in the struct so that a
    /// cancelled `next` (a `select!` branch) loses no change.
    due: bool,
}

impl Subscription {
    /// `resume`: the last version the browser holds, if it says so.
    pub(crate) fn new(latest: Latest, resume: Option<u64>) -> Subscription {
        Subscription {
            latest,
            floor: resume,
            due: true,
        }
    }

    /// The next snapshot to send: the current one at once, then the latest
    /// after each change. `None` once the feed is gone.
    pub(crate) async fn next(&mut self) -> Option<Arc<Snapshot>> {
        loop {
            if !self.due {
                self.latest.changed().await.ok()?;
                self.due = true;
            }
            self.due = false;

            let latest = self.latest.borrow_and_update().clone();
            let Some(snapshot) = latest else { continue };
            if self.floor.is_some_and(|floor| snapshot.version <= floor) {
                continue;
            }
            self.floor = Some(snapshot.version);
            return Some(snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_joins_events_split_across_chunks_and_skips_comments() {
        let mut parser = SseParser::default();

        let first = parser.push(b":heartbeat\n\nid: 1\ndata: {\"a\"");
        let second = parser.push(b":1}\n\nid: 2\ndata: {}\n\n");

        assert!(first.is_empty());
        assert_eq!(second, vec!["{\"a\":1}".to_string(), "{}".to_string()]);
    }

    #[tokio::test]
    async fn a_slow_subscriber_skips_to_the_latest_snapshot() {
        let (feed, latest) = watch::channel(None);
        let mut subscription = Subscription::new(latest, None);
        let at = |version| {
            Some(Arc::new(Snapshot {
                version,
                text: Utf8Bytes::from(version.to_string()),
            }))
        };

        feed.send_replace(at(1));
        assert_eq!(subscription.next().await.unwrap().version, 1);
        for version in 2..=50 {
            feed.send_replace(at(version));
        }

        assert_eq!(subscription.next().await.unwrap().version, 50);
    }

    #[tokio::test]
    async fn a_resumed_subscriber_gets_nothing_it_already_holds() {
        let (feed, latest) = watch::channel(None);
        feed.send_replace(Some(Arc::new(Snapshot {
            version: 7,
            text: Utf8Bytes::from("7"),
        })));
        let mut subscription = Subscription::new(latest, Some(7));

        let next = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;

        assert!(next.is_err(), "nothing newer than version 7 exists");
    }
}
