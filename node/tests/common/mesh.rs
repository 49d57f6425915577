//! Helpers for mesh tests: nodes with known keys and fixed p2p ports,
//! bounded waits, and the operator API.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crdt::Poll;
use serde_json::Value;

use super::Node;

/// The admin token every mesh test node gets.
pub const TOKEN: &str = "test-admin-token";

/// A node's identity and p2p address, known before it starts.
#[derive(Debug, Clone)]
pub struct Ident {
    pub peer_id: String,
    pub port: u16,
}

impl Ident {
    /// Writes a node key for seed `n` into `data_dir` and picks a free port.
    pub fn prepare(data_dir: &Path, n: u8) -> Ident {
        let seed = [n; 32];
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::write(data_dir.join("node.key"), hex::encode(seed)).expect("write node.key");
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(seed).expect("key");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        Ident {
            peer_id: keypair.public().to_peer_id().to_string(),
            port: listener.local_addr().expect("addr").port(),
        }
    }

    pub fn listen(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("{}/p2p/{}", self.listen(), self.peer_id)
    }
}

/// The arguments of a mesh node: its listen address, the peers it dials,
/// the extra peers it allows, and a one-second sync interval.
pub fn args(me: &Ident, dial: &[&Ident], allow: &[&Ident]) -> Vec<String> {
    let mut args = vec![
        "--p2p-listen".to_string(),
        me.listen(),
        "--sync-interval-secs".into(),
        "1".into(),
    ];
    if !dial.is_empty() {
        let peers: Vec<String> = dial.iter().map(|i| i.addr()).collect();
        args.extend(["--peers".into(), peers.join(",")]);
    }
    if !allow.is_empty() {
        let ids: Vec<String> = allow.iter().map(|i| i.peer_id.clone()).collect();
        args.extend(["--allow".into(), ids.join(",")]);
    }
    args
}

/// Starts a mesh node with the admin token set.
pub fn start(data_dir: &Path, args: &[String]) -> Node {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Node::start_with_env(data_dir, &args, &[("VOTEMESH_ADMIN_TOKEN", TOKEN)])
}

/// Polls `check` every 100 ms until it returns true; panics after `limit`.
/// Returns how long it took.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(entries, digest, counts)` of a poll on a node, or `None` if the node
/// does not hold the poll.
pub async fn state(node: &Node, poll: &Poll) -> Option<(u64, String, Value)> {
    let (status, body) = node.get(&format!("/v1/polls/{}/tally", poll.id)).await;
    if status != 200 {
        return None;
    }
    let entries = body["entries"].as_u64().expect("entries");
    let digest = body["digest"].as_str().expect("digest").to_string();
    Some((entries, digest, body["counts"].clone()))
}

/// Whether every node holds exactly `entries` entries with the same digest.
pub async fn converged(nodes: &[&Node], poll: &Poll, entries: u64) -> bool {
    let mut seen = None;
    for node in nodes {
        let Some((n, digest, _)) = state(node, poll).await else {
            return false;
        };
        if n != entries || seen.get_or_insert(digest.clone()) != &digest {
            return false;
        }
    }
    true
}

/// How many peers `node` reports connected.
pub async fn connected(node: &Node) -> usize {
    let (_, body) = node.get("/v1/peers").await;
    body["peers"].as_array().map_or(0, |peers| {
        peers.iter().filter(|p| p["connected"] == true).count()
    })
}

/// `POST /v1/peers/{peer}/{action}` with the admin token; returns the status.
pub async fn operate(node: &Node, peer: &Ident, action: &str) -> u16 {
    let url = node.url(&format!("/v1/peers/{}/{action}", peer.peer_id));
    let response = node
        .client
        .post(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("operator request");
    response.status().as_u16()
}
