//! The libp2p stack: tcp + noise + yamux, and the behaviours the mesh runs.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, noise, tcp, yamux, Swarm, SwarmBuilder};
use sha2::{Digest as _, Sha256};

use super::codec::{FramesCodec, POLLS_PROTOCOL, SYNC_PROTOCOL};

/// The gossip topic carrying new entries.
pub(crate) const ENTRIES_TOPIC: &str = "votemesh/entries/v1";
/// Largest gossip message; batches are cut well below it.
pub(crate) const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// How long a request may wait for its response.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections stay open this long without traffic: polls can be quiet for
/// hours, and a reconnect costs a round of reconciliation.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Every behaviour of a node, polled in field order.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses every peer not on the allow list.
    pub(crate) allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    /// Refuses peers an operator blocked.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<FramesCodec>,
    pub(crate) polls: request_response::Behaviour<FramesCodec>,
}

/// Builds the swarm on the tokio runtime, subscribed to the entries topic.
pub(crate) fn build(keypair: Keypair) -> Result<Swarm<Behaviour>, String> {
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("noise: {e}"))?
        .with_behaviour(|key| {
            behaviour(key).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

fn behaviour(key: &Keypair) -> Result<Behaviour, String> {
    // Content-addressed ids: the same batch relayed along two paths is one message.
    let message_id =
        |message: &gossipsub::Message| MessageId::new(Sha256::digest(&message.data).as_slice());
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| format!("gossipsub: {e}"))?;
    gossipsub
        .subscribe(&IdentTopic::new(ENTRIES_TOPIC))
        .map_err(|e| format!("gossipsub subscribe: {e}"))?;

    let config = request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT);
    let sync = request_response::Behaviour::with_codec(
        FramesCodec,
        [(SYNC_PROTOCOL, ProtocolSupport::Full)],
        config.clone(),
    );
    let polls = request_response::Behaviour::with_codec(
        FramesCodec,
        [(POLLS_PROTOCOL, ProtocolSupport::Full)],
        config,
    );
    Ok(Behaviour {
        allowed: Default::default(),
        blocked: Default::default(),
        gossipsub,
        sync,
        polls,
    })
}
