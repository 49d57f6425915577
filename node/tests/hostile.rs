//! A peer that is on the allow list but sends garbage: undecodable and
//! oversized sync frames, and forged entries by sync and by gossip. The node
//! refuses each, stays up, stores none of it, and disconnects the peer.
//!
//! The hostile peer is a libp2p swarm in this test, speaking the node's
//! protocols (`/votemesh/sync/1` frames and the `votemesh/entries/v1` topic)
//! with a codec that writes whatever bytes it is given.

mod common;

use std::io;
use std::time::Duration;

use common::mesh::{self, args, connected, wait_for, Ident};
use common::{data_dir, poll, vote};
use crdt::sync::Message;
use crdt::{Digest, Poll, Signature, Vote};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};

const SYNC: StreamProtocol = StreamProtocol::new("/votemesh/sync/1");
const TOPIC: &str = "votemesh/entries/v1";
/// Every step of the story must finish within this.
const STEP: Duration = Duration::from_secs(20);

/// Writes a request's bytes as given; reads a response to its end.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_all(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_all(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.close().await
    }
}

async fn read_all<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(64 << 20).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

#[derive(NetworkBehaviour)]
struct Hostile {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<RawCodec>,
}

fn hostile_swarm(keypair: Keypair) -> Swarm<Hostile> {
    SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .heartbeat_interval(Duration::from_millis(200))
                .build()
                .expect("gossipsub config");
            let mut gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
                    .expect("gossipsub");
            gossipsub
                .subscribe(&IdentTopic::new(TOPIC))
                .expect("subscribe");
            let sync = request_response::Behaviour::with_codec(
                RawCodec,
                [(SYNC, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            );
            Hostile { gossipsub, sync }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// The node's request framing: a frame count, then each frame's length and
/// bytes, all `u32` big-endian.
fn frames(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = (frames.len() as u32).to_be_bytes().to_vec();
    for frame in frames {
        bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        bytes.extend_from_slice(frame);
    }
    bytes
}

/// A request whose one frame announces 40 MiB, over the 32 MiB limit.
fn oversized() -> Vec<u8> {
    let mut bytes = 1u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(40u32 << 20).to_be_bytes());
    bytes.extend_from_slice(&[0xab; 4096]);
    bytes
}

/// Real votes with their signatures replaced.
fn forged(poll: &Poll, voters: std::ops::Range<u32>) -> Vec<Vote> {
    voters
        .map(|n| Vote::new(vote(poll, n, 0, 1).body().clone(), Signature([7; 64])))
        .collect()
}

/// A gossip batch as the node encodes it: `VMG1`, poll id, count, entries.
fn gossip_batch(poll: &Poll, votes: &[Vote]) -> Vec<u8> {
    let mut bytes = b"VMG1".to_vec();
    bytes.extend_from_slice(poll.id.as_bytes());
    bytes.extend_from_slice(&(votes.len() as u32).to_be_bytes());
    for vote in votes {
        bytes.extend_from_slice(&(vote.encoded().len() as u32).to_be_bytes());
        bytes.extend_from_slice(vote.encoded());
    }
    bytes
}

/// Drives the hostile swarm: answers nothing, and returns once `done`
/// says so about an event, or panics after [`STEP`].
async fn drive(
    swarm: &mut Swarm<Hostile>,
    what: &str,
    mut done: impl FnMut(&SwarmEvent<HostileEvent>) -> bool,
) {
    let outcome = tokio::time::timeout(STEP, async {
        loop {
            let event = swarm.select_next_some().await;
            if done(&event) {
                return;
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "not within {STEP:?}: {what}");
}

/// Sends one raw sync request and waits for its answer or failure.
async fn request(swarm: &mut Swarm<Hostile>, node: PeerId, bytes: Vec<u8>, what: &str) {
    let id = swarm.behaviour_mut().sync.send_request(&node, bytes);
    drive(swarm, what, |event| match event {
        SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Response { request_id, .. },
            ..
        })) => *request_id == id,
        SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::OutboundFailure {
            request_id,
            ..
        })) => *request_id == id,
        _ => false,
    })
    .await;
}

async fn invalid(node: &common::Node, reason: &str) -> f64 {
    node.metric(&format!(
        "votemesh_p2p_invalid_input_total{{reason=\"{reason}\"}}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_peer_sending_garbage_and_forgeries_is_refused_then_disconnected() {
    let (_ra, da) = data_dir();
    let (_rh, dh) = data_dir();
    let a = Ident::prepare(&da, 30);
    let h = Ident::prepare(&dh, 31);
    let na = mesh::start(&da, &args(&a, &[], &[&h]));
    let poll = poll("hostile");
    na.create_poll(&poll).await;

    let keypair = Keypair::ed25519_from_bytes([31; 32]).expect("key");
    let mut swarm = hostile_swarm(keypair);
    let node: PeerId = a.peer_id.parse().expect("peer id");
    let addr: Multiaddr = a.addr().parse().expect("addr");
    swarm.dial(addr).expect("dial");
    drive(&mut swarm, "connected to the node", |event| {
        matches!(event, SwarmEvent::ConnectionEstablished { .. })
    })
    .await;

    // 1. A sync frame that is not a sync message.
    let garbage = frames(&[b"votemesh/sync/v1\0garbage".to_vec()]);
    request(&mut swarm, node, garbage, "garbage answered").await;
    wait_for(STEP, "garbage counted", || async {
        invalid(&na, "undecodable").await >= 1.0
    })
    .await;

    // 2. A frame over the 32 MiB limit, refused from its length prefix.
    request(&mut swarm, node, oversized(), "oversized refused").await;
    wait_for(STEP, "oversized counted", || async {
        invalid(&na, "oversized").await >= 1.0
    })
    .await;

    // 3. Forged entries by sync: claim a set, then push it when asked.
    let hello = Message::Hello {
        poll: poll.id,
        count: 3,
        digest: Digest([9; 32]),
    };
    request(
        &mut swarm,
        node,
        frames(&[hello.encode()]),
        "hello answered",
    )
    .await;
    let entries = Message::Entries {
        poll: poll.id,
        entries: forged(&poll, 0..3),
        last: true,
    };
    request(
        &mut swarm,
        node,
        frames(&[entries.encode()]),
        "entries answered",
    )
    .await;
    wait_for(STEP, "forged sync entries counted", || async {
        invalid(&na, "rejected_entries").await >= 1.0
    })
    .await;

    // 4. Forged entries by gossip, once the node is subscribed.
    let batch = gossip_batch(&poll, &forged(&poll, 10..13));
    let topic = IdentTopic::new(TOPIC);
    let published = tokio::time::timeout(STEP, async {
        loop {
            if swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), batch.clone())
                .is_ok()
            {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), swarm.next()).await;
        }
    })
    .await;
    assert!(published.is_ok(), "gossip published");
    let mut forged_gossip_counted = false;
    for _ in 0..100 {
        let _ = tokio::time::timeout(Duration::from_millis(100), swarm.next()).await;
        if invalid(&na, "rejected_entries").await >= 2.0 {
            forged_gossip_counted = true;
            break;
        }
    }
    assert!(forged_gossip_counted, "forged gossip counted");

    // 5. The fifth strike: the node hangs up.
    let garbage = frames(&[vec![0xff; 100]]);
    swarm.behaviour_mut().sync.send_request(&node, garbage);
    drive(&mut swarm, "disconnected by the node", |event| {
        matches!(event, SwarmEvent::ConnectionClosed { .. })
    })
    .await;

    wait_for(STEP, "the node counts the disconnect", || async {
        na.metric("votemesh_p2p_peers_disconnected_total").await >= 1.0
    })
    .await;
    // The node counts the strike-out before its own swarm has processed the
    // closed connection, so its peer list may lag the counter for a moment.
    wait_for(STEP, "the node lists no connected peer", || async {
        connected(&na).await == 0
    })
    .await;
    let (entries, _, _) = mesh::state(&na, &poll).await.expect("node still serves");
    assert_eq!(entries, 0, "no forged entry stored");
}
