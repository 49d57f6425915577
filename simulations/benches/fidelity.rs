//! Fidelity check: `cargo bench -p votemesh-sim --bench fidelity`.
//!
//! Runs `three-node-partition.toml` in the simulator, then the same partition
//! on three real `votemesh-node` processes on 127.0.0.1 (the same number of
//! votes per phase and per node, cast at the scenario's times, node 2 blocked
//! for the middle phase with the operator API), and prints one table: the
//! convergence time after the heal and the node-to-node bytes per vote, real
//! beside simulated.
//!
//! Needs a release build of the node next to this bench's target directory:
//! `cargo build --release -p votemesh-node` (or set `VOTEMESH_NODE_BIN`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crdt::{Eligibility, Poll, PollDraft, PollState, SecretKey, Vote, VoteBody, VoteId};
use serde_json::Value;
use sim::{Fault, Options, Scenario, Sim, Summary};

const SCENARIO: &str = include_str!("../scenarios/three-node-partition.toml");
const TOKEN: &str = "fidelity-admin-token";
/// Bound on any wait for the real mesh (connect, converge).
const WAIT: Duration = Duration::from_secs(15);
/// How often the tallies are read while waiting for convergence.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// Phases: before the cut, during it, after the heal.
const PHASES: usize = 3;
const NODES: usize = 3;

/// One vote of the scenario: when it was accepted (seconds from the start
/// of its phase), its phase and the node that acknowledged it.
#[derive(Debug, Clone, Copy)]
struct Planned {
    offset_s: f64,
    phase: usize,
    node: usize,
}

struct SimResult {
    summary: Summary,
    plan: Vec<Planned>,
    cut_s: f64,
    heal_s: f64,
}

fn run_sim() -> SimResult {
    let scenario = Scenario::parse(SCENARIO).expect("scenario parses");
    let cut_s = scenario
        .faults
        .iter()
        .find_map(|f| match f {
            Fault::Partition { at_s, .. } => Some(*at_s),
            _ => None,
        })
        .expect("scenario has a partition");
    let heal_s = scenario
        .faults
        .iter()
        .find_map(|f| match f {
            Fault::Heal { at_s } => Some(*at_s),
            _ => None,
        })
        .expect("scenario has a heal");
    let started = Instant::now();
    let outcome = Sim::new(scenario, &Options::default()).run(&mut |_| {});
    let summary = Summary::new(&outcome, started.elapsed());
    assert!(outcome.check.passed(), "simulator invariants broke");
    let mut plan: Vec<Planned> = outcome
        .votes
        .iter()
        .filter_map(|v| {
            let t = v.accepted? as f64 / 1e6;
            let (phase, start) = if t < cut_s {
                (0, 0.0)
            } else if t < heal_s {
                (1, cut_s)
            } else {
                (2, heal_s)
            };
            Some(Planned {
                offset_s: t - start,
                phase,
                node: v.acked_by as usize,
            })
        })
        .collect();
    plan.sort_by(|a, b| {
        (a.phase, a.offset_s)
            .partial_cmp(&(b.phase, b.offset_s))
            .unwrap()
    });
    SimResult {
        summary,
        plan,
        cut_s,
        heal_s,
    }
}

// ---------------------------------------------------------------- real mesh

/// Child processes killed (and their data removed) when dropped, so a panic
/// anywhere below leaves nothing running.
struct Mesh {
    children: Vec<Child>,
    root: PathBuf,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Ident {
    peer_id: String,
    port: u16,
}

impl Ident {
    fn listen(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }
    fn addr(&self) -> String {
        format!("{}/p2p/{}", self.listen(), self.peer_id)
    }
}

fn base58(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for d in &mut digits {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n(b'1', zeros)
        .chain(digits.iter().rev().map(|&d| ALPHABET[d as usize]))
        .map(char::from)
        .collect()
}

/// The libp2p peer id of an ed25519 key: base58 of the identity multihash
/// of the protobuf-encoded public key.
fn peer_id(seed: &[u8; 32]) -> String {
    let public = SecretKey::from_seed(seed).public();
    let mut bytes = vec![0x00, 36, 0x08, 0x01, 0x12, 32];
    bytes.extend_from_slice(public.as_bytes());
    base58(&bytes)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Node {
    http: String,
}

impl Mesh {
    fn start(&mut self, bin: &Path, n: u8, me: &Ident, dial: &[&Ident], allow: &[&Ident]) -> Node {
        let dir = self.root.join(format!("node{n}"));
        std::fs::create_dir_all(&dir).expect("data dir");
        let seed = [n; 32];
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join("node.key"), hex).expect("node.key");
        let log = std::fs::File::create(dir.with_extension("log")).expect("log");
        let mut command = Command::new(bin);
        command
            .arg("run")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--p2p-listen", &me.listen()])
            .args(["--sync-interval-secs", "2"])
            .env("VOTEMESH_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if !dial.is_empty() {
            let peers: Vec<String> = dial.iter().map(|i| i.addr()).collect();
            command.args(["--peers", &peers.join(",")]);
        }
        if !allow.is_empty() {
            let ids: Vec<&str> = allow.iter().map(|i| i.peer_id.as_str()).collect();
            command.args(["--allow", &ids.join(",")]);
        }
        let mut child = command.spawn().expect("spawn votemesh-node");
        let stdout = child.stdout.take().expect("stdout");
        self.children.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("node {n} printed no listening line: {e}"));
        let event: Value = serde_json::from_str(&line).expect("listening line is json");
        let p2p = event["p2p"].as_str().unwrap_or_default();
        assert!(
            p2p.ends_with(&me.peer_id),
            "node {n} has peer id {p2p}, expected {}",
            me.peer_id
        );
        Node {
            http: event["addr"].as_str().expect("addr").to_string(),
        }
    }
}

/// One HTTP request to a node (with the admin token): status and body.
fn request(node: &Node, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let url = format!("http://{}{path}", node.http);
    let builder = match method {
        "POST" => client.post(&url).json(body.unwrap_or(&Value::Null)),
        _ => client.get(&url),
    };
    let response = builder.bearer_auth(TOKEN).send().expect("request to node");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

fn json(node: &Node, path: &str) -> Option<Value> {
    let (status, body) = request(node, "GET", path, None);
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn post(node: &Node, path: &str, body: &Value) -> u16 {
    let (status, text) = request(node, "POST", path, Some(body));
    assert!(status < 300, "POST {path}: {status} {text}");
    status
}

fn connected(node: &Node) -> usize {
    json(node, "/v1/peers").map_or(0, |body| {
        body["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["connected"] == true).count())
    })
}

/// `(entries, digest)` of the poll on a node.
fn state(node: &Node, poll: &Poll) -> Option<(u64, String)> {
    let body = json(node, &format!("/v1/polls/{}/tally", poll.id))?;
    Some((
        body["entries"].as_u64()?,
        body["digest"].as_str()?.to_string(),
    ))
}

/// Whether every node holds `entries` entries with one digest.
fn converged(nodes: &[&Node], poll: &Poll, entries: u64) -> bool {
    let states: Vec<_> = nodes.iter().map(|n| state(n, poll)).collect();
    states
        .iter()
        .all(|s| s.as_ref().is_some_and(|s| s.0 == entries))
        && states.windows(2).all(|w| w[0] == w[1])
}

fn wait(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(started.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        std::thread::sleep(POLL_EVERY);
    }
}

/// Sum of `votemesh_p2p_bytes_total{direction=...}` over protocols.
fn p2p_bytes(node: &Node, direction: &str) -> f64 {
    let (_, text) = request(node, "GET", "/metrics", None);
    let label = format!("direction=\"{direction}\"");
    text.lines()
        .filter(|l| l.starts_with("votemesh_p2p_bytes") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

fn organizer() -> SecretKey {
    SecretKey::from_seed(&[0xaa; 32])
}

fn make_poll() -> Poll {
    PollDraft {
        organizer: organizer().public(),
        created_at: 1,
        opens_at: 1_000,
        closes_at: 1_000_000,
        title: "fidelity".into(),
        options: vec!["soup".into(), "salad".into(), "pie".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer())
    .expect("poll signs")
}

fn make_vote(poll: &Poll, n: u32) -> Vote {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0xf1;
    let voter = SecretKey::from_seed(&seed);
    let mut vote_id = [0u8; 16];
    vote_id[..4].copy_from_slice(&n.to_le_bytes());
    VoteBody {
        poll: poll.id,
        voter: voter.public(),
        choice: n % 3,
        seq: 1,
        vote_id: VoteId::from_bytes(vote_id),
        cast_at: 1_010,
        credential: None,
    }
    .sign(&voter)
}

struct RealResult {
    heal: Duration,
    bytes_in: f64,
    bytes_out: f64,
    votes: u64,
    wall: Duration,
}

fn run_real(bin: &Path, plan: &[Planned]) -> RealResult {
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!("votemesh-fidelity-{}", std::process::id()));
    let mut mesh = Mesh {
        children: Vec::new(),
        root,
    };
    let ids: Vec<Ident> = (1..=NODES as u8)
        .map(|n| Ident {
            peer_id: peer_id(&[n; 32]),
            port: free_port(),
        })
        .collect();
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let na = mesh.start(bin, 1, a, &[], &[b, c]);
    let nb = mesh.start(bin, 2, b, &[a], &[c]);
    let nc = mesh.start(bin, 3, c, &[a, b], &[]);
    let nodes = [&na, &nb, &nc];

    let poll = make_poll();
    post(&na, "/v1/polls", &serde_json::to_value(&poll).unwrap());
    for node in nodes {
        wait("two peers each", || connected(node) == 2);
        wait("poll everywhere", || state(node, &poll).is_some());
    }
    let bytes = |direction| nodes.iter().map(|n| p2p_bytes(n, direction)).sum::<f64>();
    let (in0, out0) = (bytes("in"), bytes("out"));

    let votes: Vec<Vote> = (0..plan.len() as u32)
        .map(|n| make_vote(&poll, n))
        .collect();
    let vote_path = format!("/v1/polls/{}/votes", poll.id);
    let mut sent = 0u64;
    let mut cast_phase = |phase: usize| {
        let began = Instant::now();
        for (p, vote) in plan.iter().zip(&votes).filter(|(p, _)| p.phase == phase) {
            let due = Duration::from_secs_f64(p.offset_s);
            if let Some(rest) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(rest);
            }
            post(
                nodes[p.node],
                &vote_path,
                &serde_json::to_value(vote).unwrap(),
            );
            sent += 1;
        }
        sent
    };
    let blocks = [(&na, c), (&nb, c), (&nc, a), (&nc, b)];

    let before = cast_phase(0);
    wait("first votes everywhere", || {
        converged(&nodes, &poll, before)
    });
    for (node, peer) in blocks {
        post(
            node,
            &format!("/v1/peers/{}/block", peer.peer_id),
            &Value::Null,
        );
    }
    wait("node 3 isolated", || connected(&nc) == 0);
    let during = cast_phase(1);
    let cut_off = state(&nc, &poll).expect("tally").0;
    assert!(
        cut_off < during,
        "the partition held: node 3 lacks the majority's votes"
    );
    // Heal; the node that does not dial first, as in node/tests/mesh.rs.
    let healed = Instant::now();
    for (node, peer) in blocks {
        post(
            node,
            &format!("/v1/peers/{}/unblock", peer.peer_id),
            &Value::Null,
        );
    }
    while !converged(&nodes, &poll, during) {
        assert!(healed.elapsed() < WAIT, "no convergence after the heal");
        std::thread::sleep(POLL_EVERY);
    }
    let heal = healed.elapsed();
    let all = cast_phase(2);
    wait("all votes everywhere", || converged(&nodes, &poll, all));
    let mut reference = PollState::new(poll.clone());
    for vote in &votes[..all as usize] {
        reference.insert(vote.clone()).expect("admissible");
    }
    let digest = state(&na, &poll).expect("tally").1;
    assert_eq!(digest, reference.digest().to_string(), "zero votes lost");
    let result = RealResult {
        heal,
        bytes_in: bytes("in") - in0,
        bytes_out: bytes("out") - out0,
        votes: all,
        wall: started.elapsed(),
    };
    drop(mesh);
    result
}

fn node_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("VOTEMESH_NODE_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("votemesh-node"))
        .find(|p| p.is_file())
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // of that kind and must not start processes.
    if !std::env::args().any(|a| a == "--bench") {
        return ExitCode::SUCCESS;
    }
    let Some(bin) = node_binary() else {
        eprintln!(
            "votemesh-node not found next to {}; run `cargo build --release -p votemesh-node` \
             first (same CARGO_TARGET_DIR), or set VOTEMESH_NODE_BIN",
            std::env::current_exe().map_or_else(|_| "?".into(), |p| p.display().to_string())
        );
        return ExitCode::FAILURE;
    };

    let sim = run_sim();
    let mut counts = [[0u32; NODES]; PHASES];
    for p in &sim.plan {
        counts[p.phase][p.node] += 1;
    }
    eprintln!(
        "scenario: cut {}-{} s; votes per phase and node (before, during, after): {counts:?}",
        sim.cut_s, sim.heal_s
    );
    eprintln!("running the real mesh ({}) ...", bin.display());
    let real = run_real(&bin, &sim.plan);

    let s = &sim.summary;
    let sim_votes = sim.plan.len() as f64;
    let real_votes = real.votes as f64;
    println!();
    println!(
        "fidelity: three-node-partition, {} votes (sim seed {}), real run {:.1} s wall",
        real.votes,
        s.seed,
        real.wall.as_secs_f64()
    );
    println!("| figure | real (3 x votemesh-node) | sim |");
    println!("| --- | --- | --- |");
    println!(
        "| convergence after heal, s | {:.3} | {:.3} |",
        real.heal.as_secs_f64(),
        s.convergence_after_last_heal_s.unwrap_or(f64::NAN)
    );
    println!(
        "| node-to-node bytes/vote (received) | {:.0} | {:.0} |",
        real.bytes_in / real_votes,
        s.bytes_total as f64 / sim_votes
    );
    println!(
        "| node-to-node bytes/vote (sent; real gossip counted once per publish) | {:.0} | {:.0} |",
        real.bytes_out / real_votes,
        s.bytes_total as f64 / sim_votes
    );
    println!(
        "| sim split: push / sync bytes/vote | - | {:.0} / {:.0} |",
        s.push_bytes_per_vote, s.sync_bytes_per_vote
    );
    println!(
        "| node-to-node messages/vote | n/a (not exported) | {:.2} |",
        s.messages_per_vote
    );
    println!();
    println!(
        "real bytes are application payloads (votemesh_p2p_bytes: gossip data and sync frames); \
         they exclude TCP/noise/yamux framing and libp2p gossipsub control traffic (IHAVE/IWANT, \
         GRAFT, heartbeats), which the simulator does not model either. Real convergence is \
         wall time from the first unblock call to equal digests read every 10 ms over HTTP, so \
         it includes the redial after the block; the simulator heals links instantly."
    );
    ExitCode::SUCCESS
}
