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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crdt::{EntryHash, Poll, PollId, Vote};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::error::{CommitError, StoreError};
use crate::metrics::Metrics;
use crate::state::Polls;
use crate::store::{NewEntry, Store};

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

/// A vote made durable: when the node first stored it, and whether now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Durable {
    pub(crate) received_at: u64,
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
    ) -> (Committer, JoinHandle<()>) {
        Self::spawn_with_feed(store, polls, metrics, None)
    }

    /// Like `spawn`, and hands every durable group's new entries to `feed`
    /// (dropped when the feed is full: gossip is best-effort).
    pub(crate) fn spawn_with_feed(
        store: Arc<dyn Store>,
        polls: Arc<Polls>,
        metrics: Arc<Metrics>,
        feed: Option<mpsc::Sender<Fresh>>,
    ) -> (Committer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(jobs, store, polls, metrics, feed));
        (Committer { queue }, task)
    }

    /// Makes admitted votes of one poll durable. One result per vote, in
    /// order; a vote already stored keeps its first `received_at`.
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
    /// When each vote was first stored.
    Votes(Vec<u64>),
    Poll,
}

async fn run(
    mut jobs: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    polls: Arc<Polls>,
    metrics: Arc<Metrics>,
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
        let batch = std::mem::take(&mut group);
        let written =
            tokio::task::spawn_blocking(move || write_group(&*writer, &replicas, batch, known))
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
                Outcome::Votes(received),
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
                let durable = received
                    .into_iter()
                    .zip(new)
                    .map(|(received_at, new)| Durable {
                        received_at,
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
    polls: &Polls,
    jobs: Vec<Job>,
    known: Vec<bool>,
) -> Result<Written, Unwritten> {
    match plan_and_write(store, polls, &jobs, &known) {
        Ok((outcomes, new_entries)) => Ok(Written {
            jobs,
            outcomes,
            new_entries,
        }),
        Err(error) => Err((jobs, error)),
    }
}

fn plan_and_write(
    store: &dyn Store,
    polls: &Polls,
    jobs: &[Job],
    known: &[bool],
) -> Result<(Vec<Outcome>, u64), StoreError> {
    let now = now_ms();
    let mut first_seen: HashMap<(PollId, EntryHash), u64> = HashMap::new();
    let mut new: BTreeMap<PollId, Vec<NewEntry<'_>>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(jobs.len());

    for (job, known) in jobs.iter().zip(known) {
        match job {
            Job::Poll { poll, .. } => {
                if !known {
                    store.put_poll(poll)?;
                }
                outcomes.push(Outcome::Poll);
            }
            Job::Votes { poll, votes, .. } => {
                let slot = polls.get(poll);
                let mut durable = Vec::with_capacity(votes.len());
                for vote in votes {
                    let key = (*poll, vote.hash());
                    // Keep the first received_at so a retry gets the identical receipt.
                    // Only the replica's entries were acknowledged: an entry
                    // stored by a group whose sync failed is written anew.
                    let acknowledged = slot.as_ref().is_some_and(|s| s.contains(&key.1));
                    let earlier = match first_seen.get(&key) {
                        Some(at) => Some(*at),
                        None if acknowledged => store.received_at(poll, &key.1)?,
                        None => None,
                    };
                    let received_at = match earlier {
                        Some(received_at) => received_at,
                        None => {
                            let entry = NewEntry {
                                hash: vote.hash(),
                                received_at: now,
                                encoded: vote.encoded(),
                            };
                            new.entry(*poll).or_default().push(entry);
                            now
                        }
                    };
                    first_seen.insert(key, received_at);
                    durable.push(received_at);
                }
                outcomes.push(Outcome::Votes(durable));
            }
        }
    }

    let mut count = 0;
    for (poll, entries) in &new {
        store.put_entries(poll, entries)?;
        count += entries.len() as u64;
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
        fn received_at(&self, poll: &PollId, entry: &EntryHash) -> Result<Option<u64>, StoreError> {
            self.inner.received_at(poll, entry)
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
        let (committer, _task) = Committer::spawn(store.clone(), polls.clone(), metrics);
        let poll = poll();
        assert!(committer.poll(poll.clone()).await.unwrap());
        let votes = vec![vote(&poll, 2), vote(&poll, 3)];

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
        let first: Vec<u64> = retried.iter().map(|d| d.received_at).collect();
        let second: Vec<u64> = again.iter().map(|d| d.received_at).collect();
        assert_eq!(first, second, "a retry keeps the first received_at");
    }

    #[tokio::test]
    async fn one_group_stores_a_vote_once_even_when_sent_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let polls = Arc::new(Polls::default());
        let (committer, _task) = Committer::spawn(store, polls, Arc::new(Metrics::new()));
        let poll = poll();
        committer.poll(poll.clone()).await.unwrap();
        let v = vote(&poll, 4);

        let results = committer.votes(poll.id, vec![v.clone(), v]).await.unwrap();

        assert_eq!(results[0].status, Status::Stored);
        assert_eq!(results[1].status, Status::Duplicate);
        assert_eq!(results[0].received_at, results[1].received_at);
    }
}
