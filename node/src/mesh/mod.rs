//! Replication between regional nodes over libp2p (tcp + noise + yamux).
//!
//! - Identity: the libp2p ed25519 keypair is the node key, so the peer id
//!   and the key that signs receipts name the same node.
//! - Push ([`gossip`]): every group the committer makes durable from HTTP or
//!   sync is published in batches on `votemesh/entries/v1`, after the flush.
//!   Received batches are admitted, committed, then accepted or rejected, so
//!   gossipsub relays only what verified.
//! - Repair ([`sync`]): reconciliation rounds on every connect, on a timer
//!   and on demand.
//! - Links: only allowed peers connect; configured peers are redialed with
//!   exponential backoff and jitter; an operator can block and unblock.
//!
//! One task owns the swarm. Work that takes time (admission, commits,
//! sessions) runs in other tasks, which talk to it with [`Command`]s.

mod behaviour;
mod codec;
mod error;
mod gossip;
mod metrics;
mod sync;
mod table;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crdt::sync::Responder;
use crdt::{admit_batch, PollId, SecretKey, Vote};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::behaviour::{Behaviour, BehaviourEvent, ENTRIES_TOPIC};
use self::codec::{Frames, Request};
pub(crate) use self::error::{InputError, SessionError};
pub(crate) use self::metrics::{MeshMetrics, PathLabel};
pub(crate) use self::table::{RoundStats, Table};
use crate::commit::{Committer, Fresh, Origin};
use crate::error::CommitError;
use crate::metrics::Metrics;
use crate::state::{PollSlot, Polls};

/// Invalid inputs from one peer before it is disconnected.
const STRIKES: u32 = 5;
/// How often due redials are checked.
const DIAL_CHECK: Duration = Duration::from_millis(250);
/// Commands waiting for the swarm task.
const COMMANDS: usize = 1024;
/// Durable groups waiting to be gossiped.
pub(crate) const FEED: usize = 1024;

/// The mesh settings, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: Option<Multiaddr>,
    pub(crate) peers: Vec<(PeerId, Multiaddr)>,
    pub(crate) allow: HashSet<PeerId>,
    pub(crate) sync_interval: Duration,
}

impl Settings {
    /// Parses the mesh keys of `config`; the error names the bad value.
    pub(crate) fn from_config(config: &crate::Config) -> Result<Settings, String> {
        let listen = match config.p2p_listen.trim() {
            "" => None,
            text => Some(
                text.parse::<Multiaddr>()
                    .map_err(|e| format!("p2p_listen `{text}`: {e}"))?,
            ),
        };
        let mut peers = Vec::new();
        for text in &config.peers {
            let addr: Multiaddr = text
                .trim()
                .parse()
                .map_err(|e| format!("peers: `{text}`: {e}"))?;
            let Some(Protocol::P2p(id)) = addr.iter().last() else {
                return Err(format!("peers: `{text}` does not end in /p2p/<peer id>"));
            };
            peers.push((id, addr));
        }
        let mut allow: HashSet<PeerId> = peers.iter().map(|(id, _)| *id).collect();
        for text in &config.allow {
            let id = text
                .trim()
                .parse::<PeerId>()
                .map_err(|e| format!("allow: `{text}`: {e}"))?;
            allow.insert(id);
        }
        Ok(Settings {
            listen,
            peers,
            allow,
            sync_interval: Duration::from_secs(config.sync_interval_secs.max(1)),
        })
    }
}

/// Which request-response protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Sync,
    Polls,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Sync => "sync",
            Proto::Polls => "polls",
        }
    }
}

type Reply = oneshot::Sender<Result<Frames, String>>;

/// What other tasks ask of the swarm task.
pub(crate) enum Command {
    Request {
        peer: PeerId,
        proto: Proto,
        frames: Frames,
        reply: Reply,
    },
    Respond {
        proto: Proto,
        channel: ResponseChannel<Frames>,
        frames: Frames,
    },
    Validated {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Strike {
        peer: PeerId,
    },
    SyncNow {
        peer: PeerId,
    },
    RoundDone {
        peer: PeerId,
        stats: RoundStats,
        ok: bool,
    },
    Block {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Unblock {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
}

/// What the swarm task and the work it spawns share.
pub(crate) struct Context {
    pub(crate) polls: Arc<Polls>,
    pub(crate) committer: Committer,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) table: Arc<Mutex<Table>>,
    pub(crate) responders: Mutex<HashMap<(PeerId, PollId), (Responder, Instant)>>,
    pub(crate) session: crdt::sync::Config,
    commands: mpsc::Sender<Command>,
}

/// What admission and the commit made of entries from a peer.
pub(crate) struct Admitted {
    pub(crate) stored: usize,
    rejected: usize,
    first_code: &'static str,
}

impl Admitted {
    /// The error to report when some entries failed admission.
    pub(crate) fn rejected(&self) -> Option<InputError> {
        (self.rejected > 0).then_some(InputError::Rejected {
            count: self.rejected,
            code: self.first_code,
        })
    }
}

impl Context {
    async fn send(&self, command: Command) {
        // Fails only when the swarm task has stopped, with the node.
        let _ = self.commands.send(command).await;
    }

    /// Sends a request and waits for the answer.
    async fn request(
        &self,
        peer: PeerId,
        proto: Proto,
        frames: Frames,
    ) -> Result<Frames, SessionError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Request {
            peer,
            proto,
            frames,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| SessionError::Stopped)?;
        answer
            .await
            .map_err(|_| SessionError::Stopped)?
            .map_err(SessionError::Request)
    }

    /// Logs invalid input from `peer` and counts it against the peer.
    async fn invalid(&self, peer: PeerId, error: &InputError) {
        tracing::warn!(peer = %peer, %error, "invalid input from peer; refused");
        self.metrics.mesh.invalid(error.reason());
        self.send(Command::Strike { peer }).await;
    }

    /// Admits entries of one poll off the async workers (entries already
    /// held skip it), and stores the admitted ones through the committer.
    async fn admit_and_commit(
        &self,
        slot: Arc<PollSlot>,
        votes: Vec<Vote>,
        origin: Origin,
    ) -> Result<Admitted, CommitError> {
        let poll = slot.poll.id;
        let judged = tokio::task::spawn_blocking(move || {
            let fresh: Vec<Vote> = votes
                .into_iter()
                .filter(|v| !slot.contains(&v.hash()))
                .collect();
            let checks = admit_batch(&slot.poll, &fresh);
            let mut admitted = Vec::with_capacity(fresh.len());
            let (mut rejected, mut first_code) = (0, "");
            for (check, vote) in checks.into_iter().zip(fresh) {
                match check {
                    Ok(()) => admitted.push(vote),
                    Err(rejection) => {
                        rejected += 1;
                        if first_code.is_empty() {
                            first_code = rejection.code();
                        }
                    }
                }
            }
            (admitted, rejected, first_code)
        })
        .await;
        let (admitted, rejected, first_code) =
            judged.map_err(|e| CommitError::Panicked(e.to_string()))?;

        let stored = admitted.len();
        if stored > 0 {
            self.committer.votes_from(poll, admitted, origin).await?;
        }
        Ok(Admitted {
            stored,
            rejected,
            first_code,
        })
    }
}

/// The operator's handle on a running mesh.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) table: Arc<Mutex<Table>>,
    commands: mpsc::Sender<Command>,
}

impl Handle {
    /// Blocks `peer`: disconnects it and refuses it until unblocked. True
    /// if it was not blocked.
    pub(crate) async fn block(&self, peer: PeerId) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Block { peer, reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Unblocks `peer` and, if configured, dials it now. True if it was blocked.
    pub(crate) async fn unblock(&self, peer: PeerId) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Unblock { peer, reply })
            .await
            .ok()?;
        answer.await.ok()
    }
}

/// A started mesh.
pub(crate) struct Mesh {
    pub(crate) handle: Handle,
    /// Where peers reach this node, ending in `/p2p/<peer id>`.
    pub(crate) addr: Multiaddr,
    pub(crate) task: JoinHandle<()>,
}

/// The libp2p keypair of the node key.
pub(crate) fn keypair(key: &SecretKey) -> Result<libp2p::identity::Keypair, String> {
    libp2p::identity::Keypair::ed25519_from_bytes(key.to_seed())
        .map_err(|e| format!("node key as libp2p key: {e}"))
}

/// Builds the swarm, binds `listen` and starts the swarm task.
pub(crate) async fn start(
    settings: Settings,
    listen: Multiaddr,
    key: &SecretKey,
    polls: Arc<Polls>,
    committer: Committer,
    metrics: Arc<Metrics>,
    feed: mpsc::Receiver<Fresh>,
) -> Result<Mesh, String> {
    let keypair = keypair(key)?;
    let local = keypair.public().to_peer_id();
    let mut swarm = behaviour::build(keypair)?;
    for peer in &settings.allow {
        swarm.behaviour_mut().allowed.allow_peer(*peer);
    }
    swarm
        .listen_on(listen.clone())
        .map_err(|e| format!("listen on {listen}: {e}"))?;

    // The bound address (the real port if 0 was asked) comes as an event.
    let bound = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(format!("listener closed: {reason:?}"))
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| format!("listen on {listen}: no address after 10 s"))??;
    let addr = bound.with(Protocol::P2p(local));

    let table = Arc::new(Mutex::new(Table::configured(&settings.peers)));
    let (commands, inbox) = mpsc::channel(COMMANDS);
    let ctx = Arc::new(Context {
        polls,
        committer,
        metrics,
        table: table.clone(),
        responders: Mutex::new(HashMap::new()),
        session: crdt::sync::Config::default(),
        commands: commands.clone(),
    });
    tracing::info!(peer = %local, addr = %addr, peers = settings.peers.len(), allowed = settings.allow.len(), "p2p listening");

    let task = tokio::spawn(
        Driver {
            swarm,
            ctx,
            inbox,
            feed,
            pending: HashMap::new(),
            interval: settings.sync_interval,
        }
        .run(),
    );
    Ok(Mesh {
        handle: Handle { table, commands },
        addr,
        task,
    })
}

use libp2p::futures::StreamExt as _;

/// The swarm task.
struct Driver {
    swarm: Swarm<Behaviour>,
    ctx: Arc<Context>,
    inbox: mpsc::Receiver<Command>,
    feed: mpsc::Receiver<Fresh>,
    pending: HashMap<OutboundRequestId, (Proto, Reply)>,
    interval: Duration,
}

impl Driver {
    async fn run(mut self) {
        let mut dial = tokio::time::interval(DIAL_CHECK);
        let mut rounds = tokio::time::interval(self.interval);
        rounds.reset();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                Some(command) = self.inbox.recv() => self.on_command(command),
                Some(fresh) = self.feed.recv() => self.publish(fresh),
                _ = dial.tick() => self.redial(),
                _ = rounds.tick() => self.start_rounds(),
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.ctx.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let first = num_established.get() == 1;
                {
                    let mut table = self.table();
                    let peer = table.entry(peer_id);
                    peer.connections = num_established.get();
                    if !peer.configured {
                        peer.addresses = vec![endpoint.get_remote_address().clone()];
                    }
                    let connected = table.connected_count();
                    self.ctx.metrics.mesh.peers_connected.set(connected as i64);
                }
                tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                if first {
                    self.start_round(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                let mut table = self.table();
                table.entry(peer_id).connections = num_established;
                let connected = table.connected_count();
                drop(table);
                self.ctx.metrics.mesh.peers_connected.set(connected as i64);
                if num_established == 0 {
                    let cause = cause
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "closed".into());
                    tracing::info!(peer = %peer_id, %cause, "peer disconnected");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                self.ctx.metrics.mesh.connections_refused.inc();
                tracing::debug!(addr = %send_back_addr, %error, "incoming connection refused or failed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.ctx.metrics.mesh.connections_refused.inc();
                let peer = peer_id.map(|p| p.to_string()).unwrap_or_default();
                tracing::debug!(peer, %error, "dial failed; retrying with backoff");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let mesh = &self.ctx.metrics.mesh;
                mesh.bytes("in", "gossip", message.data.len());
                let ctx = self.ctx.clone();
                tokio::spawn(gossip::receive(
                    ctx,
                    propagation_source,
                    message_id,
                    message.data,
                ));
            }
            BehaviourEvent::Sync(event) => self.on_request_response(Proto::Sync, event),
            BehaviourEvent::Polls(event) => self.on_request_response(Proto::Polls, event),
            _ => {}
        }
    }

    fn on_request_response(
        &mut self,
        proto: Proto,
        event: request_response::Event<Request, Frames>,
    ) {
        let mesh = &self.ctx.metrics.mesh;
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request: Request::Refused(reason),
                    ..
                } => {
                    // The channel drops unanswered: the stream closes.
                    tracing::warn!(peer = %peer, protocol = proto.name(), %reason, "oversized request from peer; refused unread");
                    mesh.invalid("oversized");
                    self.strike(peer);
                }
                request_response::Message::Request {
                    request: Request::Frames(request),
                    channel,
                    ..
                } => {
                    mesh.bytes("in", proto.name(), codec::encoded_len(&request));
                    let ctx = self.ctx.clone();
                    tokio::spawn(answer(ctx, proto, peer, request, channel));
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    mesh.bytes("in", proto.name(), codec::encoded_len(&response));
                    if let Some((_, reply)) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
                tracing::debug!(peer = %peer, protocol = proto.name(), %error, "request failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Streams that break after the request was read end here, as
                // do answers we dropped; oversized requests arrive as `Refused`.
                let io = matches!(error, request_response::InboundFailure::Io(_));
                if io {
                    tracing::warn!(peer = %peer, protocol = proto.name(), %error, "unreadable request from peer; refused");
                    mesh.invalid("malformed");
                    self.strike(peer);
                } else {
                    tracing::debug!(peer = %peer, protocol = proto.name(), %error, "inbound request failed");
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                proto,
                frames,
                reply,
            } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err("not connected".into()));
                    return;
                }
                self.ctx
                    .metrics
                    .mesh
                    .bytes("out", proto.name(), codec::encoded_len(&frames));
                let behaviour = self.swarm.behaviour_mut();
                let request = Request::Frames(frames);
                let id = match proto {
                    Proto::Sync => behaviour.sync.send_request(&peer, request),
                    Proto::Polls => behaviour.polls.send_request(&peer, request),
                };
                self.pending.insert(id, (proto, reply));
            }
            Command::Respond {
                proto,
                channel,
                frames,
            } => {
                self.ctx
                    .metrics
                    .mesh
                    .bytes("out", proto.name(), codec::encoded_len(&frames));
                let behaviour = self.swarm.behaviour_mut();
                // Fails if the requester went away; nothing to do then.
                let _ = match proto {
                    Proto::Sync => behaviour.sync.send_response(channel, frames),
                    Proto::Polls => behaviour.polls.send_response(channel, frames),
                };
            }
            Command::Validated {
                id,
                source,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::Strike { peer } => self.strike(peer),
            Command::SyncNow { peer } => self.start_round(peer),
            Command::RoundDone { peer, stats, ok } => {
                let mut table = self.table();
                let entry = table.entry(peer);
                entry.round_running = false;
                entry.lag = stats.entries_received;
                if ok {
                    entry.last_sync_ms = Some(crate::clock::now_ms());
                    entry.reset_backoff();
                }
                entry.last = Some(stats);
                let label = metrics::PeerLabel {
                    peer: peer.to_string(),
                };
                self.ctx
                    .metrics
                    .mesh
                    .entries_missing
                    .get_or_create(&label)
                    .set(entry.lag as i64);
            }
            Command::Block { peer, reply } => {
                let changed = self.swarm.behaviour_mut().blocked.block_peer(peer);
                self.table().entry(peer).blocked = true;
                tracing::info!(peer = %peer, "peer blocked");
                let _ = reply.send(changed);
            }
            Command::Unblock { peer, reply } => {
                let changed = self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                {
                    let mut table = self.table();
                    let entry = table.entry(peer);
                    entry.blocked = false;
                    entry.reset_backoff();
                }
                tracing::info!(peer = %peer, "peer unblocked");
                self.redial();
                let _ = reply.send(changed);
            }
        }
    }

    /// Counts invalid input against `peer`; disconnects it after [`STRIKES`].
    fn strike(&mut self, peer: PeerId) {
        let mut table = self.table();
        let entry = table.entry(peer);
        entry.strikes += 1;
        if entry.strikes < STRIKES {
            return;
        }
        entry.strikes = 0;
        drop(table);
        tracing::warn!(peer = %peer, strikes = STRIKES, "disconnecting peer for repeated invalid input");
        self.ctx.metrics.mesh.peers_disconnected.inc();
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let due: Vec<(PeerId, Vec<Multiaddr>)> = {
            let mut table = self.table();
            table
                .peers
                .iter_mut()
                .filter(|(_, p)| p.dial_due(now))
                .map(|(id, p)| {
                    p.dialed(now);
                    (*id, p.addresses.clone())
                })
                .collect()
        };
        for (peer, addresses) in due {
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(error) = self.swarm.dial(opts) {
                tracing::debug!(peer = %peer, %error, "dial not started");
            }
        }
    }

    fn start_rounds(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.start_round(peer);
        }
    }

    /// Starts a round with `peer` unless one is running.
    fn start_round(&mut self, peer: PeerId) {
        if !self.swarm.is_connected(&peer) {
            return;
        }
        {
            let mut table = self.table();
            let entry = table.entry(peer);
            if entry.round_running || entry.blocked {
                return;
            }
            entry.round_running = true;
        }
        tokio::spawn(sync::round(self.ctx.clone(), peer));
    }

    /// Gossips entries the committer just made durable. Entries that came
    /// by gossip are not published again: gossipsub relays them.
    fn publish(&mut self, fresh: Fresh) {
        if fresh.origin == Origin::Gossip {
            return;
        }
        let topic = IdentTopic::new(ENTRIES_TOPIC);
        for message in gossip::encode_batches(&fresh.poll, &fresh.votes) {
            let len = message.len();
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), message)
            {
                Ok(_) => self.ctx.metrics.mesh.bytes("out", "gossip", len),
                Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::Duplicate) => {}
                Err(error) => {
                    tracing::warn!(poll = %fresh.poll.short(), %error, "gossip publish failed; reconciliation will carry the entries")
                }
            }
        }
    }
}

/// Answers one inbound request, off the swarm task.
async fn answer(
    ctx: Arc<Context>,
    proto: Proto,
    peer: PeerId,
    request: Frames,
    channel: ResponseChannel<Frames>,
) {
    let frames = match proto {
        Proto::Polls => sync::answer_polls(&ctx, &request),
        Proto::Sync => match sync::answer_sync(ctx.clone(), peer, request).await {
            Ok(frames) => frames,
            Err(error) => {
                ctx.invalid(peer, &error).await;
                Vec::new()
            }
        },
    };
    ctx.send(Command::Respond {
        proto,
        channel,
        frames,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_id_names_the_node_key() {
        let key = SecretKey::from_seed(&[9; 32]);

        let public = keypair(&key).unwrap().public();
        let ed = public.try_into_ed25519().unwrap();

        assert_eq!(ed.to_bytes(), key.public().0);
    }

    #[test]
    fn a_peer_without_a_peer_id_is_a_config_error() {
        let config = crate::Config {
            peers: vec!["/ip4/127.0.0.1/tcp/1".into()],
            ..Default::default()
        };

        let error = Settings::from_config(&config).unwrap_err();

        assert!(error.contains("/p2p/"), "{error}");
    }
}
