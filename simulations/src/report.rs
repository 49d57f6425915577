//! What a run writes: the JSON summary, CSV time series, plots and a short
//! Markdown report; and the failure report printed when an invariant breaks.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::plot;
use crate::queue::Micros;
use crate::scenario::Fault;
use crate::sim::Outcome;
use crate::stats::{quantile, Counters, Memory};

/// Quantiles of one latency, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Quantiles {
    fn of(mut values: Vec<f64>) -> Quantiles {
        Quantiles {
            count: values.len(),
            p50: quantile(&mut values, 0.5),
            p90: quantile(&mut values, 0.9),
            p99: quantile(&mut values, 0.99),
            max: quantile(&mut values, 1.0),
        }
    }
}

/// Latencies, milliseconds of simulated time.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// From cast to the client's ack.
    pub cast_to_ack_ms: Quantiles,
    /// From cast to the first moment every node held it.
    pub cast_to_everywhere_ms: Quantiles,
}

/// Which figures are exact and which are modelled.
#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    /// Real votes each simulated vote stands for.
    pub scale: u64,
    /// Quantities computed by the real code on the simulated entries.
    pub exact: Vec<&'static str>,
    /// Quantities that depend on the model or the scale.
    pub modelled: Vec<&'static str>,
}

/// Wall-clock cost of the run (not part of the trace).
#[derive(Debug, Clone, Serialize)]
pub struct Perf {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Simulated votes per wall second.
    pub simulated_votes_per_wall_s: f64,
    /// Real votes represented per wall second (simulated times scale).
    pub represented_votes_per_wall_s: f64,
    /// Events per wall second.
    pub events_per_wall_s: f64,
    /// Peak resident memory of the process so far, MiB (Linux only).
    pub max_rss_mib: Option<f64>,
}

/// The JSON summary of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Sync strategy.
    pub strategy: String,
    /// The seed.
    pub seed: u64,
    /// SHA-256 over the event trace: equal for equal seed and scenario.
    pub trace_hash: String,
    /// Trace records.
    pub trace_events: u64,
    /// Nodes.
    pub nodes: usize,
    /// Simulated time, seconds.
    pub duration_s: f64,
    /// Votes simulated one by one.
    pub simulated_votes: u64,
    /// Real votes they stand for.
    pub represented_votes: u64,
    /// Seconds from the last fault clearing (heal, restart, release, link
    /// up, clients back) until every vote accepted before it had been on
    /// every node; `null` without faults or if that never happened.
    pub convergence_after_last_heal_s: Option<f64>,
    /// The same for each clearing, in order.
    pub convergence_after_each_clearing_s: Vec<Option<f64>>,
    /// When every node last became complete and stayed so, seconds.
    pub quiescent_at_s: Option<f64>,
    /// Node-to-node messages, push and sync.
    pub messages_total: u64,
    /// Node-to-node bytes, push and sync, encoded.
    pub bytes_total: u64,
    /// Messages per accepted vote.
    pub messages_per_vote: f64,
    /// Bytes per accepted vote.
    pub bytes_per_vote: f64,
    /// Push bytes per accepted vote.
    pub push_bytes_per_vote: f64,
    /// Sync session bytes per accepted vote.
    pub sync_bytes_per_vote: f64,
    /// Latency quantiles.
    pub latency: Latency,
    /// Acked votes lost (must be 0).
    pub lost: u64,
    /// Acked votes missing from some live node at the end.
    pub stale: u64,
    /// Client requests for a vote already held, acked again.
    pub duplicated: u64,
    /// All counters.
    pub counters: Counters,
    /// Whether every invariant held.
    pub passed: bool,
    /// Number of violations.
    pub violations_total: u64,
    /// The first violations.
    pub violations: Vec<String>,
    /// What is exact and what is modelled.
    pub fidelity: Fidelity,
    /// Wall-clock cost.
    pub perf: Perf,
    /// The replicas' size at the end.
    pub memory: Memory,
}

impl Summary {
    /// Summarises a run that took `wall` on the wall clock.
    pub fn new(outcome: &Outcome, wall: Duration) -> Summary {
        let c = &outcome.counters;
        let s = &outcome.scenario;
        let accepted = outcome
            .votes
            .iter()
            .filter(|v| v.accepted.is_some())
            .count() as f64;
        let per_vote = |x: u64| {
            if accepted > 0.0 {
                x as f64 / accepted
            } else {
                0.0
            }
        };
        let ms = |a: Micros, b: Micros| b.saturating_sub(a) as f64 / 1e3;

        let to_ack = outcome
            .votes
            .iter()
            .filter_map(|v| v.acked.map(|t| ms(v.cast, t)))
            .collect();
        let to_everywhere = outcome
            .votes
            .iter()
            .filter_map(|v| v.first_everywhere.map(|t| ms(v.cast, t)))
            .collect();
        let each: Vec<Option<f64>> = outcome
            .clearings
            .iter()
            .zip(&outcome.converged_after)
            .map(|(&c, done)| done.map(|t| (t - c) as f64 / 1e6))
            .collect();
        let wall_s = wall.as_secs_f64().max(1e-9);

        Summary {
            scenario: s.name.clone(),
            strategy: s.sync.strategy.name().into(),
            seed: outcome.seed,
            trace_hash: outcome.trace_hash.clone(),
            trace_events: outcome.trace_events,
            nodes: s.nodes(),
            duration_s: s.duration_s,
            simulated_votes: c.cast,
            represented_votes: c.cast * s.votes.scale,
            convergence_after_last_heal_s: each.last().copied().flatten(),
            convergence_after_each_clearing_s: each,
            quiescent_at_s: outcome.quiescent_at.map(|t| t as f64 / 1e6),
            messages_total: c.messages,
            bytes_total: c.bytes,
            messages_per_vote: per_vote(c.messages),
            bytes_per_vote: per_vote(c.bytes),
            push_bytes_per_vote: per_vote(c.push_bytes),
            sync_bytes_per_vote: per_vote(c.sync_bytes),
            latency: Latency {
                cast_to_ack_ms: Quantiles::of(to_ack),
                cast_to_everywhere_ms: Quantiles::of(to_everywhere),
            },
            lost: c.lost,
            stale: c.stale,
            duplicated: c.duplicate_requests,
            counters: c.clone(),
            passed: outcome.check.passed(),
            violations_total: outcome.check.total(),
            violations: outcome
                .check
                .violations()
                .iter()
                .take(20)
                .map(ToString::to_string)
                .collect(),
            fidelity: fidelity(s.votes.scale),
            perf: Perf {
                wall_s,
                simulated_votes_per_wall_s: c.cast as f64 / wall_s,
                represented_votes_per_wall_s: (c.cast * s.votes.scale) as f64 / wall_s,
                events_per_wall_s: outcome.events as f64 / wall_s,
                max_rss_mib: max_rss_mib(),
            },
            memory: outcome.memory.clone(),
        }
    }
}

fn fidelity(scale: u64) -> Fidelity {
    let mut modelled = vec![
        "link latency, jitter, loss and bandwidth (scenario parameters, not measured)",
        "node ingest capacity and durability: an ack means the entry is durable on that node; \
         entries learned from peers are memory-only and lost in a crash",
        "signatures: simulated votes carry unchecked pseudo-random signatures and skip admission",
        "client and relay traffic: latency and loss only, not encoded bytes",
    ];
    if scale > 1 {
        modelled.extend([
            "each simulated vote stands for `scale` real votes: real entry bytes are about \
             scale times the simulated ones; coded symbols grow with the difference, so real \
             sync bytes lie between 1x and scale x the simulated figure",
            "set sizes and therefore per-session CPU are scale times smaller than in reality",
        ]);
    }
    Fidelity {
        scale,
        exact: vec![
            "messages and bytes of crdt::sync sessions and pushes over the simulated entries \
             (real encodings, real state machines)",
            "convergence times and divergence over time in simulated time, given the link model",
            "lost, stale and duplicated counts, digests and tallies (real crdt::PollState)",
        ],
        modelled,
    }
}

fn max_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A fault window for plots: label, start and end, seconds.
pub(crate) fn fault_windows(faults: &[Fault], end_s: f64) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let next = |pred: &dyn Fn(&Fault) -> Option<f64>, after: f64| {
        faults
            .iter()
            .filter_map(pred)
            .filter(|&t| t >= after)
            .fold(end_s, f64::min)
    };
    for fault in faults {
        match *fault {
            Fault::Partition { at_s, .. } => {
                let heal = next(
                    &|f| match f {
                        Fault::Heal { at_s } => Some(*at_s),
                        _ => None,
                    },
                    at_s,
                );
                out.push(("partition".into(), at_s, heal));
            }
            Fault::Hold { at_s, a, b } => {
                let release = next(
                    &|f| match f {
                        Fault::Release { at_s, a: x, b: y } if (*x, *y) == (a, b) => Some(*at_s),
                        _ => None,
                    },
                    at_s,
                );
                out.push((format!("hold {a}-{b}"), at_s, release));
            }
            Fault::Crash { at_s, node } => {
                let restart = next(
                    &|f| match f {
                        Fault::Restart { at_s, node: n } if *n == node => Some(*at_s),
                        _ => None,
                    },
                    at_s,
                );
                out.push((format!("node {node} down"), at_s, restart));
            }
            Fault::Flap {
                a,
                b,
                from_s,
                until_s,
                ..
            } => out.push((format!("flapping {a}-{b}"), from_s, until_s)),
            Fault::ClientsOffline { at_s, until_s } => {
                out.push(("clients offline".into(), at_s, until_s))
            }
            Fault::DropInFlight { at_s } => out.push(("drop in flight".into(), at_s, at_s)),
            Fault::Heal { .. } | Fault::Release { .. } | Fault::Restart { .. } => {}
        }
    }
    out
}

/// Writes `summary.json`, `timeseries.csv`, `votes.csv`, the plots and
/// `report.md` into `dir`. Returns the figure files written.
pub fn write_outputs(
    dir: &Path,
    outcome: &Outcome,
    summary: &Summary,
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;

    let mut csv = String::from("time_s,node,region,up,entries,missing,bytes_sent,messages_sent\n");
    for s in &outcome.samples {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{},{},{},{}",
            s.at as f64 / 1e6,
            s.node,
            s.region,
            u8::from(s.up),
            s.entries,
            s.missing,
            s.bytes_sent,
            s.messages_sent
        );
    }
    std::fs::write(dir.join("timeseries.csv"), csv)?;

    let opt = |t: Option<Micros>| t.map_or(String::new(), |t| format!("{:.6}", t as f64 / 1e6));
    let mut votes = String::from(
        "vote,cast_s,accepted_s,acked_s,acked_by,first_everywhere_s,last_everywhere_s\n",
    );
    for (i, v) in outcome.votes.iter().enumerate() {
        let _ = writeln!(
            votes,
            "{i},{:.6},{},{},{},{},{}",
            v.cast as f64 / 1e6,
            opt(v.accepted),
            opt(v.acked),
            v.acked_by,
            opt(v.first_everywhere),
            opt(v.everywhere)
        );
    }
    std::fs::write(dir.join("votes.csv"), votes)?;

    let figures = plot::run_figures(dir, outcome, summary)?;
    std::fs::write(dir.join("report.md"), markdown(outcome, summary, &figures))?;
    Ok(figures)
}

fn markdown(outcome: &Outcome, s: &Summary, figures: &[String]) -> String {
    let mut md = String::new();
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.1}"));
    let _ = writeln!(md, "# {} (seed {})\n", s.scenario, s.seed);
    let _ = writeln!(md, "{}\n", outcome.scenario.description);
    let verdict = if s.passed {
        "all invariants held"
    } else {
        "INVARIANTS VIOLATED"
    };
    let _ = writeln!(md, "**{verdict}**; trace hash `{}`.\n", s.trace_hash);
    let _ = writeln!(md, "| figure | value |\n| --- | --- |");
    let rows = [
        ("nodes", s.nodes.to_string()),
        ("strategy", s.strategy.clone()),
        (
            "simulated votes (x scale)",
            format!("{} (x{})", s.simulated_votes, s.fidelity.scale),
        ),
        (
            "convergence after last heal, s",
            f(s.convergence_after_last_heal_s),
        ),
        ("quiescent at, s", f(s.quiescent_at_s)),
        ("messages per vote", format!("{:.2}", s.messages_per_vote)),
        (
            "bytes per vote (push + sync)",
            format!(
                "{:.0} ({:.0} + {:.0})",
                s.bytes_per_vote, s.push_bytes_per_vote, s.sync_bytes_per_vote
            ),
        ),
        (
            "cast to ack p50 / p99, ms",
            format!(
                "{} / {}",
                f(s.latency.cast_to_ack_ms.p50),
                f(s.latency.cast_to_ack_ms.p99)
            ),
        ),
        (
            "cast to everywhere p50 / p99, ms",
            format!(
                "{} / {}",
                f(s.latency.cast_to_everywhere_ms.p50),
                f(s.latency.cast_to_everywhere_ms.p99)
            ),
        ),
        (
            "lost / stale / duplicated",
            format!("{} / {} / {}", s.lost, s.stale, s.duplicated),
        ),
        (
            "sessions: same / symbols / bulk / fallback",
            format!(
                "{} / {} / {} / {}",
                s.counters.path_same,
                s.counters.path_symbols,
                s.counters.path_bulk,
                s.counters.path_fallback
            ),
        ),
        ("wall time, s", format!("{:.2}", s.perf.wall_s)),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "\n## Figures\n");
    for figure in figures.iter().filter(|f| f.ends_with(".png")) {
        let _ = writeln!(md, "- [{figure}]({figure})\n\n  ![{figure}]({figure})");
    }
    let _ = writeln!(
        md,
        "\nData: `summary.json`, `timeseries.csv` (per node per sample), `votes.csv` (per vote)."
    );
    let _ = writeln!(md, "\n## Fidelity\n\nExact:");
    for line in &s.fidelity.exact {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "\nModelled:");
    for line in &s.fidelity.modelled {
        let _ = writeln!(md, "- {line}");
    }
    if !s.passed {
        let _ = writeln!(md, "\n## Violations\n\n```\n{}```", failure_report(outcome));
    }
    md
}

/// The text printed when a run breaks an invariant: the seed, how to rerun
/// it, the violations and the trace of the events about the first lost
/// vote (its own events and every fault).
pub fn failure_report(outcome: &Outcome) -> String {
    let check = &outcome.check;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "invariant violated in scenario {:?} with seed {}",
        outcome.scenario.name, outcome.seed
    );
    let _ = writeln!(
        out,
        "reproduce: VOTEMESH_SIM_SEED={} votemesh-sim run SCENARIO",
        outcome.seed
    );
    let _ = writeln!(out, "{} violation(s); the first:", check.total());
    for v in check.violations().iter().take(10) {
        let _ = writeln!(out, "  - {v}");
    }
    if let Some(vote) = check.violations().iter().find_map(|v| v.vote()) {
        if check.trace_kept() {
            let _ = writeln!(out, "trace of vote {vote} (its events and every fault):");
            for record in check.excerpt() {
                let _ = writeln!(out, "  {record}");
            }
        } else {
            let _ = writeln!(
                out,
                "(trace not kept: set keep_trace = true to see vote {vote}'s events)"
            );
        }
    }
    out
}
