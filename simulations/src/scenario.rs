//! Scenario files: what to simulate, read from TOML.
//!
//! Times in the file are seconds (`_s`) or milliseconds (`_ms`) as the field
//! name says; rates are real votes per second. Nodes are numbered
//! `region * nodes_per_region + i`.

use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for reports.
    pub name: String,
    /// One line on what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The RNG seed; `--seed` and `VOTEMESH_SIM_SEED` override it.
    #[serde(default)]
    pub seed: u64,
    /// Simulated time to run, seconds, settling included.
    pub duration_s: f64,
    /// Time series sample interval, seconds.
    #[serde(default = "default_sample")]
    pub sample_interval_s: f64,
    /// Keep the structured trace in memory for failure reports (its hash is
    /// always computed). Turn off for very large runs.
    #[serde(default = "yes")]
    pub keep_trace: bool,
    /// Who is where.
    pub topology: Topology,
    /// Network conditions.
    pub links: Links,
    /// When votes arrive.
    pub votes: Votes,
    /// How clients behave.
    #[serde(default)]
    pub clients: Clients,
    /// How nodes replicate.
    #[serde(default)]
    pub sync: Sync,
    /// What goes wrong, and when.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// Regions, nodes, relays, voters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Number of regions.
    pub regions: usize,
    /// Nodes in each region.
    pub nodes_per_region: usize,
    /// Edge relays, spread over the regions round robin. Relays forward a
    /// client's request to a node of their region.
    pub relays: usize,
    /// Real voters (reported; each simulated vote is a fresh voter key).
    pub voters: u64,
    /// Polls replicated side by side; votes pick one uniformly.
    #[serde(default = "one")]
    pub polls: usize,
    /// Options per poll.
    #[serde(default = "three")]
    pub options: u32,
}

/// One class of link.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One-way base latency, ms.
    pub latency_ms: f64,
    /// Uniform jitter added on top, `[0, jitter_ms)`.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Probability that one message is dropped.
    #[serde(default)]
    pub loss: f64,
    /// Megabits per second per direction; 0 is unlimited.
    #[serde(default)]
    pub bandwidth_mbps: f64,
}

/// The three classes of link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    /// Client to relay to node, and the ack back (latency is per hop pair).
    pub access: Link,
    /// Between nodes of one region.
    pub intra_region: Link,
    /// Between nodes of different regions.
    pub inter_region: Link,
}

/// Vote arrival.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Votes {
    /// Real votes each simulated vote stands for (1 = every vote simulated).
    #[serde(default = "one_u64")]
    pub scale: u64,
    /// Rate curve: `[time_s, real votes per second]` points, linear between
    /// them, flat after the last.
    pub rate: Vec<[f64; 2]>,
    /// Short bursts multiplying the rate.
    #[serde(default)]
    pub bursts: Vec<Burst>,
    /// No vote is cast after this time (the rest of the run settles).
    pub stop_at_s: f64,
    /// Fixed number of simulated votes, cast evenly until `stop_at_s`,
    /// instead of the rate curve (used to mirror fixed-count tests).
    #[serde(default)]
    pub count: Option<u64>,
}

/// A burst: the rate times `multiplier` for `duration_s`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Start, seconds.
    pub at_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
    /// Factor on the rate.
    pub multiplier: f64,
}

/// Client behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clients {
    /// Share of votes cast while the client is offline.
    #[serde(default)]
    pub offline_share: f64,
    /// Mean time an offline client stays offline (exponential), seconds.
    #[serde(default = "default_offline_mean")]
    pub offline_mean_s: f64,
    /// A request not acknowledged within this is retried.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: f64,
    /// How a client retries and reconnects.
    #[serde(default)]
    pub reconnect: Reconnect,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            offline_share: 0.0,
            offline_mean_s: default_offline_mean(),
            ack_timeout_ms: default_ack_timeout(),
            reconnect: Reconnect::default(),
        }
    }
}

/// Retry policy. Retries go on until a node acknowledges; they are
/// idempotent because the entry hash identifies the vote.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reconnect {
    /// Retry after a fixed delay.
    Immediate {
        /// The delay, ms.
        #[serde(default = "default_immediate")]
        delay_ms: f64,
    },
    /// Retry after `min(max_ms, base_ms * 2^attempt)`, times a uniform factor
    /// in `[0, 1)` when `jitter` (full jitter).
    Backoff {
        /// First delay, ms.
        base_ms: f64,
        /// Cap, ms.
        max_ms: f64,
        /// Full jitter.
        #[serde(default = "yes")]
        jitter: bool,
    },
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect::Backoff {
            base_ms: 200.0,
            max_ms: 10_000.0,
            jitter: true,
        }
    }
}

/// How nodes replicate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    /// The anti-entropy strategy.
    #[serde(default)]
    pub strategy: Strategy,
    /// Each node starts sessions this often, seconds.
    #[serde(default = "default_sync_interval")]
    pub interval_s: f64,
    /// Peers per round (0 = every peer). Peers are taken round robin.
    #[serde(default)]
    pub fanout: usize,
    /// New client entries are pushed to every peer in batches this often, ms
    /// (0 disables pushing: anti-entropy alone).
    #[serde(default = "default_push")]
    pub push_interval_ms: f64,
    /// A session with no message for this long is abandoned, ms.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: f64,
    /// Client votes a node can take per second (0 = unlimited); requests
    /// queue beyond it.
    #[serde(default)]
    pub ingest_per_sec: f64,
}

impl Default for Sync {
    fn default() -> Self {
        Sync {
            strategy: Strategy::default(),
            interval_s: default_sync_interval(),
            fanout: 0,
            push_interval_ms: default_push(),
            session_timeout_ms: default_session_timeout(),
            ingest_per_sec: 0.0,
        }
    }
}

/// The anti-entropy strategy between nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `crdt::sync`: digest, rateless IBLT symbols, wanted entries.
    #[default]
    Votemesh,
    /// Every session sends every entry both ways.
    Naive,
    /// automerge documents: pushes carry each group commit's change, sessions
    /// run automerge's sync protocol (needs the `baselines` feature).
    Automerge,
    /// yrs documents: pushes carry each group commit's update, sessions
    /// exchange state vectors and the missing updates (needs the `baselines`
    /// feature).
    Yrs,
}

impl Strategy {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Votemesh => "votemesh",
            Strategy::Naive => "naive",
            Strategy::Automerge => "automerge",
            Strategy::Yrs => "yrs",
        }
    }

    /// Every strategy this build can simulate: automerge and yrs need the
    /// `baselines` feature.
    pub fn available() -> &'static [Strategy] {
        if cfg!(feature = "baselines") {
            &[
                Strategy::Votemesh,
                Strategy::Naive,
                Strategy::Automerge,
                Strategy::Yrs,
            ]
        } else {
            &[Strategy::Votemesh, Strategy::Naive]
        }
    }

    /// Whether nodes keep a baseline document (automerge or yrs).
    pub fn is_baseline(self) -> bool {
        matches!(self, Strategy::Automerge | Strategy::Yrs)
    }

    /// Parses a strategy name.
    pub fn parse(name: &str) -> anyhow::Result<Strategy> {
        Ok(match name {
            "votemesh" => Strategy::Votemesh,
            "naive" => Strategy::Naive,
            "automerge" => Strategy::Automerge,
            "yrs" => Strategy::Yrs,
            other => bail!("strategy={other}: expected votemesh, naive, automerge or yrs"),
        })
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Split nodes into groups; nodes not listed form one more group.
    Partition {
        /// When, seconds.
        at_s: f64,
        /// Node indices per group.
        groups: Vec<Vec<usize>>,
    },
    /// End every partition.
    Heal {
        /// When, seconds.
        at_s: f64,
    },
    /// Hold messages on the link between `a` and `b` (both ways) until released.
    Hold {
        /// When, seconds.
        at_s: f64,
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
    },
    /// Deliver what a hold kept, and carry on.
    Release {
        /// When, seconds.
        at_s: f64,
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
    },
    /// Cut the link between `a` and `b` every `period_s` for half the
    /// period, from `from_s` to `until_s`; messages sent while down are lost.
    Flap {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
        /// Start, seconds.
        from_s: f64,
        /// End, seconds (the link is up after it).
        until_s: f64,
        /// Period, seconds.
        period_s: f64,
    },
    /// The node loses its memory; what it acknowledged stays durable.
    Crash {
        /// When, seconds.
        at_s: f64,
        /// The node.
        node: usize,
    },
    /// The node reloads its durable set and syncs with every peer.
    Restart {
        /// When, seconds.
        at_s: f64,
        /// The node.
        node: usize,
    },
    /// Every message in flight at that moment is lost.
    DropInFlight {
        /// When, seconds.
        at_s: f64,
    },
    /// Every client is offline in the window; requests fail and clients
    /// retry by their policy (the window's end is the reconnect storm).
    ClientsOffline {
        /// Start, seconds.
        at_s: f64,
        /// End, seconds.
        until_s: f64,
    },
}

fn default_sample() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}
fn three() -> u32 {
    3
}
fn default_offline_mean() -> f64 {
    20.0
}
fn default_ack_timeout() -> f64 {
    2_000.0
}
fn default_immediate() -> f64 {
    100.0
}
fn default_sync_interval() -> f64 {
    5.0
}
fn default_push() -> f64 {
    50.0
}
fn default_session_timeout() -> f64 {
    5_000.0
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("in scenario {}", path.display()))
    }

    /// Parses and checks scenario TOML.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.topology.regions * self.topology.nodes_per_region
    }

    /// Rejects scenarios the simulator cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        let n = self.nodes();
        if n == 0 || n > u16::MAX as usize {
            bail!("need between 1 and 65535 nodes, found {n}");
        }
        if self.topology.relays == 0 || self.topology.polls == 0 || self.topology.options == 0 {
            bail!("relays, polls and options must be at least 1");
        }
        if self.duration_s <= 0.0 || self.sample_interval_s <= 0.0 || self.sync.interval_s <= 0.0 {
            bail!("duration, sample interval and sync interval must be positive");
        }
        if self.votes.scale == 0 || self.votes.rate.is_empty() && self.votes.count.is_none() {
            bail!("votes need a scale of at least 1 and a rate curve or a count");
        }
        for [at, rate] in &self.votes.rate {
            if !(at.is_finite() && *at >= 0.0 && rate.is_finite() && *rate >= 0.0) {
                bail!("votes.rate point [{at}, {rate}]: time and rate must be finite and not negative");
            }
        }
        let links = &self.links;
        for (name, link) in [
            ("access", &links.access),
            ("intra_region", &links.intra_region),
            ("inter_region", &links.inter_region),
        ] {
            let Link {
                latency_ms,
                jitter_ms,
                loss,
                bandwidth_mbps,
            } = *link;
            let usable = |x: f64| x.is_finite() && x >= 0.0;
            if !(usable(latency_ms) && usable(jitter_ms) && usable(bandwidth_mbps)) {
                bail!(
                    "links.{name}: latency, jitter and bandwidth must be finite and not negative"
                );
            }
            // A link that drops every message is a partition: say so with a fault.
            if !(0.0..1.0).contains(&loss) {
                bail!("links.{name}: loss {loss} must be at least 0 and below 1");
            }
        }
        if !Strategy::available().contains(&self.sync.strategy) {
            bail!(
                "strategy {} needs the `baselines` feature: \
                 cargo build --release -p votemesh-sim --features baselines",
                self.sync.strategy.name()
            );
        }
        for fault in &self.faults {
            for node in fault.nodes() {
                if node >= n {
                    bail!("fault {fault:?} names node {node}, but there are {n} nodes");
                }
            }
        }
        Ok(())
    }

    /// Sets one parameter by name, for sweeps: `loss`, `partition_secs`,
    /// `offline_share`, `reconnect` (`immediate` or `backoff`),
    /// `sync_interval`, `push_interval_ms`, `latency_ms`, `scale`.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let number = || -> anyhow::Result<f64> {
            value
                .parse::<f64>()
                .with_context(|| format!("{key}={value}: not a number"))
        };
        match key {
            "loss" => {
                let loss = number()?;
                self.links.intra_region.loss = loss;
                self.links.inter_region.loss = loss;
            }
            "latency_ms" => self.links.inter_region.latency_ms = number()?,
            "partition_secs" => self.set_partition_length(number()?)?,
            "offline_share" => self.clients.offline_share = number()?,
            "sync_interval" => self.sync.interval_s = number()?,
            "push_interval_ms" => self.sync.push_interval_ms = number()?,
            "scale" => self.votes.scale = number()? as u64,
            "reconnect" => {
                self.clients.reconnect = match value {
                    "immediate" => Reconnect::Immediate { delay_ms: 100.0 },
                    "backoff" => Reconnect::default(),
                    other => bail!("reconnect={other}: expected immediate or backoff"),
                }
            }
            "strategy" => self.sync.strategy = Strategy::parse(value)?,
            other => bail!("unknown parameter {other}"),
        }
        self.check()
    }

    /// Moves the heal after the first partition to `secs` after it, and
    /// lengthens the run to keep the settling time after the heal.
    fn set_partition_length(&mut self, secs: f64) -> anyhow::Result<()> {
        let Some(start) = self.faults.iter().find_map(|f| match f {
            Fault::Partition { at_s, .. } => Some(*at_s),
            _ => None,
        }) else {
            bail!("partition_secs: the scenario has no partition");
        };
        let heal = self.faults.iter_mut().find_map(|f| match f {
            Fault::Heal { at_s } if *at_s >= start => Some(at_s),
            _ => None,
        });
        // Keep the settling time after the heal that the scenario had.
        let old_heal = heal.as_ref().map_or(self.duration_s, |at_s| **at_s);
        let settle = (self.duration_s - old_heal).max(0.0);
        match heal {
            Some(at_s) => *at_s = start + secs,
            None => self.faults.push(Fault::Heal { at_s: start + secs }),
        }
        self.duration_s = self.duration_s.max(start + secs + settle);
        Ok(())
    }
}

impl Fault {
    /// The nodes a fault names.
    pub fn nodes(&self) -> Vec<usize> {
        match self {
            Fault::Partition { groups, .. } => groups.iter().flatten().copied().collect(),
            Fault::Hold { a, b, .. } | Fault::Release { a, b, .. } | Fault::Flap { a, b, .. } => {
                vec![*a, *b]
            }
            Fault::Crash { node, .. } | Fault::Restart { node, .. } => vec![*node],
            Fault::Heal { .. } | Fault::DropInFlight { .. } | Fault::ClientsOffline { .. } => {
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scenario;

    const BASE: &str = include_str!("../scenarios/three-node-partition.toml");

    #[test]
    fn every_shipped_scenario_passes_the_checks() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap();
                seen += 1;
            }
        }
        assert!(seen >= 5, "{seen} scenarios");
    }

    #[test]
    fn links_and_rates_out_of_range_are_refused() {
        let base = Scenario::parse(BASE).unwrap();
        let refused = |edit: &dyn Fn(&mut Scenario)| {
            let mut s = base.clone();
            edit(&mut s);
            s.check().unwrap_err().to_string()
        };

        assert!(refused(&|s| s.links.inter_region.loss = 2.0).contains("loss 2"));
        assert!(refused(&|s| s.links.intra_region.loss = -0.1).contains("loss -0.1"));
        assert!(refused(&|s| s.links.access.loss = 1.0).contains("below 1"));
        assert!(refused(&|s| s.links.access.latency_ms = -5.0).contains("links.access"));
        assert!(refused(&|s| s.links.inter_region.jitter_ms = f64::NAN).contains("jitter"));
        assert!(refused(&|s| s.votes.rate = vec![[0.0, -40.0]]).contains("votes.rate"));
        let mut fine = base.clone();
        fine.links.inter_region.loss = 0.05;
        assert!(fine.check().is_ok());
    }
}
