//! Replication metrics, registered in the node's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PathLabel {
    pub(crate) path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BytesLabel {
    pub(crate) direction: &'static str,
    pub(crate) protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerLabel {
    pub(crate) peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// What the mesh counts.
#[derive(Default)]
pub(crate) struct MeshMetrics {
    pub(crate) entries_received: Family<PathLabel, Counter>,
    pub(crate) bytes: Family<BytesLabel, Counter>,
    pub(crate) sync_sessions: Family<OutcomeLabel, Counter>,
    pub(crate) entries_missing: Family<PeerLabel, Gauge>,
    pub(crate) peers_connected: Gauge,
    pub(crate) invalid_input: Family<ReasonLabel, Counter>,
    pub(crate) peers_disconnected: Counter,
    pub(crate) connections_refused: Counter,
}

impl MeshMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "entries_received",
            "New entries made durable, by the path they came in on (http, gossip, sync)",
            self.entries_received.clone(),
        );
        r.register(
            "p2p_bytes",
            "Application bytes of gossip and request-response messages, by direction and protocol",
            self.bytes.clone(),
        );
        r.register(
            "sync_sessions",
            "Reconciliation sessions this node initiated, by outcome",
            self.sync_sessions.clone(),
        );
        r.register(
            "sync_entries_missing",
            "Entries the last round with a peer found missing here",
            self.entries_missing.clone(),
        );
        r.register(
            "p2p_peers_connected",
            "Peers with at least one open connection",
            self.peers_connected.clone(),
        );
        r.register(
            "p2p_invalid_input",
            "Invalid frames, messages or entries received from peers, by reason",
            self.invalid_input.clone(),
        );
        r.register(
            "p2p_peers_disconnected",
            "Peers disconnected for repeated invalid input",
            self.peers_disconnected.clone(),
        );
        r.register(
            "p2p_connections_refused",
            "Connections refused or failed before they were established",
            self.connections_refused.clone(),
        );
    }

    pub(crate) fn bytes(&self, direction: &'static str, protocol: &'static str, n: usize) {
        let label = BytesLabel {
            direction,
            protocol,
        };
        self.bytes.get_or_create(&label).inc_by(n as u64);
    }

    pub(crate) fn session(&self, outcome: &'static str) {
        self.sync_sessions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub(crate) fn invalid(&self, reason: &'static str) {
        self.invalid_input
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}
