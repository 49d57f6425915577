//! `votemesh-node demo`: the whole path on real ballots.
//!
//! Starts a node (this same binary, `run`, in a fresh data directory), creates
//! a poll for a PrefLib election, signs one vote per ballot (one voter key per
//! ballot, derived from a seed; the choice is the ballot's first preference),
//! replays them over HTTP with concurrency, exports the poll, verifies the
//! export independently and prints the recount beside the counts computed
//! straight from the data file.

mod cluster;
mod preflib;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use crdt::{Eligibility, PollDraft, Receipt, SecretKey, Vote, VoteBody, VoteId};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use cluster::NodeProcess;
use preflib::Election;

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

    /// Votes per HTTP request (1 sends every vote in its own request).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,

    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,

    /// Where the export and the node's log are written.
    #[arg(long, default_value = "demo-out", value_name = "DIR")]
    out: PathBuf,

    /// Seed from which the organizer and every voter key are derived.
    #[arg(long, default_value = "votemesh-demo")]
    seed: String,
}

/// One candidate's row of the result.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    expected: u64,
    recounted: u64,
}

/// The result, as printed by `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    election: String,
    poll: String,
    ballots: u64,
    candidates: Vec<Row>,
    total: Row,
    all_rows_equal: bool,
    node_tally_equal: bool,
    digest: String,
    digest_matches_node: bool,
    verified: bool,
    checks_failed: u64,
    votes_per_second: f64,
    ingest_seconds: f64,
    batch: u32,
    concurrency: u32,
    rejected: u64,
    duplicates: u64,
    retries: u64,
    receipts_verified: u64,
    retried_duplicates: u64,
    export: String,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(replay(&args))?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_table(&outcome);
    }
    if !(outcome.all_rows_equal && outcome.verified && outcome.node_tally_equal) {
        bail!("the recount does not match the ballots");
    }
    Ok(())
}

fn say(args: &Args, text: impl AsRef<str>) {
    if !args.json {
        eprintln!("{}", text.as_ref());
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
    candidates.iter().find(|p| p.exists()).cloned().with_context(|| {
        format!("no ballot file {name} under data/preflib (run from the repository root, or pass --ballots FILE)")
    })
}

/// Derives a key from the seed and a label, so a run can be reproduced.
fn derive_key(seed: &str, label: &str, index: u64) -> SecretKey {
    let mut h = Sha256::new();
    h.update(b"votemesh-demo/key/v1\0");
    h.update(seed.as_bytes());
    h.update([0]);
    h.update(label.as_bytes());
    h.update(index.to_be_bytes());
    SecretKey::from_seed(&h.finalize().into())
}

fn progress(args: &Args, len: u64, what: &str) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "  {msg:<8} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

async fn replay(args: &Args) -> anyhow::Result<Outcome> {
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
    // The node's data lives in a temporary directory, removed when the demo ends.
    let data_dir = tempfile::Builder::new()
        .prefix("votemesh-demo-node-")
        .tempdir()?;
    let log = args.out.join("node.log");
    let node = NodeProcess::start(data_dir.path(), &log).await?;
    say(
        args,
        format!(
            "[1/6] node {} listening on {} (data in {}, log in {})",
            node.key_short(),
            node.addr,
            data_dir.path().display(),
            log.display()
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    node.create_poll(&client, &poll).await?;
    say(
        args,
        format!(
            "[2/6] poll {} created: {}",
            poll.id.short(),
            poll.draft.title
        ),
    );

    let signing = Instant::now();
    let votes = sign_votes(args, &poll.id, &choices);
    say(
        args,
        format!(
            "[3/6] signed {} votes, one key per ballot, in {:.1} s",
            votes.len(),
            signing.elapsed().as_secs_f64()
        ),
    );

    // Every 40th vote is sent a second time afterwards, as a client retrying would.
    let resend: Vec<Vote> = votes.iter().step_by(40).cloned().collect();
    let sent = send_votes(args, &client, &node, &poll.id, votes).await?;
    let rate = sent.stored as f64 / sent.elapsed.as_secs_f64();
    say(args, format!(
        "[4/6] replayed over HTTP: {} stored, {} duplicate, {} rejected in {:.2} s = {:.0} votes/s ({} per request, {} in flight, {} retries)",
        sent.stored, sent.duplicates, sent.rejected, sent.elapsed.as_secs_f64(), rate, args.batch, args.concurrency, sent.retries
    ));
    let receipts_verified = verify_receipts(&sent.receipts, &node.key)?;
    let retried = retry_votes(args, &client, &node, &poll.id, resend, &sent.receipts).await?;
    say(args, format!(
        "      retried {retried} of them: every retry answered \"duplicate\" with the identical receipt"
    ));

    let tally = node.tally(&client, &poll.id).await?;
    let export_path = args.out.join(format!("{}.export.jsonl", args.election));
    let lines = node.export(&client, &poll.id, &export_path).await?;
    say(
        args,
        format!(
            "[5/6] exported {} lines to {}",
            lines,
            export_path.display()
        ),
    );

    let report = audit_file(&export_path)?;
    let failed: u64 = report.checks.iter().map(|c| c.failed).sum();
    say(
        args,
        format!(
            "[6/6] verified independently: {} of {} checks passed",
            report.checks.iter().filter(|c| c.failed == 0).count(),
            report.checks.len()
        ),
    );
    node.stop().await;

    let recounted = report
        .tally
        .as_ref()
        .map(|t| t.counts.clone())
        .unwrap_or_default();
    let digest = report.digest.map(|d| d.to_string()).unwrap_or_default();
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
    Ok(Outcome {
        election: election.title.clone(),
        poll: poll.id.to_string(),
        ballots: choices.len() as u64,
        all_rows_equal: candidates.iter().all(|r| r.expected == r.recounted)
            && total.expected == total.recounted,
        node_tally_equal: tally.counts == recounted,
        digest_matches_node: tally.digest == digest,
        candidates,
        total,
        digest,
        verified: report.verified(),
        checks_failed: failed,
        votes_per_second: rate,
        ingest_seconds: sent.elapsed.as_secs_f64(),
        batch: args.batch,
        concurrency: args.concurrency,
        rejected: sent.rejected,
        duplicates: sent.duplicates,
        retries: sent.retries,
        receipts_verified,
        retried_duplicates: retried,
        export: export_path.display().to_string(),
    })
}

fn sign_votes(args: &Args, poll: &crdt::PollId, choices: &[u32]) -> Vec<Vote> {
    let bar = progress(args, choices.len() as u64, "signing");
    let cast_at = now_ms();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = choices.len().div_ceil(threads).max(1);
    let votes = std::thread::scope(|s| {
        let handles: Vec<_> = choices
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let bar = bar.clone();
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, &choice)| {
                            let index = (c * chunk + i) as u64;
                            let voter = derive_key(&args.seed, "voter", index);
                            let vote_id: [u8; 16] = Sha256::digest(voter.public().0)[..16]
                                .try_into()
                                .expect("16 bytes");
                            bar.inc(1);
                            VoteBody {
                                poll: *poll,
                                voter: voter.public(),
                                choice,
                                seq: 1,
                                vote_id: VoteId(
                                    uuid::Builder::from_random_bytes(vote_id).into_uuid(),
                                ),
                                cast_at,
                                credential: None,
                            }
                            .sign(&voter)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    });
    bar.finish_and_clear();
    votes
}

struct Sent {
    stored: u64,
    duplicates: u64,
    rejected: u64,
    retries: u64,
    elapsed: Duration,
    receipts: Vec<Receipt>,
}

async fn send_votes(
    args: &Args,
    client: &reqwest::Client,
    node: &NodeProcess,
    poll: &crdt::PollId,
    votes: Vec<Vote>,
) -> anyhow::Result<Sent> {
    let bar = progress(args, votes.len() as u64, "voting");
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();

    for chunk in votes.chunks(args.batch as usize) {
        let chunk = chunk.to_vec();
        let permit = permits.clone().acquire_owned().await?;
        let (client, url, bar) = (
            client.clone(),
            node.url(&format!("/v1/polls/{poll}/votes/batch")),
            bar.clone(),
        );
        tasks.spawn(async move {
            let result = cluster::submit_batch(&client, &url, &chunk).await;
            bar.inc(chunk.len() as u64);
            drop(permit);
            result
        });
    }

    let mut sent = Sent {
        stored: 0,
        duplicates: 0,
        rejected: 0,
        retries: 0,
        elapsed: Duration::ZERO,
        receipts: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        let batch = joined.context("vote task")??;
        sent.stored += batch.stored;
        sent.duplicates += batch.duplicates;
        sent.rejected += batch.rejected;
        sent.retries += batch.retries;
        sent.receipts.extend(batch.receipts);
    }
    sent.elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok(sent)
}

/// Sends votes again and checks each is a duplicate with its original receipt.
async fn retry_votes(
    args: &Args,
    client: &reqwest::Client,
    node: &NodeProcess,
    poll: &crdt::PollId,
    votes: Vec<Vote>,
    first: &[Receipt],
) -> anyhow::Result<u64> {
    let original: std::collections::HashMap<_, _> = first.iter().map(|r| (r.entry, r)).collect();
    let again = send_votes(args, client, node, poll, votes).await?;
    ensure!(
        again.stored == 0,
        "{} retried votes were stored a second time",
        again.stored
    );
    for receipt in &again.receipts {
        ensure!(
            original.get(&receipt.entry) == Some(&receipt),
            "retry of {} got a different receipt",
            receipt.entry
        );
    }
    Ok(again.duplicates)
}

fn verify_receipts(receipts: &[Receipt], node: &crdt::PublicKey) -> anyhow::Result<u64> {
    for receipt in receipts {
        ensure!(
            receipt.node == *node,
            "receipt for {} signed by another node",
            receipt.entry
        );
        receipt
            .verify()
            .with_context(|| format!("receipt for entry {}", receipt.entry))?;
    }
    Ok(receipts.len() as u64)
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

fn print_table(o: &Outcome) {
    let width = o
        .candidates
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(9);
    println!();
    println!(
        "  {:<width$}  {:>9}  {:>9}",
        "candidate", "expected", "recounted"
    );
    for row in o.candidates.iter().chain(std::iter::once(&o.total)) {
        let mark = if row.expected == row.recounted {
            "equal"
        } else {
            "DIFFERENT"
        };
        println!(
            "  {:<width$}  {:>9}  {:>9}  {mark}",
            row.name, row.expected, row.recounted
        );
    }
    println!();
    println!("  digest     {}", o.digest);
    println!("  ingest     {:.0} votes/s, durable before acknowledged ({} votes per request, {} in flight)", o.votes_per_second, o.batch, o.concurrency);
    println!(
        "  receipts   {} signed receipts checked",
        o.receipts_verified
    );
    println!(
        "  verified   {}",
        if o.verified {
            "yes: every signature, rule and attestation checked".to_string()
        } else {
            format!("NO ({} failures)", o.checks_failed)
        }
    );
    println!(
        "  result     {}",
        if o.all_rows_equal && o.verified && o.node_tally_equal {
            "every row equal"
        } else {
            "MISMATCH"
        }
    );
    println!();
    println!(
        "  recount it yourself: cargo run --release -p votemesh-verify -- {}",
        o.export
    );
}
