//! Group commit: one task owns every write to the store.
//!
//! Requests send their work and a reply channel to a bounded queue. The
//! committer takes everything queued, writes it, makes it durable with ONE
//! [`Store::sync`], then adds the new entries to the in-memory replicas and
//! answers every waiter. While it syncs, new requests queue up and form the
//! next group, so many concurrent requests share one fsync.
//!
//! A vote acknowledged is a vote on disk: nothing is answered, and nothing
//! enters a replica, before the sync of its group succeeded.
//!
//! Receipts: for each poll with new entries in a group, the committer signs
//! ONE [`crdt::GroupStatement`] over the Merkle root of those entries and
//! stores it with them (see [`crate::receipts`]); each vote's receipt is
//! that statement with the vote's inclusion path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crdt::{EntryHash, Poll, PollId, Receipt, SecretKey, Vote};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::error::{CommitError, StoreError};
use crate::metrics::Metrics;
use crate::receipts::{Group, Receipts};
use crate::state::Polls;
use crate::store::{EntryRef, NewEntry, Store};

/// Requests waiting for the committer; senders wait when it is full.
const QUEUE: usize = 1024;

/// Whether a vote was new to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Stored,
    Duplicate,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Stored => "stored",
            Status::Duplicate => "duplicate",
        }
    }
}

/// The path by which entries reached the committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A vote request to the HTTP API.
    Http,
    /// A gossip message from a peer.
    Gossip,
    /// A reconciliation session with a peer.
    Sync,
}

impl Origin {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Origin::Http => "http",
            Origin::Gossip => "gossip",
            Origin::Sync => "sync",
        }
    }
}

/// Entries new to this node, handed on after their group is durable.
#[derive(Debug)]
pub(crate) struct Fresh {
    pub(crate) poll: PollId,
    pub(crate) votes: Vec<Vote>,
    pub(crate) origin: Origin,
}

/// A vote made durable: the node's receipt (for votes that came over HTTP),
/// and whether it was new.
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    pub(crate) receipt: Option<Receipt>,
    pub(crate) status: Status,
}

enum Job {
    Votes {
        poll: PollId,
        votes: Vec<Vote>,
        origin: Origin,
        reply: oneshot::Sender<Result<Vec<Durable>, CommitError>>,
    },
    Poll {
        poll: Poll,
        reply: oneshot::Sender<Result<bool, CommitError>>,
    },
}

/// A handle to the committer task.
#[derive(Clone)]
pub(crate) struct Committer {
    queue: mpsc::Sender<Job>,
}

impl Committer {
    #[cfg(test)]
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        polls: Arc<Polls>,
        metrics: Arc<Metrics>,
        key: Arc<SecretKey>,
    ) -> (Committer, JoinHandle<()>) {
        Self::spawn_with_feed(store, polls, metrics, key, None)
    }

    /// Like `spawn`, and hands every durable group's new entries to `feed`
    /// (dropped when the feed is full: gossip is best-effort).
    pub(crate) fn spawn_with_feed(
        store: Arc<dyn Store>,
        polls: Arc<Polls>,
        metrics: Arc<Metrics>,
        key: Arc<SecretKey>,
        feed: Option<mpsc::Sender<Fresh>>,
    ) -> (Committer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(jobs, store, polls, metrics, key, feed));
        (Committer { queue }, task)
    }

    /// Makes admitted votes of one poll durable. One result per vote, in
    /// order, with its receipt; a vote already stored gets the receipt it
    /// got the first time.
    pub(crate) async fn votes(
        &self,
        poll: PollId,
        votes: Vec<Vote>,
    ) -> Result<Vec<Durable>, CommitError> {
        self.votes_from(poll, votes, Origin::Http).await
    }

    /// `votes`, naming the path the votes came by.
    pub(crate) async fn votes_from(
        &self,
        poll: PollId,
        votes: Vec<Vote>,
        origin: Origin,
    ) -> Result<Vec<Durable>, CommitError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Votes {
            poll,
            votes,
            origin,
            reply,
        };
        self.send(job).await?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }

    /// Makes a verified poll durable. True if it was new.
    pub(crate) async fn poll(&self, poll: Poll) -> Result<bool, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Poll { poll, reply }).await?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }

    async fn send(&self, job: Job) -> Result<(), CommitError> {
        self.queue.send(job).await.map_err(|_| CommitError::Stopped)
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// What one group wrote, handed back from the blocking writer.
struct Written {
    jobs: Vec<Job>,
    outcomes: Vec<Outcome>,
    new_entries: u64,
}

/// A group that failed, with its jobs still to be answered.
type Unwritten = (Vec<Job>, StoreError);

enum Outcome {
    /// Each vote's receipt (`None` for votes that came from peers).
    Votes(Vec<Option<Receipt>>),
    Poll,
}

async fn run(
    mut jobs: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    polls: Arc<Polls>,
    metrics: Arc<Metrics>,
    key: Arc<SecretKey>,
    feed: Option<mpsc::Sender<Fresh>>,
) {
    let mut failing = false;
    let mut group = Vec::new();
    while jobs.recv_many(&mut group, QUEUE).await > 0 {
        let started = Instant::now();
        let votes: u64 = group
            .iter()
            .map(|j| {
                if let Job::Votes { votes, .. } = j {
                    votes.len() as u64
                } else {
                    0
                }
            })
            .sum();
        let known: Vec<bool> = group
            .iter()
            .map(|j| matches!(j, Job::Poll { poll, .. } if polls.get(&poll.id).is_some()))
            .collect();

        let writer = store.clone();
        let replicas = polls.clone();
        let signer = key.clone();
        let batch = std::mem::take(&mut group);
        let written = tokio::task::spawn_blocking(move || {
            write_group(&*writer, &signer, &replicas, batch, known)
        })
        .await;

        let written = match written {
            Ok(Ok(written)) => written,
            Ok(Err((jobs, error))) => {
                let error = CommitError::Storage(Arc::new(error));
                failed(&mut failing, &metrics, &error, votes);
                answer_all(jobs, error);
                continue;
            }
            Err(panic) => {
                // The jobs moved into the panicked task; dropping them tells waiters `Stopped`.
                let error = CommitError::Panicked(panic.to_string());
                failed(&mut failing, &metrics, &error, votes);
                continue;
            }
        };
        if failing {
            tracing::info!(entries = votes, "storage works again");
            failing = false;
        }

        metrics.commit_groups.inc();
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_group_votes.observe(votes as f64);
        metrics.votes_durable.inc_by(written.new_entries);
        apply(written, &polls, &metrics, feed.as_ref());
    }
    tracing::debug!("committer stopped");
}

/// Logs a storage failure once, when the store turns from working to failing.
fn failed(failing: &mut bool, metrics: &Metrics, error: &CommitError, votes: u64) {
    metrics.commit_failures.inc();
    if !*failing {
        tracing::error!(entries = votes, %error, "group commit failed; votes are refused with 503 until storage works");
        *failing = true;
    } else {
        tracing::debug!(entries = votes, %error, "group commit failed again");
    }
}

fn answer_all(jobs: Vec<Job>, error: CommitError) {
    for job in jobs {
        // A waiter that went away needs no answer.
        let _ = match job {
            Job::Votes { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Job::Poll { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
        };
    }
}

/// After the sync: grow the replicas, then answer.
fn apply(written: Written, polls: &Polls, metrics: &Metrics, feed: Option<&mpsc::Sender<Fresh>>) {
    for (job, outcome) in written.jobs.into_iter().zip(written.outcomes) {
        match (job, outcome) {
            (
                Job::Votes {
                    poll,
                    votes,
                    origin,
                    reply,
                },
                Outcome::Votes(receipts),
            ) => {
                // "stored" means acknowledged now for the first time, which the
                // replica knows: the store may hold entries of a group whose sync failed.
                let Some(slot) = polls.get(&poll) else {
                    let _ = reply.send(Err(CommitError::Stopped));
                    continue;
                };
                let copies = feed.map(|_| votes.clone());
                let (new, entries) = slot.insert_admitted(votes);
                metrics.set_entries(&poll, entries);
                let fresh = new.iter().filter(|n| **n).count();
                let label = crate::mesh::PathLabel {
                    path: origin.as_str(),
                };
                metrics
                    .mesh
                    .entries_received
                    .get_or_create(&label)
                    .inc_by(fresh as u64);
                if let (Some(feed), Some(copies)) = (feed, copies) {
                    let votes: Vec<Vote> = copies
                        .into_iter()
                        .zip(&new)
                        .filter_map(|(vote, new)| new.then_some(vote))
                        .collect();
                    if !votes.is_empty()
                        && feed
                            .try_send(Fresh {
                                poll,
                                votes,
                                origin,
                            })
                            .is_err()
                    {
                        tracing::debug!(poll = %poll.short(), "gossip feed full; reconciliation will carry the entries");
                    }
                }
                let durable = receipts
                    .into_iter()
                    .zip(new)
                    .map(|(receipt, new)| Durable {
                        receipt,
                        status: if new {
                            Status::Stored
                        } else {
                            Status::Duplicate
                        },
                    })
                    .collect();
                let _ = reply.send(Ok(durable));
            }
            (Job::Poll { poll, reply }, Outcome::Poll) => {
                let id = poll.id;
                let new = polls.add(poll);
                if new {
                    metrics.set_entries(&id, 0);
                }
                let _ = reply.send(Ok(new));
            }
            _ => unreachable!("write_group answers each job with its own kind"),
        }
    }
}

/// Writes a group and syncs once. Runs on a blocking thread.
fn write_group(
    store: &dyn Store,
    key: &SecretKey,
    polls: &Polls,
    jobs: Vec<Job>,
    known: Vec<bool>,
) -> Result<Written, Unwritten> {
    match plan_and_write(store, key, polls, &jobs, &known) {
        Ok((outcomes, new_entries)) => Ok(Written {
            jobs,
            outcomes,
            new_entries,
        }),
        Err(error) => Err((jobs, error)),
    }
}

/// Where a vote's receipt comes from.
#[derive(Clone, Copy)]
enum Source {
    /// Stored and acknowledged before this group.
    Earlier(EntryRef),
    /// Stored by this group.
    New,
}

fn plan_and_write(
    store: &dyn Store,
    key: &SecretKey,
    polls: &Polls,
    jobs: &[Job],
    known: &[bool],
) -> Result<(Vec<Outcome>, u64), StoreError> {
    let now = now_ms();
    let mut first_seen: HashMap<(PollId, EntryHash), Source> = HashMap::new();
    let mut new: BTreeMap<PollId, Vec<(EntryHash, &[u8])>> = BTreeMap::new();
    let mut sources: Vec<Vec<Source>> = Vec::with_capacity(jobs.len());

    for (job, known) in jobs.iter().zip(known) {
        match job {
            Job::Poll { poll, .. } => {
                if !known {
                    store.put_poll(poll)?;
                }
                sources.push(Vec::new());
            }
            Job::Votes { poll, votes, .. } => {
                // A retry gets the receipt of the first time. Only the
                // replica's entries were acknowledged: an entry stored by a
                // group whose sync failed is written anew.
                let acknowledged: Vec<bool> = match polls.get(poll) {
                    Some(slot) => {
                        let state = slot.view();
                        votes.iter().map(|v| state.contains(&v.hash())).collect()
                    }
                    None => vec![false; votes.len()],
                };
                let mut job_sources = Vec::with_capacity(votes.len());
                for (vote, acknowledged) in votes.iter().zip(acknowledged) {
                    let key = (*poll, vote.hash());
                    let source = match first_seen.get(&key) {
                        Some(source) => *source,
                        None => {
                            let earlier = if acknowledged {
                                store.entry_ref(poll, &key.1)?
                            } else {
                                None
                            };
                            let source = earlier.map_or(Source::New, Source::Earlier);
                            if let Source::New = source {
                                new.entry(*poll).or_default().push((key.1, vote.encoded()));
                            }
                            first_seen.insert(key, source);
                            source
                        }
                    };
                    job_sources.push(source);
                }
                sources.push(job_sources);
            }
        }
    }

    // One signed group per poll: the statement over the root of its new entries.
    let mut groups: HashMap<PollId, Group> = HashMap::new();
    let mut count = 0;
    for (poll, mut entries) in new {
        entries.sort_unstable_by_key(|e| e.0);
        let hashes: Vec<EntryHash> = entries.iter().map(|e| e.0).collect();
        let group = Group::sign(key, poll, &hashes, now).expect("unique hashes, at least one");
        let id = store.new_group_id()?;
        store.put_group(&poll, id, &group.stored())?;
        let rows: Vec<NewEntry<'_>> = entries
            .iter()
            .map(|&(hash, encoded)| NewEntry {
                hash,
                received_at: now,
                group: Some(id),
                encoded,
            })
            .collect();
        store.put_entries(&poll, &rows)?;
        count += rows.len() as u64;
        groups.insert(poll, group);
    }

    // Receipts for the votes that came over HTTP; peers need none.
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (job, sources) in jobs.iter().zip(sources) {
        let Job::Votes {
            poll,
            votes,
            origin,
            ..
        } = job
        else {
            outcomes.push(Outcome::Poll);
            continue;
        };
        if *origin != Origin::Http {
            outcomes.push(Outcome::Votes(vec![None; votes.len()]));
            continue;
        }
        let mut earlier = Receipts::new(store, key, *poll);
        let mut receipts = Vec::with_capacity(votes.len());
        for (vote, source) in votes.iter().zip(sources) {
            let receipt = match source {
                Source::New => groups.get(poll).and_then(|g| g.receipt(&vote.hash())),
                Source::Earlier(at) => Some(earlier.of(&vote.hash(), at)?),
            };
            receipts.push(receipt);
        }
        outcomes.push(Outcome::Votes(receipts));
    }

    store.sync()?;
    Ok((outcomes, count))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crdt::{SecretKey, VoteBody, VoteId};

    use super::*;
    use crate::store::{SledStore, StoredEntry};

    /// A sled store whose sync fails while `broken` is set: the writes reach
    /// sled, but the group is never made durable.
    struct FlakyStore {
        inner: SledStore,
        broken: AtomicBool,
    }

    impl Store for FlakyStore {
        fn put_poll(&self, poll: &Poll) -> Result<(), StoreError> {
            self.inner.put_poll(poll)
        }
        fn put_entries(&self, poll: &PollId, entries: &[NewEntry<'_>]) -> Result<(), StoreError> {
            self.inner.put_entries(poll, entries)
        }
        fn entry_ref(
            &self,
            poll: &PollId,
            entry: &EntryHash,
        ) -> Result<Option<EntryRef>, StoreError> {
            self.inner.entry_ref(poll, entry)
        }
        fn new_group_id(&self) -> Result<u64, StoreError> {
            self.inner.new_group_id()
        }
        fn put_group(
            &self,
            poll: &PollId,
            id: u64,
            group: &crate::store::StoredGroup,
        ) -> Result<(), StoreError> {
            self.inner.put_group(poll, id, group)
        }
        fn group(
            &self,
            poll: &PollId,
            id: u64,
        ) -> Result<Option<crate::store::StoredGroup>, StoreError> {
            self.inner.group(poll, id)
        }
        fn polls(&self) -> Result<Vec<Poll>, StoreError> {
            self.inner.polls()
        }
        fn entries<'a>(
            &'a self,
            poll: &PollId,
        ) -> Result<Box<dyn Iterator<Item = Result<StoredEntry, StoreError>> + 'a>, StoreError>
        {
            self.inner.entries(poll)
        }
        fn sync(&self) -> Result<(), StoreError> {
            if self.broken.load(Ordering::SeqCst) {
                let source = std::io::Error::other("injected fault");
                return Err(StoreError::Sync {
                    path: "db".into(),
                    source,
                });
            }
            self.inner.sync()
        }
    }

    use crate::fixture::poll;

    fn node_key() -> Arc<SecretKey> {
        Arc::new(SecretKey::from_seed(&[6; 32]))
    }

    fn receipts(results: &[Durable]) -> Vec<Receipt> {
        results
            .iter()
            .map(|d| d.receipt.clone().expect("votes over HTTP get receipts"))
            .collect()
    }

    fn vote(poll: &Poll, seed: u8) -> Vote {
        let voter = SecretKey::from_seed(&[seed; 32]);
        let body = VoteBody {
            poll: poll.id,
            voter: voter.public(),
            choice: 0,
            seq: 1,
            vote_id: VoteId::from_bytes([seed; 16]),
            cast_at: 5,
            credential: None,
        };
        body.sign(&voter)
    }

    #[tokio::test]
    async fn a_failed_sync_acknowledges_nothing_and_the_retry_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SledStore::open(dir.path()).unwrap();
        let store = Arc::new(FlakyStore {
            inner,
            broken: AtomicBool::new(false),
        });
        let polls = Arc::new(Polls::default());
        let metrics = Arc::new(Metrics::new());
        let (committer, _task) =
            Committer::spawn(store.clone(), polls.clone(), metrics, node_key());
        let poll = poll();
        assert!(committer.poll(poll.clone()).await.unwrap());
        let votes = vec![vote(&poll, 2), vote(&poll, 3)];
        let votes_sent = votes.clone();

        store.broken.store(true, Ordering::SeqCst);
        let failed = committer.votes(poll.id, votes.clone()).await;
        let held_after_failure = polls.get(&poll.id).unwrap().len();
        store.broken.store(false, Ordering::SeqCst);
        let retried = committer.votes(poll.id, votes.clone()).await.unwrap();
        assert!(retried.iter().all(|d| d.status == Status::Stored));
        let again = committer.votes(poll.id, votes).await.unwrap();

        assert!(matches!(failed, Err(CommitError::Storage(_))));
        assert_eq!(
            held_after_failure, 0,
            "nothing enters the replica before a sync"
        );
        assert_eq!(polls.get(&poll.id).unwrap().len(), 2);
        assert!(again.iter().all(|d| d.status == Status::Duplicate));
        assert_eq!(
            receipts(&retried),
            receipts(&again),
            "a retry gets the first receipt"
        );
        for (receipt, sent) in receipts(&retried).iter().zip(&votes_sent) {
            receipt.verify().unwrap();
            assert_eq!(receipt.entry, sent.hash());
            assert_eq!(
                receipt.group.as_ref().unwrap().size,
                2,
                "one group, one signature"
            );
        }
        assert_eq!(
            receipts(&retried)[0].signature,
            receipts(&retried)[1].signature
        );
    }

    #[tokio::test]
    async fn one_group_stores_a_vote_once_even_when_sent_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let polls = Arc::new(Polls::default());
        let (committer, _task) =
            Committer::spawn(store, polls, Arc::new(Metrics::new()), node_key());
        let poll = poll();
        committer.poll(poll.clone()).await.unwrap();
        let v = vote(&poll, 4);

        let results = committer.votes(poll.id, vec![v.clone(), v]).await.unwrap();

        assert_eq!(results[0].status, Status::Stored);
        assert_eq!(results[1].status, Status::Duplicate);
        assert_eq!(results[0].receipt, results[1].receipt);
        let receipt = results[0].receipt.clone().unwrap();
        receipt.verify().unwrap();
        assert_eq!(
            receipt.group.unwrap().size,
            1,
            "the group holds the vote once"
        );
    }
}
