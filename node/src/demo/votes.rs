//! Signing the demo's votes and sending them to the nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use crdt::{PollId, PublicKey, Receipt, Vote, VoteBody, VoteId};
use sha2::{Digest as _, Sha256};

use super::cluster::{self, NodeProcess};
use super::{derive_key, now_ms, progress, Args};

/// One signed vote per ballot, one voter key per ballot, signed on all cores.
pub(crate) fn sign(args: &Args, poll: &PollId, choices: &[u32]) -> Vec<Vote> {
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
                            let voter = derive_key(&args.seed, "voter", (c * chunk + i) as u64);
                            let id: [u8; 16] = Sha256::digest(voter.public().0)[..16]
                                .try_into()
                                .expect("16");
                            bar.inc(1);
                            VoteBody {
                                poll: *poll,
                                voter: voter.public(),
                                choice,
                                seq: 1,
                                vote_id: VoteId(uuid::Builder::from_random_bytes(id).into_uuid()),
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

/// What a replay achieved.
#[derive(Default)]
pub(crate) struct Sent {
    pub(crate) stored: u64,
    pub(crate) duplicates: u64,
    pub(crate) rejected: u64,
    pub(crate) retries: u64,
    pub(crate) elapsed: Duration,
    pub(crate) receipts: Vec<Receipt>,
}

impl Sent {
    pub(crate) fn add(&mut self, other: Sent) {
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.retries += other.retries;
        self.elapsed += other.elapsed;
        self.receipts.extend(other.receipts);
    }
}

/// Sends `votes` in batches, batch `j` to the node or relay at base URL
/// `targets[j % targets.len()]`, with at most `--concurrency` requests in flight.
pub(crate) async fn send(
    args: &Args,
    client: &reqwest::Client,
    targets: &[String],
    poll: &PollId,
    votes: &[Vote],
    label: &str,
) -> anyhow::Result<Sent> {
    let bar = progress(args, votes.len() as u64, label);
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();

    for (j, chunk) in votes.chunks(args.batch as usize).enumerate() {
        let chunk = chunk.to_vec();
        let permit = permits.clone().acquire_owned().await?;
        let url = format!("{}/v1/polls/{poll}/votes/batch", targets[j % targets.len()]);
        let (client, bar) = (client.clone(), bar.clone());
        tasks.spawn(async move {
            let result = cluster::submit_batch(&client, &url, &chunk).await;
            bar.inc(chunk.len() as u64);
            drop(permit);
            result
        });
    }

    let mut sent = Sent::default();
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

/// Sends every vote again to the node that first acknowledged it and checks
/// that each is a duplicate with the identical receipt. Returns the count.
pub(crate) async fn retry(
    args: &Args,
    client: &reqwest::Client,
    nodes: &[NodeProcess],
    poll: &PollId,
    votes: &[Vote],
    first: &[Receipt],
) -> anyhow::Result<u64> {
    let original: HashMap<_, _> = first.iter().map(|r| (r.entry, r)).collect();
    let mut retried = 0;
    for node in nodes {
        let mine: Vec<Vote> = votes
            .iter()
            .filter(|v| original.get(&v.hash()).is_some_and(|r| r.node == node.key))
            .cloned()
            .collect();
        let again = send(args, client, &[node.url("")], poll, &mine, "retrying").await?;
        ensure!(
            again.stored == 0,
            "{} retried votes were stored twice",
            again.stored
        );
        for receipt in &again.receipts {
            ensure!(
                original.get(&receipt.entry) == Some(&receipt),
                "retry of {} got a different receipt",
                receipt.entry
            );
        }
        retried += again.duplicates;
    }
    Ok(retried)
}

/// Checks every receipt's signature and that a demo node signed it.
pub(crate) fn verify_receipts(receipts: &[Receipt], nodes: &[PublicKey]) -> anyhow::Result<u64> {
    for receipt in receipts {
        ensure!(
            nodes.contains(&receipt.node),
            "receipt for {} by an unknown node",
            receipt.entry
        );
        receipt
            .verify()
            .with_context(|| format!("receipt for entry {}", receipt.entry))?;
    }
    Ok(receipts.len() as u64)
}
