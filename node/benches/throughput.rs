//! One-run throughput benchmark: `cargo bench -p votemesh-node`.
//!
//! Prints one table comparing what the node and the verifier sustain with the
//! limit the machine sets: ed25519 batch verification on all cores. Sizes can
//! be changed with `VOTEMESH_BENCH_VOTES` (votes per ingest run, default
//! 60,000) and `VOTEMESH_BENCH_BIG` (entries for merge, tally and restart,
//! default 1,000,000).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crdt::{Eligibility, Poll, PollDraft, PollState, SecretKey, Vote, VoteBody, VoteId};
use node::{NewEntry, SledStore, Store};
use sha2::{Digest as _, Sha256};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(label: &str, i: u64) -> SecretKey {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(i.to_be_bytes());
    SecretKey::from_seed(&h.finalize().into())
}

fn poll(title: &str, options: usize) -> Poll {
    PollDraft {
        organizer: key("organizer", 0).public(),
        created_at: 0,
        opens_at: 0,
        closes_at: u64::MAX,
        title: title.into(),
        options: (0..options).map(|i| format!("option {i}")).collect(),
        eligibility: Eligibility::Open,
    }
    .sign(&key("organizer", 0))
    .expect("valid poll")
}

fn body(poll: &Poll, voter: crdt::PublicKey, i: u64) -> VoteBody {
    VoteBody {
        poll: poll.id,
        voter,
        choice: (i % poll.option_count() as u64) as u32,
        seq: 1,
        vote_id: VoteId::from_bytes(Sha256::digest(i.to_be_bytes())[..16].try_into().unwrap()),
        cast_at: 1,
        credential: None,
    }
}

/// Really signed votes, one voter key each, signed on all cores.
fn signed_votes(poll: &Poll, n: usize, label: &str) -> Vec<Vote> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let voter = key(label, i as u64);
                            body(poll, voter.public(), i as u64).sign(&voter)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Votes with distinct voters and a placeholder signature: for measuring the
/// set and tally, which never look at signatures (admission does).
fn unsigned_votes(poll: &Poll, n: usize) -> Vec<Vote> {
    (0..n as u64)
        .map(|i| {
            let mut voter = [0u8; 32];
            voter[..8].copy_from_slice(&i.to_be_bytes());
            Vote::new(
                body(poll, crdt::PublicKey(voter), i),
                crdt::Signature([0; 64]),
            )
        })
        .collect()
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

struct Node {
    child: Child,
    addr: String,
    started: Duration,
}

impl Node {
    fn start(dir: &Path) -> Node {
        Node::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[String]) -> Node {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_votemesh-node"))
            .arg("run")
            .arg("--data-dir")
            .arg(dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--max-batch",
                "10000",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("listening line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("listening json");
        Node {
            child,
            addr: v["addr"].as_str().unwrap().to_string(),
            started: started.elapsed(),
        }
    }

    /// User plus system CPU time the node process has used (Linux `/proc`, USER_HZ = 100).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the name.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Resident set size of the node process (Linux `/proc`).
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends pre-serialized bodies to `url` from `clients` concurrent tasks; returns the wall time.
fn send_all(url: &str, bodies: Vec<String>, clients: usize) -> Duration {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let queue = Arc::new(std::sync::Mutex::new(bodies));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (client, queue, url) = (client.clone(), queue.clone(), url.to_string());
            tasks.spawn(async move {
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("request");
                    assert!(
                        response.status().is_success(),
                        "status {}",
                        response.status()
                    );
                    response.bytes().await.expect("reply");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        started.elapsed()
    })
}

/// Two mesh nodes that allow and dial each other, with keys written first so
/// each knows the other's peer id.
fn mesh_pair(dir_a: &Path, dir_b: &Path) -> (Node, Node) {
    let ident = |dir: &Path, n: u8| {
        let seed = [n; 32];
        std::fs::write(dir.join("node.key"), hex::encode(seed)).unwrap();
        let peer = libp2p::identity::Keypair::ed25519_from_bytes(seed).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        (
            format!("/ip4/127.0.0.1/tcp/{port}"),
            peer.public().to_peer_id().to_string(),
        )
    };
    let (listen_a, id_a) = ident(dir_a, 0xa1);
    let (listen_b, id_b) = ident(dir_b, 0xb2);
    let a = Node::start_with(
        dir_a,
        &[
            "--p2p-listen".into(),
            listen_a.clone(),
            "--allow".into(),
            id_b,
        ],
    );
    let b = Node::start_with(
        dir_b,
        &[
            "--p2p-listen".into(),
            listen_b,
            "--peers".into(),
            format!("{listen_a}/p2p/{id_a}"),
        ],
    );
    let started = Instant::now();
    while !connected(&b) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "mesh pair did not connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (a, b)
}

fn connected(node: &Node) -> bool {
    let peers: serde_json::Value = match reqwest::blocking::get(node.url("/v1/peers")) {
        Ok(r) => r.json().unwrap_or_default(),
        Err(_) => return false,
    };
    peers["peers"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["connected"] == true))
}

fn entries_at(tally_url: &str) -> u64 {
    reqwest::blocking::get(tally_url)
        .ok()
        .and_then(|r| r.json::<serde_json::Value>().ok())
        .and_then(|v| v["entries"].as_u64())
        .unwrap_or(0)
}

fn create_poll(node: &Node, poll: &Poll) {
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(node.url("/v1/polls"))
        .json(poll)
        .send()
        .expect("create poll");
    assert!(r.status().is_success());
}

struct Row {
    what: String,
    rate: f64,
    unit: &'static str,
    ratio: Option<f64>,
    target: &'static str,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("VOTEMESH_BENCH_VOTES", 60_000);
    let big = env_usize("VOTEMESH_BENCH_BIG", 1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("votemesh throughput benchmark: {n} signed votes per ingest run, {big} entries for merge/tally/restart, {cores} cores");
    let mut rows = Vec::new();

    // The limit: signature verification on all cores.
    let p1 = poll("bench batch", 12);
    let votes = signed_votes(&p1, n, "voter-a");

    let started = Instant::now();
    std::thread::scope(|s| {
        for part in votes.chunks(votes.len().div_ceil(cores)) {
            s.spawn(move || {
                part.iter()
                    .all(|v| crdt::verify(&v.signed_message()).is_ok())
            });
        }
    });
    let single = per_sec(n, started.elapsed());
    let started = Instant::now();
    assert!(crdt::admit_parallel(&p1, &votes).iter().all(Result::is_ok));
    let limit = per_sec(n, started.elapsed());
    rows.push(Row {
        what: "ed25519 single verify, all cores".into(),
        rate: single,
        unit: "sig/s",
        ratio: Some(single / limit),
        target: "",
    });
    rows.push(Row {
        what: "ed25519 batch verify + admission, all cores (the limit)".into(),
        rate: limit,
        unit: "sig/s",
        ratio: Some(1.0),
        target: "",
    });

    // Node ingest, batches of 1,000.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    create_poll(&node, &p1);
    let bodies: Vec<String> = votes
        .chunks(1000)
        .map(|c| serde_json::to_string(&serde_json::json!({ "votes": c })).unwrap())
        .collect();
    let cpu_before = node.cpu_seconds();
    let elapsed = send_all(
        &node.url(&format!("/v1/polls/{}/votes/batch", p1.id)),
        bodies,
        4,
    );
    let node_cpu = node.cpu_seconds() - cpu_before;
    let batch_rate = per_sec(n, elapsed);
    rows.push(Row {
        what: "node durable ingest, HTTP batches of 1,000".into(),
        rate: batch_rate,
        unit: "votes/s",
        ratio: Some(batch_rate / limit),
        target: ">= 0.6",
    });
    // The load generator runs on the same cores; this row shows the node's own cost.
    let per_cpu = n as f64 / node_cpu;
    rows.push(Row {
        what: format!("  same run, per node CPU-second ({node_cpu:.1} CPU-s for {n} votes)"),
        rate: per_cpu,
        unit: "votes/CPU-s",
        ratio: Some(per_cpu / (limit / cores as f64)),
        target: "",
    });

    // Node ingest, one vote per request from many clients.
    let p2 = poll("bench single", 12);
    create_poll(&node, &p2);
    let singles = signed_votes(&p2, n / 3, "voter-b");
    let bodies: Vec<String> = singles
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    let elapsed = send_all(
        &node.url(&format!("/v1/polls/{}/votes", p2.id)),
        bodies,
        128,
    );
    let single_rate = per_sec(singles.len(), elapsed);
    rows.push(Row {
        what: "node durable ingest, 1 vote/request, 128 clients".into(),
        rate: single_rate,
        unit: "votes/s",
        ratio: Some(single_rate / limit),
        target: "",
    });

    // Replication: votes sent to node A, timed until node B holds them all
    // durably. Both nodes verify every vote, on the same cores.
    let (pair_dir_a, pair_dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = mesh_pair(pair_dir_a.path(), pair_dir_b.path());
    create_poll(&a, &p1);
    create_poll(&b, &p1);
    let bodies: Vec<String> = votes
        .chunks(1000)
        .map(|c| serde_json::to_string(&serde_json::json!({ "votes": c })).unwrap())
        .collect();
    let started = Instant::now();
    send_all(
        &a.url(&format!("/v1/polls/{}/votes/batch", p1.id)),
        bodies,
        4,
    );
    let tally_url = b.url(&format!("/v1/polls/{}/tally", p1.id));
    while entries_at(&tally_url) < n as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "replication stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let replicated = per_sec(n, started.elapsed());
    rows.push(Row {
        what: format!(
            "replication: durable at the peer (node B), sent to node A ({:.2}x single-node ingest)",
            replicated / batch_rate
        ),
        rate: replicated,
        unit: "votes/s",
        ratio: Some(replicated / limit),
        target: "",
    });
    drop((a, b));

    // The verifier's recount of the exported poll.
    let export = reqwest::blocking::get(node.url(&format!("/v1/polls/{}/export", p1.id)))
        .unwrap()
        .text()
        .unwrap();
    drop(node);
    let started = Instant::now();
    let mut audit = crdt::audit::Audit::new();
    let file = audit.start_file("bench");
    let lines: Vec<&str> = export.lines().collect();
    for decoded in crdt::decode_lines(&lines, cores) {
        audit.push_decoded(file, decoded);
    }
    let report = audit.finish(crdt::admit_parallel);
    let verify_rate = per_sec(n, started.elapsed());
    assert!(report.verified(), "bench export must verify");
    rows.push(Row {
        what: "verifier recount of the export".into(),
        rate: verify_rate,
        unit: "votes/s",
        ratio: Some(verify_rate / limit),
        target: ">= 0.8",
    });

    // Merge and tally of `big` entries.
    let p3 = poll("bench big", 12);
    let many = unsigned_votes(&p3, big);
    let overlap = big / 5;
    let (left, right) = (&many[..(big + overlap) / 2], &many[(big - overlap) / 2..]);
    let mut a = PollState::new(p3.clone());
    let mut b = PollState::new(p3.clone());
    let started = Instant::now();
    for v in left {
        a.insert_admitted(v.clone());
    }
    for v in right {
        b.insert_admitted(v.clone());
    }
    let insert = started.elapsed();
    let started = Instant::now();
    a.merge(&b);
    let merge = started.elapsed();
    assert_eq!(a.len(), big);
    let started = Instant::now();
    let mut tally = crdt::TallyState::new(12);
    for v in &many {
        tally.add(v);
    }
    let _ = tally.tally();
    let tally_time = started.elapsed();
    let started = Instant::now();
    let _ = a.digest();
    let digest_time = started.elapsed();
    rows.push(Row {
        what: format!(
            "insert {} entries into two replicas",
            left.len() + right.len()
        ),
        rate: per_sec(left.len() + right.len(), insert),
        unit: "entries/s",
        ratio: None,
        target: "",
    });
    rows.push(Row {
        what: format!("merge replicas into {big} entries ({} s)", fmt_secs(merge)),
        rate: per_sec(right.len(), merge),
        unit: "entries/s",
        ratio: None,
        target: "",
    });
    rows.push(Row {
        what: format!("tally {big} entries ({} s)", fmt_secs(tally_time)),
        rate: per_sec(big, tally_time),
        unit: "entries/s",
        ratio: None,
        target: "",
    });
    rows.push(Row {
        what: format!("digest of {big} entries ({} s)", fmt_secs(digest_time)),
        rate: per_sec(big, digest_time),
        unit: "entries/s",
        ratio: None,
        target: "",
    });
    drop((a, b));

    // Node restart with `big` stored votes (written straight to its store).
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("sled")).unwrap();
        store.put_poll(&p3).unwrap();
        for chunk in many.chunks(10_000) {
            let entries: Vec<NewEntry<'_>> = chunk
                .iter()
                .map(|v| NewEntry {
                    hash: v.hash(),
                    received_at: 1,
                    group: None,
                    encoded: v.encoded(),
                })
                .collect();
            store.put_entries(&p3.id, &entries).unwrap();
        }
        store.sync().unwrap();
    }
    drop(many);
    let node = Node::start(dir.path());
    let restart = node.started;
    let tally: serde_json::Value =
        reqwest::blocking::get(node.url(&format!("/v1/polls/{}/tally", p3.id)))
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(tally["entries"].as_u64(), Some(big as u64));
    rows.push(Row {
        what: format!(
            "node restart with {big} stored votes ({} s)",
            fmt_secs(restart)
        ),
        rate: per_sec(big, restart),
        unit: "entries/s",
        ratio: None,
        target: "",
    });
    let rss = node.rss_bytes();
    rows.push(Row {
        what: format!(
            "node memory after that restart ({} MiB resident)",
            rss / (1 << 20)
        ),
        rate: rss as f64 / big as f64,
        unit: "bytes/entry",
        ratio: None,
        target: "",
    });

    println!();
    println!(
        "ratio: rate / the limit; for a per-CPU-second row, rate / (the limit / {cores} cores)."
    );
    println!("| measurement | rate | unit | ratio to limit | target |");
    println!("| --- | ---: | --- | ---: | --- |");
    for r in &rows {
        let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default();
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            r.what, r.rate, r.unit, ratio, r.target
        );
    }
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}
