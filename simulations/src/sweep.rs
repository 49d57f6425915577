//! Many runs: a scenario over seeds and a parameter grid, on every core; and
//! one scenario under each sync strategy.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::baseline::{heal_comparison, Grouping, HealCase, HealResult};
use crate::plot::bars_figure;
use crate::report::Summary;
use crate::scenario::{Scenario, Strategy};
use crate::sim::{Options, Sim};
use crate::stats::quantile;

/// A parameter grid: each key with the values to try.
#[derive(Debug, Clone, Default)]
pub struct Grid(pub Vec<(String, Vec<String>)>);

impl Grid {
    /// Parses `key=v1,v2,...` arguments.
    pub fn parse(args: &[String]) -> anyhow::Result<Grid> {
        let mut grid = Vec::new();
        for arg in args {
            let Some((key, values)) = arg.split_once('=') else {
                bail!("grid {arg:?}: expected key=v1,v2");
            };
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
            grid.push((key.trim().to_string(), values));
        }
        Ok(Grid(grid))
    }

    /// Every combination, as `(key, value)` lists, in a fixed order.
    pub fn cells(&self) -> Vec<Vec<(String, String)>> {
        let mut cells = vec![Vec::new()];
        for (key, values) in &self.0 {
            cells = cells
                .into_iter()
                .flat_map(|cell| {
                    values.iter().map(move |v| {
                        let mut next = cell.clone();
                        next.push((key.clone(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        cells
    }
}

/// Mean and spread of one metric over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 95th percentile.
    pub p95: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        Spread {
            mean,
            p5: quantile(&mut v, 0.05).unwrap_or(f64::NAN),
            p95: quantile(&mut v, 0.95).unwrap_or(f64::NAN),
        }
    }
}

/// One grid cell aggregated over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The parameters.
    pub params: Vec<(String, String)>,
    /// Runs.
    pub runs: usize,
    /// Runs where every invariant held.
    pub passed: usize,
    /// Acked votes lost, summed (must be 0).
    pub lost: u64,
    /// Convergence after the last heal, seconds.
    pub convergence_s: Spread,
    /// Bytes per vote.
    pub bytes_per_vote: Spread,
    /// Cast to ack, p99, ms.
    pub ack_p99_ms: Spread,
    /// Cast to everywhere, p99, ms.
    pub everywhere_p99_ms: Spread,
}

/// Runs `scenario` for `seeds` seeds in every cell of `grid` on `threads`
/// threads; writes `sweep.csv`, `sweep.json`, `sweep.md` and spread plots
/// into `out`. `progress` hears each finished run.
pub fn sweep(
    scenario: &Scenario,
    seeds: u64,
    grid: &Grid,
    threads: usize,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> anyhow::Result<Vec<CellResult>> {
    let cells = grid.cells();
    let mut jobs = Vec::new();
    for (c, cell) in cells.iter().enumerate() {
        let mut s = scenario.clone();
        for (key, value) in cell {
            s.set(key, value)
                .with_context(|| format!("grid cell {cell:?}"))?;
        }
        for i in 0..seeds {
            jobs.push((c, s.clone(), scenario.seed.wrapping_add(i)));
        }
    }

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(usize, Summary)>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some((cell, s, seed)) = jobs.get(j) else {
                    break;
                };
                let started = Instant::now();
                let options = Options {
                    seed: Some(*seed),
                    injection: None,
                };
                let outcome = Sim::new(s.clone(), &options).run(&mut |_| {});
                let summary = Summary::new(&outcome, started.elapsed());
                results.lock().expect("no thread panics holding it")[j] = Some((*cell, summary));
                progress();
            });
        }
    });
    let results: Vec<(usize, Summary)> = results
        .into_inner()
        .expect("no thread panicked")
        .into_iter()
        .flatten()
        .collect();

    std::fs::create_dir_all(out)?;
    let mut csv = String::from("cell,params,seed,passed,lost,convergence_s,bytes_per_vote,ack_p99_ms,everywhere_p99_ms,wall_s\n");
    for (cell, s) in &results {
        let _ = writeln!(
            csv,
            "{cell},{},{},{},{},{},{:.1},{},{},{:.3}",
            describe(&cells[*cell]).replace(',', ";"),
            s.seed,
            s.passed,
            s.lost,
            s.convergence_after_last_heal_s
                .map_or(String::new(), |x| format!("{x:.3}")),
            s.bytes_per_vote,
            s.latency
                .cast_to_ack_ms
                .p99
                .map_or(String::new(), |x| format!("{x:.1}")),
            s.latency
                .cast_to_everywhere_ms
                .p99
                .map_or(String::new(), |x| format!("{x:.1}")),
            s.perf.wall_s
        );
    }
    std::fs::write(out.join("sweep.csv"), csv)?;

    let aggregated: Vec<CellResult> = cells
        .iter()
        .enumerate()
        .map(|(c, params)| {
            let runs: Vec<&Summary> = results.iter().filter(|r| r.0 == c).map(|r| &r.1).collect();
            let metric = |f: &dyn Fn(&Summary) -> Option<f64>| {
                Spread::of(&runs.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
            };
            CellResult {
                params: params.clone(),
                runs: runs.len(),
                passed: runs.iter().filter(|s| s.passed).count(),
                lost: runs.iter().map(|s| s.lost).sum(),
                convergence_s: metric(&|s| s.convergence_after_last_heal_s),
                bytes_per_vote: metric(&|s| Some(s.bytes_per_vote)),
                ack_p99_ms: metric(&|s| s.latency.cast_to_ack_ms.p99),
                everywhere_p99_ms: metric(&|s| s.latency.cast_to_everywhere_ms.p99),
            }
        })
        .collect();
    std::fs::write(
        out.join("sweep.json"),
        serde_json::to_string_pretty(&aggregated)? + "\n",
    )?;
    std::fs::write(
        out.join("sweep.md"),
        sweep_table(scenario, seeds, &aggregated),
    )?;

    let bars = |f: &dyn Fn(&CellResult) -> &Spread| -> Vec<(String, f64, f64, f64)> {
        aggregated
            .iter()
            .map(|c| {
                let s = f(c);
                let values: Vec<&str> = c.params.iter().map(|(_, v)| v.as_str()).collect();
                (values.join(" / "), s.mean, s.p5, s.p95)
            })
            .collect()
    };
    let keys: Vec<&str> = grid.0.iter().map(|(k, _)| k.as_str()).collect();
    let x_desc = keys.join(" / ");
    let title = format!(
        "{}: convergence after last heal over {seeds} seeds (mean, p5-p95)",
        scenario.name
    );
    bars_figure(
        out,
        "sweep_convergence",
        &title,
        (x_desc.as_str(), "seconds"),
        &bars(&|c| &c.convergence_s),
    )?;
    let title = format!(
        "{}: bytes per vote over {seeds} seeds (mean, p5-p95)",
        scenario.name
    );
    bars_figure(
        out,
        "sweep_bytes_per_vote",
        &title,
        (x_desc.as_str(), "bytes per vote"),
        &bars(&|c| &c.bytes_per_vote),
    )?;
    Ok(aggregated)
}

fn heal_table(case: &HealCase, heal: &[HealResult], group: usize) -> String {
    let mut md = format!(
        "\n## Heal reconciliation\n\n\
         Two replicas as the first partition left them: {} entries in common, {} only on the \
         cut-off side, {} only on the rest ({}). Each strategy reconciles them once, outside \
         the event simulation; automerge and yrs hold their entries as one change \
         (transaction) per {group} entries, the simulated nodes' mean group commit. Bytes and \
         messages are the real encodings, the time is modelled from flights and the WAN link.\n\n\
         | strategy | converged | messages | flights | bytes | bytes/differing entry | modelled time, s | replica bytes |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        case.common, case.only_a, case.only_b, case.source
    );
    for r in heal {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.1} | {:.3} | {} |",
            r.strategy,
            r.converged,
            r.messages,
            r.flights,
            r.bytes,
            r.bytes_per_difference,
            r.convergence_s,
            r.replica_bytes
        );
    }
    md
}

fn describe(params: &[(String, String)]) -> String {
    if params.is_empty() {
        return "base".into();
    }
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sweep as a Markdown table.
pub fn sweep_table(scenario: &Scenario, seeds: u64, cells: &[CellResult]) -> String {
    let mut md = format!(
        "# Sweep of {} over {seeds} seeds\n\nmean [p5, p95] per cell.\n\n\
         | params | passed | lost | convergence after heal, s | bytes/vote | ack p99, ms | everywhere p99, ms |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        scenario.name
    );
    let f = |s: &Spread, digits: usize| {
        format!("{:.d$} [{:.d$}, {:.d$}]", s.mean, s.p5, s.p95, d = digits)
    };
    for c in cells {
        let _ = writeln!(
            md,
            "| {} | {}/{} | {} | {} | {} | {} | {} |",
            describe(&c.params),
            c.passed,
            c.runs,
            c.lost,
            f(&c.convergence_s, 2),
            f(&c.bytes_per_vote, 0),
            f(&c.ack_p99_ms, 0),
            f(&c.everywhere_p99_ms, 0)
        );
    }
    md
}

/// One strategy's figures in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyResult {
    /// The strategy.
    pub strategy: String,
    /// The run's summary.
    pub summary: Summary,
}

/// Runs `scenario` once per strategy this build has (votemesh and naive;
/// automerge and yrs with the `baselines` feature) with the same seed;
/// writes each run's outputs under `out/STRATEGY/`, plus `compare.md`,
/// `compare.json` and the bytes-per-vote figure.
pub fn compare(scenario: &Scenario, seed: u64, out: &Path) -> anyhow::Result<Vec<StrategyResult>> {
    let mut results = Vec::new();
    let mut heal_case = None;
    for &strategy in Strategy::available() {
        let mut s = scenario.clone();
        s.sync.strategy = strategy;
        let started = Instant::now();
        let options = Options {
            seed: Some(seed),
            injection: None,
        };
        let outcome = Sim::new(s, &options).run(&mut |_| {});
        let summary = Summary::new(&outcome, started.elapsed());
        if strategy == Strategy::Votemesh {
            heal_case = Some(HealCase::from_outcome(&outcome));
        }
        crate::report::write_outputs(&out.join(strategy.name()), &outcome, &summary)?;
        results.push(StrategyResult {
            strategy: strategy.name().into(),
            summary,
        });
    }

    let mut md = format!(
        "# {}: sync strategies (seed {seed})\n\n\
         One scenario, one seed: every strategy sees the same votes at the same times, the \
         same links, losses and faults. votemesh and naive push new client entries as \
         `Entries` messages and differ in the periodic and after-fault sessions; automerge \
         and yrs nodes keep a document per poll, write accepted entries as one change \
         (transaction) per group commit (each push flush, and before each session step), push \
         those changes (updates) and run automerge's sync protocol (the yrs state-vector \
         exchange) in the sessions.\n\n## Full simulation\n\n\
         | strategy | passed | messages | bytes | bytes/vote | push bytes/vote | sync bytes/vote | convergence after last clearing, s | quiescent at, s | everywhere p99, ms | replica at end, bytes (mean) | group commits | wall s |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        scenario.name
    );
    let opt = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.3}"));
    for r in &results {
        let s = &r.summary;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.0} | {} | {:.1} |",
            r.strategy,
            s.passed,
            s.messages_total,
            s.bytes_total,
            s.bytes_per_vote,
            s.push_bytes_per_vote,
            s.sync_bytes_per_vote,
            opt(s.convergence_after_last_heal_s),
            opt(s.quiescent_at_s),
            opt(s.latency.cast_to_everywhere_ms.p99),
            s.memory.serialized_bytes_mean,
            s.counters.group_commits,
            s.perf.wall_s
        );
    }
    md.push_str("\nReplica at end: one live node's copy of the poll at the end of the run, mean over nodes:\n\n");
    for r in &results {
        let m = &r.summary.memory;
        let _ = writeln!(
            md,
            "- {}: {:.0} bytes for {:.0} entries ({:.0} bytes per entry); measured as {}",
            r.strategy,
            m.serialized_bytes_mean,
            m.entries_mean,
            m.serialized_bytes_mean / m.entries_mean.max(1.0),
            m.measured
        );
    }
    if !Strategy::available().contains(&Strategy::Automerge) {
        md.push_str(
            "\nautomerge and yrs rows need the `baselines` feature: \
             `cargo build --release -p votemesh-sim --features baselines`.\n",
        );
    }
    // The heal reconciliation writes the baselines' entries in groups of
    // the size their simulated nodes committed on average.
    let group = results
        .iter()
        .filter(|r| r.summary.counters.group_commits > 0)
        .map(|r| {
            let accepted = r.summary.simulated_votes as f64;
            (accepted / r.summary.counters.group_commits as f64).round() as usize
        })
        .next()
        .unwrap_or(1)
        .max(1);
    let case = heal_case.expect("the votemesh run ran");
    let heal = heal_comparison(case, scenario.links.inter_region, Grouping { group });
    md.push_str(&heal_table(&case, &heal, group));
    std::fs::write(out.join("compare.md"), md)?;
    let json = serde_json::json!({ "runs": results, "heal_case": case, "heal": heal });
    std::fs::write(
        out.join("compare.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    let bars: Vec<(String, f64, f64, f64)> = results
        .iter()
        .flat_map(|r| {
            [
                (
                    format!("{} total", r.strategy),
                    r.summary.bytes_per_vote,
                    0.0,
                    0.0,
                ),
                (
                    format!("{} sync", r.strategy),
                    r.summary.sync_bytes_per_vote,
                    0.0,
                    0.0,
                ),
            ]
        })
        .collect();
    let heal_bars: Vec<(String, f64, f64, f64)> = heal
        .iter()
        .map(|r| (r.strategy.clone(), r.bytes_per_difference, 0.0, 0.0))
        .collect();
    let title = format!(
        "{}: heal reconciliation, bytes per differing entry",
        scenario.name
    );
    let axes = ("strategy", "bytes per differing entry");
    bars_figure(out, "heal_bytes_by_strategy", &title, axes, &heal_bars)?;
    let title = format!("{}: bytes per vote by strategy", scenario.name);
    bars_figure(
        out,
        "bytes_per_vote_by_strategy",
        &title,
        ("strategy", "bytes per vote"),
        &bars,
    )?;
    Ok(results)
}
