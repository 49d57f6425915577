//! Live fan-out and forwarding through one relay on loopback, printed as one table.
//!
//! ```sh
//! cargo build --release -p votemesh-node
//! ulimit -n 65536   # 2 x N subscribers need 2 x N sockets on each side
//! cargo bench -p votemesh-relay --bench fanout
//! VOTEMESH_BENCH_SUBSCRIBERS=10000 cargo bench -p votemesh-relay --bench fanout
//! ```
//!
//! N SSE and N WebSocket subscribers (default 2,000 each) watch one poll
//! while votes land at a steady 10 a second. Latency is from the node's
//! acknowledgement of a vote (the tally has changed by then) to a
//! subscriber's receipt of a message at that version or later. Memory per
//! idle connection is the relay's RSS growth over the 2 x N connections.
//! CPU is the relay's user + system time over the update phase. The
//! subscribers and vote senders run in this process, sharing the machine.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crdt::{Eligibility, Poll, PollDraft, SecretKey, Vote, VoteBody, VoteId};
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::Value;

const UPDATES_PER_SEC: u64 = 10;
const UPDATE_SECS: u64 = 10;
const FORWARD_VOTES: u32 = 4_000;
const FORWARD_CONCURRENCY: usize = 64;

struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command) -> Proc {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listening line");
    let event: Value = serde_json::from_str(&line).expect("json line");
    Proc {
        child,
        addr: event["addr"].as_str().unwrap().to_string(),
    }
}

fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .map(|d| d.join("votemesh-node"))
        .find(|p| p.is_file())
        .expect("votemesh-node not built: cargo build --release -p votemesh-node")
}

/// (RSS bytes, CPU seconds) of a process, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    (rss_kib * 1024, ticks as f64 / 100.0)
}

fn poll() -> Poll {
    let organizer = SecretKey::from_seed(&[0xaa; 32]);
    PollDraft {
        organizer: organizer.public(),
        created_at: 1,
        opens_at: 0,
        closes_at: u64::MAX / 2,
        title: "bench".into(),
        options: vec!["a".into(), "b".into(), "c".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer)
    .unwrap()
}

fn vote(poll: &Poll, n: u32) -> Vote {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    let key = SecretKey::from_seed(&seed);
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_le_bytes());
    VoteBody {
        poll: poll.id,
        voter: key.public(),
        choice: n % 3,
        seq: 1,
        vote_id: VoteId::from_bytes(id),
        cast_at: 10,
        credential: None,
    }
    .sign(&key)
}

/// Every (version, received at) one subscriber saw.
type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

async fn sse_subscriber(
    client: reqwest::Client,
    url: String,
    seen: Seen,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let mut response = client.get(url).send().await.expect("sse connect");
    let mut buffer = String::new();
    let mut first = true;
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) {
                seen.lock()
                    .unwrap()
                    .push((id.trim().parse().unwrap_or(0), now));
                if std::mem::take(&mut first) {
                    let _ = ready.send(()).await;
                }
            }
        }
    }
}

async fn ws_subscriber(url: String, seen: Seen, ready: tokio::sync::mpsc::Sender<()>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let mut first = true;
    while let Some(Ok(message)) = socket.next().await {
        let now = Instant::now();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            seen.lock()
                .unwrap()
                .push((value["version"].as_u64().unwrap(), now));
            if std::mem::take(&mut first) {
                let _ = ready.send(()).await;
            }
        }
    }
}

/// Votes per second for `votes` posted to `base`, `FORWARD_CONCURRENCY` at a time.
async fn throughput(client: &reqwest::Client, base: &str, votes: Vec<Vote>) -> f64 {
    let started = Instant::now();
    let votes = Arc::new(Mutex::new(votes));
    let workers = (0..FORWARD_CONCURRENCY).map(|_| {
        let votes = votes.clone();
        let client = client.clone();
        let base = base.to_string();
        async move {
            loop {
                let Some(vote) = votes.lock().unwrap().pop() else {
                    return;
                };
                let url = format!("{base}/v1/polls/{}/votes", vote.body().poll);
                let response = client.post(url).json(&vote).send().await.expect("vote");
                assert_eq!(response.status(), 200);
            }
        }
    });
    join_all(workers).await;
    f64::from(FORWARD_VOTES) / started.elapsed().as_secs_f64()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("VOTEMESH_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir().unwrap();
    let node = spawn({
        let mut c = Command::new(node_bin());
        c.arg("run")
            .arg("--data-dir")
            .arg(dir.path().join("node"))
            .args(["--listen", "127.0.0.1:0"]);
        c
    });
    let relay = spawn({
        let mut c = Command::new(env!("CARGO_BIN_EXE_votemesh-relay"));
        c.args([
            "--listen",
            "127.0.0.1:0",
            "--node",
            &format!("http://{}", node.addr),
        ])
        .args([
            "--ip-rate",
            "10000000",
            "--ip-burst",
            "10000000",
            "--poll-rate",
            "10000000",
            "--poll-burst",
            "10000000",
        ]);
        c
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(FORWARD_CONCURRENCY)
        .build()
        .unwrap();
    let poll = poll();
    let created = client
        .post(format!("http://{}/v1/polls", node.addr))
        .json(&poll)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());

    // Subscribers: N over SSE, N over WebSocket, each waiting for its first snapshot.
    let pid = relay.child.id();
    let (rss_before, _) = usage(pid);
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(1024);
    let mut seen_all = Vec::new();
    for i in 0..2 * n {
        let seen: Seen = Arc::default();
        seen_all.push(seen.clone());
        let ready_tx = ready_tx.clone();
        if i % 2 == 0 {
            let url = format!("http://{}/v1/polls/{}/events", relay.addr, poll.id);
            tokio::spawn(sse_subscriber(reqwest::Client::new(), url, seen, ready_tx));
        } else {
            let url = format!("ws://{}/v1/polls/{}/live", relay.addr, poll.id);
            tokio::spawn(ws_subscriber(url, seen, ready_tx));
        }
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for _ in 0..2 * n {
        tokio::time::timeout(Duration::from_secs(120), ready.recv())
            .await
            .expect("all subscribers connect");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, cpu_before) = usage(pid);
    let per_connection = rss_idle.saturating_sub(rss_before) as f64 / (2 * n) as f64;

    // Steady updates: one vote every 100 ms, straight to the node.
    let acked: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let node_url = format!("http://{}", node.addr);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / UPDATES_PER_SEC));
    for i in 0..(UPDATES_PER_SEC * UPDATE_SECS) as u32 {
        ticker.tick().await;
        let vote = vote(&poll, i);
        let response = client
            .post(format!("{node_url}/v1/polls/{}/votes", poll.id))
            .json(&vote)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        acked
            .lock()
            .unwrap()
            .insert(u64::from(i) + 1, Instant::now());
    }
    let last_version = UPDATES_PER_SEC * UPDATE_SECS;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let update_wall = started.elapsed().as_secs_f64();
    let (_, cpu_after) = usage(pid);

    // Latency: for each message, from the ack of the vote that made its version.
    let acked = acked.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut complete = 0;
    for seen in &seen_all {
        let seen = seen.lock().unwrap();
        for (version, at) in seen.iter() {
            if let Some(ack) = acked.get(version) {
                latencies.push(at.saturating_duration_since(*ack));
            }
        }
        complete += usize::from(seen.last().is_some_and(|(v, _)| *v == last_version));
    }
    latencies.sort();

    // Forwarding throughput: straight to the node, then through the relay.
    let direct: Vec<Vote> = (100_000..100_000 + FORWARD_VOTES)
        .map(|i| vote(&poll, i))
        .collect();
    let relayed: Vec<Vote> = (200_000..200_000 + FORWARD_VOTES)
        .map(|i| vote(&poll, i))
        .collect();
    let direct_rate = throughput(&client, &node_url, direct).await;
    let relay_rate = throughput(&client, &format!("http://{}", relay.addr), relayed).await;

    let p50 = quantile(&latencies, 0.50);
    let p99 = quantile(&latencies, 0.99);
    let cpu = (cpu_after - cpu_before) / update_wall * 100.0;
    let check = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("votemesh-relay fan-out: {n} SSE + {n} WebSocket subscribers, {UPDATES_PER_SEC} updates/s for {UPDATE_SECS} s, {} cores", std::thread::available_parallelism().map_or(0, |p| p.get()));
    println!("| metric | value | target |");
    println!("|---|---|---|");
    println!(
        "| subscribers ending on the final version | {complete} / {} | all |",
        2 * n
    );
    println!("| messages received | {} | |", latencies.len());
    println!("| latency p50 | {:.1} ms | |", p50.as_secs_f64() * 1e3);
    println!(
        "| latency p99 | {:.1} ms | < 250 ms: {} |",
        p99.as_secs_f64() * 1e3,
        check(p99 < Duration::from_millis(250))
    );
    println!(
        "| relay memory per idle connection | {:.1} KiB | < 16 KiB: {} |",
        per_connection / 1024.0,
        check(per_connection < 16.0 * 1024.0)
    );
    println!(
        "| relay RSS idle / before subscribers | {:.1} / {:.1} MiB | |",
        rss_idle as f64 / 1048576.0,
        rss_before as f64 / 1048576.0
    );
    println!("| relay CPU during updates | {cpu:.1} % of one core | |");
    println!(
        "| votes/s straight to the node ({FORWARD_CONCURRENCY} concurrent) | {direct_rate:.0} | |"
    );
    println!("| votes/s through the relay ({FORWARD_CONCURRENCY} concurrent) | {relay_rate:.0} ({:.0} %) | |", relay_rate / direct_rate * 100.0);
}
