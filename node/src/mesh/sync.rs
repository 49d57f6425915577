//! Repair: reconciliation rounds over request-response.
//!
//! A round with a peer first exchanges poll definitions (`/votemesh/polls/1`:
//! the request lists our poll ids, the answer carries the signed polls we
//! lack), then runs one `crdt::sync::Initiator` session per poll
//! (`/votemesh/sync/1`: a request carries the initiator's messages, the
//! answer the responder's). A node runs at most one round per peer at a
//! time, so at most one session per (peer, poll).
//!
//! Whatever arrives is admitted off the async workers and stored through the
//! committer before it counts: a peer can withhold entries, never forge one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crdt::sync::{Initiator, Message, Responder, Stats};
use crdt::{Poll, PollId, Vote};
use libp2p::PeerId;

use super::codec::Frames;
use super::error::{InputError, SessionError};
use super::table::RoundStats;
use super::{Command, Context, Proto};
use crate::clock::now_ms;
use crate::commit::Origin;
use crate::state::PollSlot;

/// A session that has not finished by then is abandoned.
const SESSION_DEADLINE: Duration = Duration::from_secs(300);
/// A responder whose initiator went quiet this long is dropped.
const RESPONDER_IDLE: Duration = Duration::from_secs(120);

/// One round with `peer`: polls, then every poll's session. Updates the
/// peer table and tells the swarm task when done.
pub(crate) async fn round(ctx: Arc<Context>, peer: PeerId) {
    let started = Instant::now();
    if let Err(error) = fetch_polls(&ctx, peer).await {
        log_failure(&ctx, peer, None, &error).await;
    }

    let mut stats = RoundStats::default();
    for poll in ctx.polls.list() {
        let Some(slot) = ctx.polls.get(&poll.id) else {
            continue;
        };
        stats.polls += 1;
        let result = tokio::time::timeout(SESSION_DEADLINE, session(&ctx, peer, slot))
            .await
            .unwrap_or(Err(SessionError::TimedOut));
        match result {
            Ok((outcome, s)) => {
                ctx.metrics.mesh.session(outcome);
                stats.entries_sent += s.entries_sent;
                stats.entries_received += s.entries_received;
                stats.bytes_sent += s.bytes_sent;
                stats.bytes_received += s.bytes_received;
            }
            Err(error) => {
                stats.sessions_failed += 1;
                let outcome = match error {
                    SessionError::TimedOut => "timed_out",
                    _ => "failed",
                };
                ctx.metrics.mesh.session(outcome);
                log_failure(&ctx, peer, Some(poll.id), &error).await;
            }
        }
    }

    tracing::debug!(
        peer = %peer,
        polls = stats.polls,
        entries_sent = stats.entries_sent,
        entries_received = stats.entries_received,
        took_ms = started.elapsed().as_millis() as u64,
        "sync round done"
    );
    let ok = stats.sessions_failed == 0;
    ctx.send(Command::RoundDone { peer, stats, ok }).await;
}

async fn log_failure(ctx: &Context, peer: PeerId, poll: Option<PollId>, error: &SessionError) {
    let poll = poll.map(|p| p.short()).unwrap_or_default();
    match error {
        SessionError::Input(input) => ctx.invalid(peer, input).await,
        SessionError::Stopped => {}
        _ => tracing::warn!(peer = %peer, poll, %error, "sync session failed; retried next round"),
    }
}

/// Asks `peer` for the polls we lack; stores those whose signatures verify.
async fn fetch_polls(ctx: &Context, peer: PeerId) -> Result<(), SessionError> {
    let held: Frames = ctx
        .polls
        .list()
        .iter()
        .map(|p| p.id.as_bytes().to_vec())
        .collect();
    let answer = ctx.request(peer, Proto::Polls, held).await?;

    let polls = tokio::task::spawn_blocking(move || verify_polls(answer))
        .await
        .map_err(|_| SessionError::Stopped)??;
    for poll in polls {
        let id = poll.id;
        if ctx.polls.get(&id).is_none() && ctx.committer.poll(poll).await? {
            tracing::info!(peer = %peer, poll = %id.short(), "poll fetched from peer");
        }
    }
    Ok(())
}

fn verify_polls(frames: Frames) -> Result<Vec<Poll>, InputError> {
    frames
        .iter()
        .map(|frame| {
            let poll = Poll::decode(frame).map_err(|source| InputError::Decode {
                what: "poll",
                source,
            })?;
            poll.verify().map_err(|e| InputError::BadPoll {
                poll: poll.id.short(),
                reason: e.to_string(),
            })?;
            Ok(poll)
        })
        .collect()
}

/// Answers a poll request: the polls we hold that the request does not list.
pub(crate) fn answer_polls(ctx: &Context, request: &Frames) -> Frames {
    let listed: HashSet<&[u8]> = request.iter().map(Vec::as_slice).collect();
    ctx.polls
        .list()
        .iter()
        .filter(|p| !listed.contains(p.id.as_bytes().as_slice()))
        .map(|p| p.encode())
        .collect()
}

/// Runs one initiator session for the poll in `slot`. Returns the path
/// taken and this side's counters.
async fn session(
    ctx: &Context,
    peer: PeerId,
    slot: Arc<PollSlot>,
) -> Result<(&'static str, Stats), SessionError> {
    let poll = slot.poll.id;
    let config = ctx.session;
    let view = slot.clone();
    let (mut initiator, first) = blocking(move || {
        let state = view.view();
        Initiator::start(poll, config, &*state, now_ms())
    })
    .await?;

    let mut outgoing = first.send;
    let mut outcome = "incomplete";
    while !outgoing.is_empty() {
        let frames: Frames = outgoing.iter().map(Message::encode).collect();
        let answer = ctx.request(peer, Proto::Sync, frames).await?;

        let view = slot.clone();
        let step = blocking(move || {
            let state = view.view();
            let mut send = Vec::new();
            let mut received = Vec::new();
            let mut done = None;
            for frame in &answer {
                let message = Message::decode(frame).map_err(|source| InputError::Decode {
                    what: "sync message",
                    source,
                })?;
                let out = initiator.handle(message, &*state, now_ms())?;
                send.extend(out.send);
                received.extend(out.received);
                done = done.or(out.done);
            }
            drop(state);
            Ok::<_, InputError>((initiator, send, received, done))
        })
        .await?;
        let (next, send, received, done) = step?;
        initiator = next;

        if !received.is_empty() {
            store(ctx, &slot, received).await?;
        }
        if let Some(done) = done {
            outcome = path_name(done.path);
        }
        outgoing = send;
    }
    Ok((outcome, initiator.stats().clone()))
}

fn path_name(path: crdt::sync::Path) -> &'static str {
    match path {
        crdt::sync::Path::Same => "same",
        crdt::sync::Path::Symbols => "symbols",
        crdt::sync::Path::Bulk => "bulk",
        crdt::sync::Path::Fallback => "fallback",
        _ => "other",
    }
}

async fn store(ctx: &Context, slot: &Arc<PollSlot>, votes: Vec<Vote>) -> Result<(), SessionError> {
    let admitted = ctx
        .admit_and_commit(slot.clone(), votes, Origin::Sync)
        .await?;
    match admitted.rejected() {
        None => Ok(()),
        Some(error) => Err(error.into()),
    }
}

/// Answers a sync request from `peer` with the responder's messages. The
/// responder for (peer, poll) lives between requests; a `Hello` starts anew.
pub(crate) async fn answer_sync(
    ctx: Arc<Context>,
    peer: PeerId,
    request: Frames,
) -> Result<Frames, InputError> {
    let messages = request
        .iter()
        .map(|frame| Message::decode(frame))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| InputError::Decode {
            what: "sync message",
            source,
        })?;
    let Some(poll) = messages.first().map(Message::poll) else {
        return Ok(Vec::new());
    };
    if messages.iter().any(|m| m.poll() != poll) {
        return Err(InputError::Malformed {
            what: "sync request",
            reason: "messages name different polls".into(),
        });
    }
    let Some(slot) = ctx.polls.get(&poll) else {
        // We lack the poll: say nothing, and fetch it from the asker.
        ctx.send(Command::SyncNow { peer }).await;
        return Ok(Vec::new());
    };

    let worker = ctx.clone();
    let view = slot.clone();
    let (send, received) = blocking(move || respond(&worker, peer, &view, messages))
        .await
        .map_err(|_| InputError::Malformed {
            what: "sync request",
            reason: "node stopping".into(),
        })??;

    // Durable before we answer: the initiator may count what it sent as delivered.
    if !received.is_empty() {
        match ctx.admit_and_commit(slot, received, Origin::Sync).await {
            Ok(admitted) => {
                if let Some(error) = admitted.rejected() {
                    return Err(error);
                }
            }
            Err(error) => {
                tracing::warn!(peer = %peer, poll = %poll.short(), %error, "synced entries not stored; repair will retry");
            }
        }
    }
    Ok(send.iter().map(Message::encode).collect())
}

type Responded = (Vec<Message>, Vec<Vote>);

fn respond(
    ctx: &Context,
    peer: PeerId,
    slot: &PollSlot,
    messages: Vec<Message>,
) -> Result<Responded, InputError> {
    let poll = slot.poll.id;
    let now = now_ms();
    let mut responders = ctx.responders.lock().unwrap_or_else(|e| e.into_inner());
    responders.retain(|_, (_, used)| used.elapsed() < RESPONDER_IDLE);
    let fresh = matches!(messages.first(), Some(Message::Hello { .. }));
    let mut responder = match responders.remove(&(peer, poll)) {
        Some((responder, _)) if !fresh => responder,
        _ => Responder::new(poll, ctx.session, now),
    };
    drop(responders);

    let state = slot.view();
    let mut send = Vec::new();
    let mut received = Vec::new();
    for message in messages {
        let out = responder.handle(message, &*state, now)?;
        send.extend(out.send);
        received.extend(out.received);
    }
    drop(state);

    if !responder.is_ended() {
        let mut responders = ctx.responders.lock().unwrap_or_else(|e| e.into_inner());
        responders.insert((peer, poll), (responder, Instant::now()));
    }
    Ok((send, received))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| SessionError::Stopped)
}
