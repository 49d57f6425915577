//! Edge relays in front of the demo's nodes, and a live subscriber that
//! follows the counts through one of them, as a results page would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crdt::PollId;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

/// An edge relay running inside the demo process, in front of the nodes.
pub(crate) struct EdgeRelay {
    pub(crate) url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl EdgeRelay {
    /// Starts a relay on a free loopback port that prefers `nodes[0]` and
    /// fails over to the others. The demo is one client sending every
    /// ballot, so the per-IP and per-poll rate limits are lifted. With
    /// `pages` (browser build, site directory) it also renders and serves
    /// the voters' pages.
    pub(crate) async fn start(
        nodes: Vec<String>,
        pages: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> anyhow::Result<EdgeRelay> {
        let (pages, web_dir) = match pages {
            Some((build, site)) => (Some(build), Some(site)),
            None => (None, None),
        };
        let config = relay::Config {
            pages,
            web_dir,
            publish_interval_secs: 5,
            listen: ([127, 0, 0, 1], 0).into(),
            nodes,
            ip_rate: 1_000_000,
            ip_burst: 1_000_000,
            poll_rate: 1_000_000,
            poll_burst: 1_000_000,
            ..relay::Config::default()
        };
        let relay = relay::Relay::start(&config)
            .await
            .context("starting an edge relay")?;
        let url = format!("http://{}", relay.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(async move {
            let _ = stopped.await;
        }));
        Ok(EdgeRelay {
            url,
            stop: Some(stop),
            task,
        })
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

/// One live update as the relay sends it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Update {
    pub(crate) version: u64,
    pub(crate) counts: Vec<u64>,
    pub(crate) entries: u64,
    pub(crate) digest: String,
}

/// Follows a poll's live counts over Server-Sent Events from a relay.
pub(crate) struct Subscriber {
    latest: watch::Receiver<(u64, Option<Update>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub(crate) async fn follow(
        client: &reqwest::Client,
        relay: &str,
        poll: &PollId,
    ) -> anyhow::Result<Subscriber> {
        let url = format!("{relay}/v1/polls/{poll}/events");
        let mut response = client.get(&url).send().await?;
        if !response.status().is_success() {
            bail!(
                "live subscription: {} {}",
                response.status(),
                response.text().await?
            );
        }
        let (feed, latest) = watch::channel((0, None));
        let task = tokio::spawn(async move {
            let mut buffer = String::new();
            let mut received = 0;
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    if let Ok(update) = serde_json::from_str::<Update>(&data) {
                        received += 1;
                        feed.send_replace((received, Some(update)));
                    }
                }
            }
        });
        Ok(Subscriber { latest, task })
    }

    /// Waits until an update carries `entries` entries; returns it and how
    /// many updates arrived in all.
    pub(crate) async fn wait_for(
        &mut self,
        entries: u64,
        limit: Duration,
    ) -> anyhow::Result<(Update, u64)> {
        let started = Instant::now();
        loop {
            if let (received, Some(update)) = &*self.latest.borrow_and_update() {
                if update.entries == entries {
                    return Ok((update.clone(), *received));
                }
            }
            let left = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.latest.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the live stream ended before it showed {entries} entries"),
                Err(_) => {
                    bail!("the live subscriber did not see {entries} entries within {limit:?}")
                }
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
