//! Prometheus metrics following a vote's journey through the node:
//! received, rejected or accepted, duplicate, durable.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabel {
    pub(crate) code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PollLabel {
    pub(crate) poll: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    pub(crate) route: String,
    pub(crate) method: String,
    pub(crate) status: u16,
}

/// Every metric the node exports, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) votes_received: Counter,
    pub(crate) votes_accepted: Counter,
    pub(crate) votes_rejected: Family<CodeLabel, Counter>,
    pub(crate) votes_duplicate: Counter,
    pub(crate) votes_durable: Counter,
    pub(crate) commit_groups: Counter,
    pub(crate) commit_failures: Counter,
    pub(crate) commit_seconds: Histogram,
    pub(crate) commit_group_votes: Histogram,
    pub(crate) poll_entries: Family<PollLabel, Gauge>,
    pub(crate) http_requests: Family<HttpLabels, Counter>,
    pub(crate) exports_active: Gauge,
    pub(crate) exports_refused: Counter,
    pub(crate) mesh: crate::mesh::MeshMetrics,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("votemesh"),
            votes_received: Counter::default(),
            votes_accepted: Counter::default(),
            votes_rejected: Family::default(),
            votes_duplicate: Counter::default(),
            votes_durable: Counter::default(),
            commit_groups: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            commit_group_votes: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            poll_entries: Family::default(),
            http_requests: Family::default(),
            exports_active: Gauge::default(),
            exports_refused: Counter::default(),
            mesh: Default::default(),
        };
        let r = &mut m.registry;
        r.register(
            "votes_received",
            "Votes offered in vote requests",
            m.votes_received.clone(),
        );
        r.register(
            "votes_accepted",
            "Votes that passed admission",
            m.votes_accepted.clone(),
        );
        r.register(
            "votes_rejected",
            "Votes refused, by code",
            m.votes_rejected.clone(),
        );
        r.register(
            "votes_duplicate",
            "Votes already held (retries)",
            m.votes_duplicate.clone(),
        );
        r.register(
            "votes_durable",
            "New entries flushed and fsynced",
            m.votes_durable.clone(),
        );
        r.register(
            "commit_groups",
            "Group commits that succeeded",
            m.commit_groups.clone(),
        );
        r.register(
            "commit_failures",
            "Group commits that failed",
            m.commit_failures.clone(),
        );
        r.register(
            "commit_duration_seconds",
            "Time to write, flush and fsync one group",
            m.commit_seconds.clone(),
        );
        r.register(
            "commit_group_votes",
            "Votes per commit group",
            m.commit_group_votes.clone(),
        );
        r.register(
            "poll_entries",
            "Entries held per poll",
            m.poll_entries.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "exports_active",
            "Exports being streamed",
            m.exports_active.clone(),
        );
        r.register(
            "exports_refused",
            "Exports refused with 429 because max_exports were running",
            m.exports_refused.clone(),
        );
        m.mesh.register(&mut m.registry);
        m
    }

    pub(crate) fn set_entries(&self, poll: &crdt::PollId, entries: usize) {
        let label = PollLabel {
            poll: poll.to_string(),
        };
        self.poll_entries.get_or_create(&label).set(entries as i64);
    }

    pub(crate) fn rejected(&self, code: &str) {
        self.votes_rejected
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
