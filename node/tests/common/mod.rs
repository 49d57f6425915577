//! Shared helpers: run the real `votemesh-node` binary, and sign polls and
//! votes with `crdt`.

// Each test binary uses a different part of these helpers.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crdt::{Eligibility, Poll, PollDraft, PollState, SecretKey, Vote, VoteBody, VoteId};
use serde_json::Value;

pub mod mesh;

/// How long a node may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `votemesh-node`, killed when dropped.
pub struct Node {
    child: Child,
    pub addr: String,
    pub key: String,
    /// The mesh address from the listening line, ending in `/p2p/<peer id>`.
    pub p2p: Option<String>,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

impl Node {
    /// Starts a node on 127.0.0.1, port 0, with `data_dir`, plus `args`.
    /// Its logs go to `<data_dir>.log`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Node {
        Self::start_with_env(data_dir, args, &[])
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("open node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_votemesh-node"));
        command
            .arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn votemesh-node");

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
        let line = match first.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "node printed no listening line: {e}; see {}",
                    data_dir.with_extension("log").display()
                );
            }
        };

        let event: Value = serde_json::from_str(&line).expect("listening line is json");
        assert_eq!(event["event"], "listening", "first stdout line: {line}");
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        Node {
            child,
            addr: event["addr"].as_str().expect("addr").to_string(),
            key: event["node"].as_str().expect("node").to_string(),
            p2p: event["p2p"].as_str().map(str::to_string),
            data_dir: data_dir.to_path_buf(),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to `limit` for the process to exit. `None`
    /// if it is still running then.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A metric's value from `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get_text("/metrics").await;
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        read(response).await
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("post");
        read(response).await
    }

    /// Posts raw bytes with the given content type (None: no header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        read(request.send().await.expect("post")).await
    }

    pub async fn create_poll(&self, poll: &Poll) {
        let (status, body) = self
            .post("/v1/polls", &serde_json::to_value(poll).unwrap())
            .await;
        assert_eq!(status, 201, "create poll: {body}");
    }

    pub async fn vote(&self, vote: &Vote) -> (u16, Value) {
        let path = format!("/v1/polls/{}/votes", vote.body().poll);
        self.post(&path, &serde_json::to_value(vote).unwrap()).await
    }

    pub async fn batch(&self, poll: &Poll, votes: &[Vote]) -> (u16, Value) {
        let path = format!("/v1/polls/{}/votes/batch", poll.id);
        self.post(&path, &serde_json::json!({ "votes": votes }))
            .await
    }

    pub async fn tally(&self, poll: &Poll) -> Value {
        let (status, body) = self.get(&format!("/v1/polls/{}/tally", poll.id)).await;
        assert_eq!(status, 200, "tally: {body}");
        body
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}, body not json: {text:?}"));
    (status, body)
}

/// Poll window used by every test poll: votes cast in [1_000, 1_000_000).
pub const OPENS: u64 = 1_000;
pub const CLOSES: u64 = 1_000_000;

pub fn organizer() -> SecretKey {
    SecretKey::from_seed(&[0xaa; 32])
}

/// An open poll with three options.
pub fn poll(title: &str) -> Poll {
    PollDraft {
        organizer: organizer().public(),
        created_at: 1,
        opens_at: OPENS,
        closes_at: CLOSES,
        title: title.into(),
        options: vec!["soup".into(), "salad".into(), "pie".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer())
    .expect("poll signs")
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

/// The replica a correct node must hold after admitting `votes`.
pub fn replica(poll: &Poll, votes: &[Vote]) -> PollState {
    let mut state = PollState::new(poll.clone());
    for vote in votes {
        state.insert(vote.clone()).expect("test vote is admissible");
    }
    state
}

/// A fresh directory for one test: `(guard, data_dir)`.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    (root, data)
}
