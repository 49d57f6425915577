//! `votemesh-node demo`: the whole path on real ballots.
//!
//! Starts a mesh of regional nodes (this same binary, `run`, each in a fresh
//! temporary data directory), creates a poll for a PrefLib election, signs one
//! vote per ballot (one voter key per ballot, derived from a seed; the choice
//! is the ballot's first preference) and replays them over HTTP, spread over
//! the nodes. The last node is cut off from the others for the middle third of
//! the replay and then healed. Then every node's export is verified
//! independently and the recount printed beside the counts computed straight
//! from the data file.

mod cluster;
mod live;
mod preflib;
mod report;
mod votes;
mod web;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use crdt::{Eligibility, Poll, PollDraft, SecretKey};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest as _, Sha256};

use cluster::{Ident, NodeProcess};
use live::{EdgeRelay, Subscriber};
use preflib::Election;
use report::{Live, NodeRow, Outcome, Partition, Row};

/// How long the nodes may take to connect, and to converge after a heal.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `votemesh-node demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Which shipped election to replay: dublin-north-2002, dublin-west-2002 or meath-2002.
    #[arg(long, default_value = "dublin-north-2002")]
    election: String,

    /// A PrefLib `.soi` file to replay instead of a shipped election.
    #[arg(long, value_name = "FILE")]
    ballots: Option<PathBuf>,

    /// Print the result as one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,

    /// Regional nodes in the mesh. With 2 or more, the last one is cut off for
    /// the middle third of the replay and healed afterwards.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,

    /// Votes per HTTP request (1 sends every vote in its own request).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,

    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,

    /// Where the exports and the nodes' logs are written.
    #[arg(long, default_value = "demo-out", value_name = "DIR")]
    out: PathBuf,

    /// Seed from which the organizer, node and voter keys are derived.
    #[arg(long, default_value = "votemesh-demo")]
    seed: String,

    /// After the replay, keep the nodes and relays running and serve the
    /// voters' pages (poll and live results) from every relay, until Ctrl-C.
    /// Needs the browser build: run from a source checkout, client/build.sh
    /// makes it or brings it up to date first.
    #[arg(long)]
    serve: bool,

    /// The browser build to serve pages from [default: <target dir>/web, next
    /// to this binary's directory].
    #[arg(long, value_name = "DIR", requires = "serve")]
    web_build: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let web_build = if args.serve {
        Some(web::build_dir(args.web_build.as_deref())?)
    } else {
        None
    };
    let outcome = runtime.block_on(replay(&args, web_build.as_deref()))?;
    if !args.serve {
        print_outcome(&args, &outcome)?;
    }
    if !outcome.success() {
        bail!("the recount does not match the ballots");
    }
    Ok(())
}

fn print_outcome(args: &Args, outcome: &Outcome) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        report::print(outcome);
    }
    Ok(())
}

fn say(args: &Args, text: impl AsRef<str>) {
    if !args.json {
        eprintln!("{}", text.as_ref());
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ballots_path(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.ballots {
        return Ok(path.clone());
    }
    let name = format!("{}.soi", args.election);
    let candidates = [
        PathBuf::from("data/preflib").join(&name),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/preflib")
            .join(&name),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .with_context(|| {
            // Name the elections that are there, if the data directory is.
            let mut shipped: Vec<String> = candidates
                .iter()
                .filter_map(|p| std::fs::read_dir(p.parent()?).ok())
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".soi").map(str::to_owned)
                })
                .collect();
            shipped.sort();
            shipped.dedup();
            let known = if shipped.is_empty() {
                String::new()
            } else {
                format!("; elections there: {}", shipped.join(", "))
            };
            format!(
                "no ballot file {name} under data/preflib{known} (run from the repository root, \
             or pass --ballots FILE)"
            )
        })
}

/// The 32-byte seed of a key derived from the demo seed and a label, so a run can be reproduced.
fn derive_seed(seed: &str, label: &str, index: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"votemesh-demo/key/v1\0");
    h.update(seed.as_bytes());
    h.update([0]);
    h.update(label.as_bytes());
    h.update(index.to_be_bytes());
    h.finalize().into()
}

pub(crate) fn derive_key(seed: &str, label: &str, index: u64) -> SecretKey {
    SecretKey::from_seed(&derive_seed(seed, label, index))
}

pub(crate) fn progress(args: &Args, len: u64, what: &str) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "  {msg:<9} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The running mesh: node processes, their identities, the admin token, and
/// one edge relay per node that voters send to.
struct Mesh {
    nodes: Vec<NodeProcess>,
    relays: Vec<EdgeRelay>,
    idents: Vec<Ident>,
    token: String,
    /// Removed when the demo ends.
    _dirs: Vec<tempfile::TempDir>,
}

async fn start_mesh(
    args: &Args,
    client: &reqwest::Client,
    web_build: Option<&Path>,
) -> anyhow::Result<Mesh> {
    let n = args.nodes as usize;
    let token = hex::encode(derive_seed(&args.seed, "admin-token", 0));
    let mut dirs = Vec::new();
    let mut idents = Vec::new();
    for i in 0..n {
        let dir = tempfile::Builder::new()
            .prefix("votemesh-demo-node-")
            .tempdir()?;
        idents.push(Ident::prepare(
            dir.path(),
            &derive_seed(&args.seed, "node", i as u64),
        )?);
        dirs.push(dir);
    }

    let mut nodes = Vec::new();
    for (i, me) in idents.iter().enumerate() {
        let mut extra = vec!["--sync-interval-secs".to_string(), "1".into()];
        if n > 1 {
            let others: Vec<&Ident> = idents.iter().filter(|o| o.peer_id != me.peer_id).collect();
            extra.extend(["--p2p-listen".into(), me.listen()]);
            extra.extend(["--peers".into(), join(others.iter().map(|o| o.addr()))]);
        } else {
            extra.extend(["--p2p-listen".into(), String::new()]);
        }
        let log = args.out.join(format!("node-{}.log", i + 1));
        let env = [("VOTEMESH_ADMIN_TOKEN", token.as_str())];
        nodes.push(NodeProcess::start(dirs[i].path(), &log, &extra, &env).await?);
    }

    let started = Instant::now();
    for node in &nodes {
        while node.connected_peers(client).await.unwrap_or(0) < n - 1 {
            if started.elapsed() > MESH_TIMEOUT {
                bail!("the nodes did not connect within {MESH_TIMEOUT:?}; see demo-out/node-*.log");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // One relay per region: it prefers its own node and fails over to the others.
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let mut relays = Vec::new();
    for i in 0..n {
        let mut order = urls.clone();
        order.rotate_left(i);
        let pages = web_build.map(|build| {
            (
                build.to_path_buf(),
                args.out.join(format!("site-{}", i + 1)),
            )
        });
        relays.push(EdgeRelay::start(order, pages).await?);
    }
    Ok(Mesh {
        nodes,
        relays,
        idents,
        token,
        _dirs: dirs,
    })
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

impl Mesh {
    /// Blocks (or unblocks) every link between the last node and the others, on both sides.
    async fn cut_last(&self, client: &reqwest::Client, cut: bool) -> anyhow::Result<()> {
        let last = self.nodes.len() - 1;
        for i in 0..last {
            let (a, b) = (&self.nodes[i], &self.nodes[last]);
            a.set_blocked(client, &self.token, &self.idents[last].peer_id, cut)
                .await?;
            b.set_blocked(client, &self.token, &self.idents[i].peer_id, cut)
                .await?;
        }
        Ok(())
    }

    /// Waits until every node holds `entries` entries with one digest.
    async fn converge(
        &self,
        client: &reqwest::Client,
        poll: &Poll,
        entries: u64,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let mut digests = Vec::new();
            for node in &self.nodes {
                let tally = node.tally(client, &poll.id).await?;
                digests.push((tally.entries, tally.digest));
            }
            if digests
                .iter()
                .all(|d| d.0 == entries && d.1 == digests[0].1)
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > MESH_TIMEOUT {
                bail!("the nodes did not converge within {MESH_TIMEOUT:?}: {digests:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn replay(args: &Args, web_build: Option<&Path>) -> anyhow::Result<Outcome> {
    let path = ballots_path(args)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let election = Election::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    let expected = election.first_preferences();
    let choices = election.ballots();
    say(args, format!(
        "votemesh demo: {} ({} real ballots, {} candidates)\n  ballots from {} (PrefLib; see data/README.md)",
        election.title, choices.len(), election.candidates.len(), path.display()
    ));

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    let mesh = start_mesh(args, &client, web_build).await?;
    let keys: Vec<String> = mesh.nodes.iter().map(|n| n.key_short()).collect();
    say(
        args,
        format!(
            "[1/6] {} regional nodes up and connected over libp2p: {} (logs in {}/node-*.log); an edge relay in front of each",
            mesh.nodes.len(),
            keys.join(", "),
            args.out.display()
        ),
    );

    let organizer = derive_key(&args.seed, "organizer", 0);
    let opens_at = now_ms() - 60_000;
    let poll = PollDraft {
        organizer: organizer.public(),
        created_at: opens_at,
        opens_at,
        closes_at: opens_at + 7 * 24 * 3_600_000,
        title: election.title.clone(),
        options: election.candidates.clone(),
        eligibility: Eligibility::Open,
    }
    .sign(&organizer)?;
    for node in &mesh.nodes {
        node.create_poll(&client, &poll).await?;
    }
    let mut subscriber = Subscriber::follow(&client, &mesh.relays[0].url, &poll.id).await?;
    let signing = Instant::now();
    let votes = votes::sign(args, &poll.id, &choices);
    say(
        args,
        format!(
            "[2/6] poll {} created on every node and followed live through relay 1; {} votes signed, one key per ballot, in {:.1} s",
            poll.id.short(),
            votes.len(),
            signing.elapsed().as_secs_f64()
        ),
    );

    let (sent, partition) = replay_in_thirds(args, &client, &mesh, &poll, &votes).await?;
    let rate = sent.stored as f64 / sent.elapsed.as_secs_f64();
    say(args, format!(
        "[4/6] all {} votes acknowledged durably: {} stored, {} duplicate, {} rejected; {:.0} votes/s ({} per request, {} in flight)",
        votes.len(), sent.stored, sent.duplicates, sent.rejected, rate, args.batch, args.concurrency
    ));
    let node_keys: Vec<_> = mesh.nodes.iter().map(|n| n.key).collect();
    let receipts_verified = votes::verify_receipts(&sent.receipts, &node_keys)?;
    // Every 40th vote is sent again, as a client retrying would.
    let resend: Vec<_> = votes.iter().step_by(40).cloned().collect();
    let retried = votes::retry(
        args,
        &client,
        &mesh.nodes,
        &poll.id,
        &resend,
        &sent.receipts,
    )
    .await?;
    say(args, format!(
        "      {receipts_verified} signed receipts checked; {retried} votes retried: each answered \"duplicate\" with its identical receipt"
    ));

    let mut nodes = Vec::new();
    for (i, node) in mesh.nodes.iter().enumerate() {
        let export = args
            .out
            .join(format!("{}.node-{}.export.jsonl", args.election, i + 1));
        node.export(&client, &poll.id, &export).await?;
        let tally = node.tally(&client, &poll.id).await?;
        let report = audit_file(&export)?;
        nodes.push(NodeRow::new(node, &tally, &report, &export));
    }
    say(
        args,
        format!(
            "[5/6] exported every node's state to {}/{}.node-*.export.jsonl",
            args.out.display(),
            args.election
        ),
    );
    say(
        args,
        format!(
            "[6/6] verified each export independently: {}",
            nodes
                .iter()
                .map(|n| if n.verified { "ok" } else { "FAILED" })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let (update, updates) = subscriber
        .wait_for(votes.len() as u64, MESH_TIMEOUT)
        .await?;
    let live = Live {
        relay: mesh.relays[0].url.clone(),
        updates,
        version: update.version,
        counts_equal_recount: update.counts == nodes[0].counts,
        digest_equal: update.digest == nodes[0].digest,
    };
    say(args, format!(
        "      the live subscriber on relay 1 got {} coalesced updates; its final counts {} the recount",
        live.updates,
        if live.counts_equal_recount { "equal" } else { "DIFFER FROM" }
    ));
    drop(subscriber);

    let recounted = nodes[0].counts.clone();
    let candidates: Vec<Row> = election
        .candidates
        .iter()
        .enumerate()
        .map(|(i, name)| Row {
            name: name.clone(),
            expected: expected[i],
            recounted: recounted.get(i).copied().unwrap_or(0),
        })
        .collect();
    let total = Row {
        name: "total".into(),
        expected: expected.iter().sum(),
        recounted: recounted.iter().sum(),
    };
    let outcome = Outcome {
        election: election.title.clone(),
        poll: poll.id.to_string(),
        ballots: choices.len() as u64,
        all_rows_equal: candidates.iter().all(|r| r.expected == r.recounted)
            && total.expected == total.recounted,
        digests_equal: nodes.iter().all(|n| n.digest == nodes[0].digest),
        verified: nodes.iter().all(|n| n.verified),
        digest: nodes[0].digest.clone(),
        candidates,
        total,
        nodes,
        partition,
        live,
        votes_per_second: rate,
        ingest_seconds: sent.elapsed.as_secs_f64(),
        batch: args.batch,
        concurrency: args.concurrency,
        rejected: sent.rejected,
        duplicates: sent.duplicates,
        retries: sent.retries,
        receipts_verified,
        retried_duplicates: retried,
        export: args
            .out
            .join(format!("{}.node-1.export.jsonl", args.election))
            .display()
            .to_string(),
    };
    if args.serve {
        print_outcome(args, &outcome)?;
        web::serve(&client, &mesh.relays, &poll.id).await?;
    }
    for relay in mesh.relays {
        relay.stop().await;
    }
    for node in mesh.nodes {
        node.stop().await;
    }
    Ok(outcome)
}

/// Replays the votes in three thirds, spread over the nodes. With more than
/// one node, the last is cut off for the middle third (its voters keep voting
/// there) and healed before the last third.
async fn replay_in_thirds(
    args: &Args,
    client: &reqwest::Client,
    mesh: &Mesh,
    poll: &Poll,
    votes: &[crdt::Vote],
) -> anyhow::Result<(votes::Sent, Option<Partition>)> {
    // Voters send to the relays, spread evenly.
    let all: Vec<String> = mesh.relays.iter().map(|r| r.url.clone()).collect();
    let third = votes.len() / 3;
    let (first, rest) = votes.split_at(third);
    let (middle, last) = rest.split_at(third);

    let mut sent = votes::send(args, client, &all, &poll.id, first, "1st third").await?;
    if mesh.nodes.len() == 1 {
        sent.add(votes::send(args, client, &all, &poll.id, rest, "the rest").await?);
        say(
            args,
            "[3/6] replayed on one node (no partition with --nodes 1)",
        );
        return Ok((sent, None));
    }

    mesh.cut_last(client, true).await?;
    sent.add(votes::send(args, client, &all, &poll.id, middle, "2nd third").await?);
    let cut_node = mesh.nodes.last().expect("two nodes or more");
    let cut_entries = cut_node.tally(client, &poll.id).await?.entries;
    let main_entries = mesh.nodes[0].tally(client, &poll.id).await?.entries;

    mesh.cut_last(client, false).await?;
    let converge = mesh.converge(client, poll, (2 * third) as u64).await?;
    say(args, format!(
        "[3/6] node {} cut off for the middle third: it held {} entries, the others {}; healed, all {} nodes equal {:.2} s later",
        mesh.nodes.len(), cut_entries, main_entries, mesh.nodes.len(), converge.as_secs_f64()
    ));

    sent.add(votes::send(args, client, &all, &poll.id, last, "3rd third").await?);
    let settle = mesh.converge(client, poll, votes.len() as u64).await?;
    let partition = Partition {
        cut_off_node: mesh.nodes.len() as u32,
        votes_during_partition: middle.len() as u64,
        entries_on_cut_off_node: cut_entries,
        entries_on_other_nodes: main_entries,
        converged_after_heal_ms: converge.as_millis() as u64,
        final_settle_ms: settle.as_millis() as u64,
    };
    Ok((sent, Some(partition)))
}

fn audit_file(path: &Path) -> anyhow::Result<crdt::audit::Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut audit = crdt::audit::Audit::new();
    let index = audit.start_file(path.display().to_string());
    for decoded in crdt::decode_lines(&lines, threads) {
        audit.push_decoded(index, decoded);
    }
    Ok(audit.finish(crdt::admit_parallel))
}
