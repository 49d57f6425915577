//! Shared helpers: run real `votemesh-node` and `votemesh-relay` processes on
//! loopback, sign polls and votes, and read live counts over SSE and WebSocket.

// Each test binary uses a different part of these helpers.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crdt::{Eligibility, Poll, PollDraft, SecretKey, Vote, VoteBody, VoteId};
use futures_util::StreamExt;
use serde_json::Value;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The node binary: built beside this test's own target directory
/// (`cargo test --workspace` builds it; alone, `cargo build -p votemesh-node`).
pub fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let found = exe
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("votemesh-node"))
        .find(|path| path.is_file());
    found.expect("votemesh-node not built: run `cargo build -p votemesh-node` first")
}

/// A running process, killed when dropped.
pub struct Proc {
    child: Child,
    pub addr: String,
    pub client: reqwest::Client,
}

impl Proc {
    fn spawn(mut command: Command, log: &Path) -> Proc {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        command
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = command.spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, first) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let Ok(line) = first.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            panic!("no listening line; see {}", log.display());
        };
        let event: Value = serde_json::from_str(&line).expect("listening line is json");
        assert_eq!(event["event"], "listening", "{line}");
        Proc {
            child,
            addr: event["addr"].as_str().expect("addr").to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.client.get(self.url(path)).send().await.expect("get")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        read(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("post"),
        )
        .await
    }

    pub async fn create_poll(&self, poll: &Poll) {
        let (status, body) = self
            .post("/v1/polls", &serde_json::to_value(poll).unwrap())
            .await;
        assert!(
            status == 201 || status == 200,
            "create poll: {status} {body}"
        );
    }

    pub async fn vote(&self, vote: &Vote) -> (u16, Value) {
        let path = format!("/v1/polls/{}/votes", vote.body().poll);
        self.post(&path, &serde_json::to_value(vote).unwrap()).await
    }

    pub async fn tally(&self, poll: &Poll) -> Value {
        let (status, body) = self.get(&format!("/v1/polls/{}/tally", poll.id)).await;
        assert_eq!(status, 200, "tally: {body}");
        body
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}, body not json: {text:?}"));
    (status, body)
}

/// A node on 127.0.0.1 with its data in `dir`.
pub fn start_node(dir: &Path) -> Proc {
    let mut command = Command::new(node_bin());
    command
        .arg("run")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    Proc::spawn(command, &dir.with_extension("log"))
}

/// Flags that lift the rate limits, for tests that are not about them.
pub const NO_LIMITS: [&str; 8] = [
    "--ip-rate",
    "1000000",
    "--ip-burst",
    "1000000",
    "--poll-rate",
    "1000000",
    "--poll-burst",
    "1000000",
];

/// A relay in front of `nodes`, plus `args`; its log goes to `log`.
pub fn start_relay(nodes: &[&Proc], args: &[&str], log: &Path) -> Proc {
    start_relay_on("127.0.0.1:0", nodes, args, log)
}

pub fn start_relay_on(listen: &str, nodes: &[&Proc], args: &[&str], log: &Path) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_votemesh-relay"));
    command.args(["--listen", listen]);
    for node in nodes {
        command.arg("--node").arg(format!("http://{}", node.addr));
    }
    command.args(["--health-interval-ms", "200"]).args(args);
    Proc::spawn(command, log)
}

pub const OPENS: u64 = 1_000;
pub const CLOSES: u64 = u64::MAX / 2;

pub fn organizer() -> SecretKey {
    SecretKey::from_seed(&[0xaa; 32])
}

pub fn poll_with(title: &str, eligibility: Eligibility) -> Poll {
    PollDraft {
        organizer: organizer().public(),
        created_at: 1,
        opens_at: OPENS,
        closes_at: CLOSES,
        title: title.into(),
        options: vec!["soup".into(), "salad".into(), "pie".into()],
        eligibility,
    }
    .sign(&organizer())
    .expect("poll signs")
}

pub fn poll(title: &str) -> Poll {
    poll_with(title, Eligibility::Open)
}

pub fn voter(n: u32) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5e;
    SecretKey::from_seed(&seed)
}

pub fn body(poll: &Poll, voter_n: u32, choice: u32, seq: u64) -> VoteBody {
    let mut vote_id = [0u8; 16];
    vote_id[..4].copy_from_slice(&voter_n.to_le_bytes());
    vote_id[8..].copy_from_slice(&seq.to_le_bytes());
    VoteBody {
        poll: poll.id,
        voter: voter(voter_n).public(),
        choice,
        seq,
        vote_id: VoteId::from_bytes(vote_id),
        cast_at: OPENS + 10,
        credential: None,
    }
}

pub fn vote(poll: &Poll, voter_n: u32, choice: u32, seq: u64) -> Vote {
    body(poll, voter_n, choice, seq).sign(&voter(voter_n))
}

/// One live message: `(version, message)`.
pub type Message = (u64, Value);

/// A Server-Sent Events subscriber.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
    pub last_id: Option<u64>,
}

impl SseClient {
    pub async fn open(relay: &Proc, poll: &Poll, last_id: Option<u64>) -> SseClient {
        let mut request =
            reqwest::Client::new().get(relay.url(&format!("/v1/polls/{}/events", poll.id)));
        if let Some(id) = last_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("connect sse");
        assert_eq!(response.status(), 200);
        SseClient {
            response,
            buffer: String::new(),
            last_id,
        }
    }

    /// The next message, or None on timeout or end of stream.
    pub async fn next(&mut self, limit: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    self.last_id = Some(id);
                    return Some((id, data));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                _ => return None,
            }
        }
    }
}

/// A WebSocket subscriber.
pub struct WsClient {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    pub async fn open(relay: &Proc, poll: &Poll) -> WsClient {
        let url = format!("ws://{}/v1/polls/{}/live", relay.addr, poll.id);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect ws");
        WsClient { socket }
    }

    pub async fn next(&mut self, limit: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let value: Value = serde_json::from_str(text.as_str()).expect("json message");
                return Some((value["version"].as_u64().expect("version"), value));
            }
        }
    }
}

/// A live subscriber of either kind.
pub trait Live {
    /// The next message, or None on timeout or end of stream.
    async fn next(&mut self, limit: Duration) -> Option<Message>;
}

impl Live for SseClient {
    async fn next(&mut self, limit: Duration) -> Option<Message> {
        SseClient::next(self, limit).await
    }
}

impl Live for WsClient {
    async fn next(&mut self, limit: Duration) -> Option<Message> {
        WsClient::next(self, limit).await
    }
}

/// Reads messages until one has `version` (each within `limit`); checks
/// versions only grow; returns the last message read.
pub async fn until_version(client: &mut impl Live, version: u64, limit: Duration) -> Message {
    let mut last: Option<Message> = None;
    loop {
        let Some(message) = client.next(limit).await else {
            panic!(
                "stream ended or stalled at {:?}, waiting for version {version}",
                last.map(|l| l.0)
            );
        };
        if let Some((previous, _)) = &last {
            assert!(
                message.0 > *previous,
                "versions grow: {} after {previous}",
                message.0
            );
        }
        let done = message.0 >= version;
        last = Some(message);
        if done {
            return last.unwrap();
        }
    }
}
