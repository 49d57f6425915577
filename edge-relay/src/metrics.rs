//! Prometheus metrics of the relay (`GET /metrics`): requests by route and
//! status (429s are the rate limits at work, 502/503/504 the nodes failing
//! it), receipts refused (not signed by the answering node's key), live
//! subscribers, healthy nodes, and page renderings.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    /// The route's pattern (`/v1/polls/{id}/votes`), or `web` for pages and assets.
    pub(crate) route: String,
    pub(crate) method: String,
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// Every metric the relay exports, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) http_requests: Family<HttpLabels, Counter>,
    pub(crate) renderings: Family<ResultLabel, Counter>,
    pub(crate) pages_polls: Gauge,
    pub(crate) receipts_refused: Counter,
    live_subscribers: Gauge<i64, AtomicI64>,
    nodes_healthy: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("votemesh_relay"),
            http_requests: Family::default(),
            renderings: Family::default(),
            pages_polls: Gauge::default(),
            receipts_refused: Counter::default(),
            live_subscribers: Gauge::default(),
            nodes_healthy: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "http_requests",
            "Requests answered, by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "page_renderings",
            "Renderings of the voters' pages (--pages), by result",
            m.renderings.clone(),
        );
        r.register(
            "pages_polls",
            "Polls with pages in the last successful rendering",
            m.pages_polls.clone(),
        );
        r.register(
            "receipts_refused",
            "Node answers not passed on: a receipt not signed by the key of the node that answered",
            m.receipts_refused.clone(),
        );
        r.register(
            "live_subscribers",
            "Browsers following live counts (WebSocket and Server-Sent Events)",
            m.live_subscribers.clone(),
        );
        r.register(
            "nodes_healthy",
            "Regional nodes that answered the last health check",
            m.nodes_healthy.clone(),
        );
        m
    }

    /// The text exposition, with the gauges read now.
    pub(crate) fn encode(&self, live_subscribers: usize, nodes_healthy: usize) -> String {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.live_subscribers.set(as_i64(live_subscribers));
        self.nodes_healthy.set(as_i64(nodes_healthy));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn rendered(&self, result: Result<usize, ()>) {
        match result {
            Ok(polls) => {
                self.renderings
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                self.pages_polls
                    .set(i64::try_from(polls).unwrap_or(i64::MAX));
            }
            Err(()) => {
                self.renderings
                    .get_or_create(&ResultLabel { result: "failed" })
                    .inc();
            }
        }
    }
}
