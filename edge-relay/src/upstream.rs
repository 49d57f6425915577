//! The regional nodes behind the relay: health checks, failover, retries
//! with backoff, and a hedged second request when a node is slow.
//!
//! Forwarding is safe to repeat because a vote's identity is the hash of its
//! signed bytes: a vote stored by two nodes, or twice by one, is one entry of
//! the grow-only set and counts once. The node's answer (its signed receipt)
//! is passed back byte for byte, once checked against the key of the node
//! that answered ([`Upstreams::key_of`]: pinned by `--node-key`, or learnt
//! from the node's `GET /v1/node` the first time it is reached).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use crdt::PublicKey;
use rand::Rng;

use crate::config::Config;
use crate::error::ApiError;

/// Longest wait for a node's `GET /v1/node` when learning its key.
const KEY_TIMEOUT: Duration = Duration::from_secs(2);

/// One node and what the relay last learnt of its health and key.
pub(crate) struct Node {
    pub(crate) url: String,
    healthy: AtomicBool,
    /// The key that signs its receipts: pinned at start, or set once from
    /// its first `GET /v1/node` answer and never changed after.
    key: OnceLock<PublicKey>,
    pinned: bool,
}

/// Every node, in order of preference.
pub(crate) struct Upstreams {
    nodes: Vec<Node>,
    client: reqwest::Client,
    retries: u32,
    backoff: Duration,
    hedge_after: Duration,
    health_interval: Duration,
}

/// A node's answer, passed on as it came.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Which node answered (an index for [`Upstreams::node`]).
    pub(crate) node: usize,
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<axum::http::HeaderValue>,
    pub(crate) body: Bytes,
}

/// Why one attempt gave no usable answer.
#[derive(Debug)]
enum Failure {
    /// No connection, a reset, or no answer in time.
    Unreachable(String),
    /// The node answered 5xx: it may do better on a retry or another node may.
    Unavailable(Reply),
}

impl Upstreams {
    pub(crate) fn new(config: &Config) -> Result<Upstreams, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        // `Config::check` has refused malformed keys already.
        let pinned = config.pinned_keys().unwrap_or_default();
        let nodes = config
            .nodes
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let key = OnceLock::new();
                if let Some(pin) = pinned.get(i) {
                    let _ = key.set(*pin);
                }
                Node {
                    url: url.trim_end_matches('/').to_string(),
                    healthy: AtomicBool::new(true),
                    key,
                    pinned: pinned.get(i).is_some(),
                }
            })
            .collect();
        Ok(Upstreams {
            nodes,
            client,
            retries: config.retries,
            backoff: Duration::from_millis(config.backoff_ms),
            hedge_after: Duration::from_millis(config.hedge_after_ms.max(1)),
            health_interval: Duration::from_millis(config.health_interval_ms),
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub(crate) fn node(&self, index: usize) -> &Node {
        &self.nodes[index % self.nodes.len()]
    }

    /// Node indices to try, healthy ones first, each group in preference order.
    pub(crate) fn order(&self) -> Vec<usize> {
        let (mut healthy, sick): (Vec<usize>, Vec<usize>) =
            (0..self.nodes.len()).partition(|&i| self.nodes[i].healthy.load(Ordering::Relaxed));
        healthy.extend(sick);
        healthy
    }

    /// Nodes that answered the last health check.
    pub(crate) fn healthy_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.healthy.load(Ordering::Relaxed))
            .count()
    }

    pub(crate) fn any_healthy(&self) -> bool {
        self.nodes.iter().any(|n| n.healthy.load(Ordering::Relaxed))
    }

    pub(crate) fn mark(&self, index: usize, healthy: bool) {
        let node = self.node(index);
        let was = node.healthy.swap(healthy, Ordering::Relaxed);
        if was && !healthy {
            tracing::warn!(node = %node.url, "node marked down; requests go to the next node");
        } else if !was && healthy {
            tracing::info!(node = %node.url, "node back up");
        }
    }

    /// Checks every node's `/readyz` each interval, until the relay stops,
    /// and learns the key of a node that answers and has none yet.
    pub(crate) async fn check_health(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.health_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for index in 0..self.nodes.len() {
                let url = format!("{}/readyz", self.nodes[index].url);
                let probe = self.client.get(url).timeout(self.health_interval).send();
                let ok = matches!(probe.await, Ok(r) if r.status().is_success());
                self.mark(index, ok);
                if ok && self.nodes[index].key.get().is_none() {
                    self.learn_key(index).await;
                }
            }
        }
    }

    /// The key whose receipts node `index` may pass on: pinned, known, or
    /// learnt now from its `GET /v1/node`; `None` if it cannot be learnt.
    pub(crate) async fn key_of(&self, index: usize) -> Option<PublicKey> {
        match self.node(index).key.get() {
            Some(key) => Some(*key),
            None => self.learn_key(index).await,
        }
    }

    /// Every node's key known now, with whether it was pinned, in the order
    /// of the nodes; nodes whose key is not known yet are left out.
    pub(crate) fn known_keys(&self) -> Vec<(PublicKey, bool)> {
        self.nodes
            .iter()
            .filter_map(|n| n.key.get().map(|key| (*key, n.pinned)))
            .collect()
    }

    /// Every node's key, learning those not known yet first.
    pub(crate) async fn keys(&self) -> Vec<PublicKey> {
        for index in 0..self.nodes.len() {
            self.key_of(index).await;
        }
        self.known_keys().into_iter().map(|(key, _)| key).collect()
    }

    /// Asks node `index` for its key. The first answer is kept for as long
    /// as the relay runs (trust on first use); a later different answer is
    /// not taken, only reported.
    async fn learn_key(&self, index: usize) -> Option<PublicKey> {
        let node = self.node(index);
        let url = format!("{}/v1/node", node.url);
        let answer = async {
            let response = self.client.get(url).timeout(KEY_TIMEOUT).send().await;
            let response = response.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            let info: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let key = info["node"].as_str().ok_or("no `node` field")?;
            key.parse::<PublicKey>().map_err(|e| e.to_string())
        };
        let key = match answer.await {
            Ok(key) => key,
            Err(reason) => {
                tracing::debug!(node = %node.url, %reason, "node key not learnt");
                return node.key.get().copied();
            }
        };
        if node.key.set(key).is_ok() {
            tracing::info!(node = %node.url, key = %key, "node key learnt");
        }
        let kept = *node.key.get()?;
        if kept != key {
            tracing::warn!(
                node = %node.url, key = %key, kept = %kept,
                "node answers another key than the one trusted for it: its receipts are refused"
            );
        }
        Some(kept)
    }

    /// Sends a request to the nodes until one answers with anything but a
    /// 5xx: healthy nodes first, a hedge to the next node if the first is slow,
    /// then retries with doubling backoff. 4xx answers are final and passed on.
    pub(crate) async fn forward(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, ApiError> {
        let order = self.order();
        let mut last = None;
        for attempt in 0..=self.retries as usize {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let first = order[attempt % order.len()];
            let second = (order.len() > 1).then(|| order[(attempt + 1) % order.len()]);
            match self.hedged(&method, path, &body, first, second).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => {
                    tracing::debug!(attempt, path, failure = ?failure, "forward attempt failed");
                    last = Some(failure);
                }
            }
        }

        // Out of attempts: a node's own 5xx is the most useful answer to pass on.
        match last {
            Some(Failure::Unavailable(reply)) => Ok(reply),
            Some(Failure::Unreachable(reason)) => Err(ApiError::no_upstream(format!(
                "no node answered after {} attempts: {reason}",
                self.retries + 1
            ))),
            None => Err(ApiError::no_upstream("no node configured")),
        }
    }

    /// Exponential backoff with full jitter: in [base * 2^(n-1) / 2, base * 2^(n-1)].
    fn backoff(&self, attempt: usize) -> Duration {
        let ceiling = self.backoff * 2u32.saturating_pow(attempt as u32 - 1);
        let half = ceiling / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// One attempt on `first`; if it has not answered within the hedge
    /// threshold, the same request also goes to `second`. The first usable
    /// answer wins; the other request is dropped (cancelled).
    async fn hedged(
        &self,
        method: &Method,
        path: &str,
        body: &Option<Bytes>,
        first: usize,
        second: Option<usize>,
    ) -> Result<Reply, Failure> {
        let a = self.send(method, path, body, first);
        tokio::pin!(a);
        let Some(second) = second else {
            return a.await;
        };
        tokio::select! {
            reply = &mut a => return reply,
            () = tokio::time::sleep(self.hedge_after) => {}
        }

        tracing::debug!(path, node = %self.node(first).url, "slow node: hedging");
        let b = self.send(method, path, body, second);
        tokio::pin!(b);
        tokio::select! {
            reply = &mut a => match reply {
                Ok(reply) => Ok(reply),
                Err(_) => b.await,
            },
            reply = &mut b => match reply {
                Ok(reply) => Ok(reply),
                Err(_) => a.await,
            },
        }
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: &Option<Bytes>,
        index: usize,
    ) -> Result<Reply, Failure> {
        let node = self.node(index);
        let mut request = self
            .client
            .request(method.clone(), format!("{}{}", node.url, path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.mark(index, false);
                return Err(Failure::Unreachable(format!("{}: {e}", node.url)));
            }
        };

        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                self.mark(index, false);
                return Err(Failure::Unreachable(format!("{}: {e}", node.url)));
            }
        };
        let reply = Reply {
            node: index,
            status,
            content_type,
            body,
        };
        if status.is_server_error() {
            return Err(Failure::Unavailable(reply));
        }
        Ok(reply)
    }
}
