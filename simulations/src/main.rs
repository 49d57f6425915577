//! `votemesh-sim`: run, sweep and compare simulated votemesh deployments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sim::{
    compare, failure_report, sweep, write_outputs, Grid, Injection, Options, Scenario, Sim, Summary,
};

#[derive(Parser)]
#[command(
    version,
    about = "Deterministic simulator of votemesh replication under faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario, check the invariants, write outputs.
    Run {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// RNG seed (overrides the scenario's).
        #[arg(long, env = "VOTEMESH_SIM_SEED")]
        seed: Option<u64>,
        /// Output directory.
        #[arg(long, default_value = "sim-out")]
        out: PathBuf,
        /// Anti-entropy strategy (overrides the scenario's): votemesh, naive,
        /// and with the `baselines` feature automerge or yrs.
        #[arg(long)]
        strategy: Option<String>,
        /// Break an invariant on purpose, to see the failure report.
        #[arg(long, value_enum)]
        fault_injection: Option<InjectionArg>,
    },
    /// Run a scenario over seeds and a parameter grid on every core.
    Sweep {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// Seeds per grid cell (the scenario's seed, then the next ones).
        #[arg(long, default_value_t = 8)]
        seeds: u64,
        /// `key=v1,v2,...`; keys: partition_secs, loss, offline_share,
        /// reconnect, sync_interval, push_interval_ms, latency_ms, scale, strategy.
        #[arg(long)]
        grid: Vec<String>,
        /// Worker threads (default: available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Output directory.
        #[arg(long, default_value = "sim-sweep")]
        out: PathBuf,
    },
    /// Run a scenario under each sync strategy with the same seed.
    Compare {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// RNG seed (overrides the scenario's).
        #[arg(long, env = "VOTEMESH_SIM_SEED")]
        seed: Option<u64>,
        /// Output directory.
        #[arg(long, default_value = "sim-compare")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum InjectionArg {
    /// Node 0 acks one vote without storing it.
    LoseAckedVote,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
            strategy,
            fault_injection,
        } => run_one(&scenario, seed, strategy.as_deref(), &out, fault_injection),
        Command::Sweep {
            scenario,
            seeds,
            grid,
            threads,
            out,
        } => {
            let scenario = Scenario::load(&scenario)?;
            let grid = Grid::parse(&grid)?;
            if seeds == 0 || threads == Some(0) {
                anyhow::bail!("--seeds and --threads must be at least 1");
            }
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let total = grid.cells().len() as u64 * seeds;
            let bar = bar(total, "{bar:40} {pos}/{len} runs, {elapsed} ({eta} left)");
            let started = Instant::now();
            let cells = sweep(&scenario, seeds, &grid, threads, &out, &|| bar.inc(1))?;
            bar.finish_and_clear();
            print!("{}", sim_table(&scenario, seeds, &cells));
            println!(
                "{} runs on {threads} threads in {:.1}s; outputs in {}",
                total,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            let lost: u64 = cells.iter().map(|c| c.lost).sum();
            let failed = cells.iter().any(|c| c.passed < c.runs);
            Ok(if lost > 0 || failed {
                eprintln!("some runs broke an invariant: see sweep.csv for their seeds");
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Compare {
            scenario,
            seed,
            out,
        } => {
            let scenario = Scenario::load(&scenario)?;
            let seed = seed.unwrap_or(scenario.seed);
            let results = compare(&scenario, seed, &out)?;
            print!("{}", std::fs::read_to_string(out.join("compare.md"))?);
            println!("outputs in {}", out.display());
            let passed = results.iter().all(|r| r.summary.passed);
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn sim_table(scenario: &Scenario, seeds: u64, cells: &[sim::CellResult]) -> String {
    sim::sweep_table(scenario, seeds, cells)
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn run_one(
    path: &std::path::Path,
    seed: Option<u64>,
    strategy: Option<&str>,
    out: &std::path::Path,
    injection: Option<InjectionArg>,
) -> anyhow::Result<ExitCode> {
    let mut scenario = Scenario::load(path)?;
    if let Some(strategy) = strategy {
        scenario.set("strategy", strategy)?;
    }
    let options = Options {
        seed,
        injection: injection.map(|InjectionArg::LoseAckedVote| Injection::LoseAckedVote),
    };
    let seed = options.seed.unwrap_or(scenario.seed);
    eprintln!(
        "scenario {} ({} nodes), seed {seed}",
        scenario.name,
        scenario.nodes()
    );

    let end_ms = (scenario.duration_s * 1e3) as u64;
    let bar = bar(
        end_ms / 1000,
        "{bar:40} {pos}/{len} simulated s, {elapsed} ({eta} left)",
    );
    let started = Instant::now();
    let outcome = Sim::new(scenario, &options).run(&mut |now| bar.set_position(now / 1_000_000));
    let wall = started.elapsed();
    bar.finish_and_clear();

    let summary = Summary::new(&outcome, wall);
    let figures = write_outputs(out, &outcome, &summary).context("writing outputs")?;
    print_summary(&summary);
    println!(
        "outputs in {}: summary.json, timeseries.csv, votes.csv, report.md, {}",
        out.display(),
        figures.join(", ")
    );

    if !summary.passed {
        eprint!("{}", failure_report(&outcome));
        let mut flag = String::new();
        if let Some(strategy) = strategy {
            flag.push_str(&format!(" --strategy {strategy}"));
        }
        if injection.is_some() {
            flag.push_str(" --fault-injection lose-acked-vote");
        }
        eprintln!(
            "rerun exactly: VOTEMESH_SIM_SEED={seed} votemesh-sim run {}{flag}",
            path.display()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &Summary) {
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    println!(
        "scenario {} strategy {} seed {}",
        s.scenario, s.strategy, s.seed
    );
    println!("trace {} ({} events)", s.trace_hash, s.trace_events);
    println!(
        "votes: {} simulated (x{} = {} represented), lost {}, stale {}, duplicated {}",
        s.simulated_votes, s.fidelity.scale, s.represented_votes, s.lost, s.stale, s.duplicated
    );
    println!(
        "convergence after last heal {} s, quiescent at {} s",
        f(s.convergence_after_last_heal_s),
        f(s.quiescent_at_s)
    );
    println!(
        "node-to-node: {} messages, {} bytes, {:.2} messages/vote, {:.0} bytes/vote (push {:.0}, sync {:.0})",
        s.messages_total, s.bytes_total, s.messages_per_vote, s.bytes_per_vote, s.push_bytes_per_vote, s.sync_bytes_per_vote
    );
    println!(
        "cast to ack p50/p99 {}/{} ms; cast to everywhere p50/p99 {}/{} ms",
        f(s.latency.cast_to_ack_ms.p50),
        f(s.latency.cast_to_ack_ms.p99),
        f(s.latency.cast_to_everywhere_ms.p50),
        f(s.latency.cast_to_everywhere_ms.p99)
    );
    println!(
        "wall {:.2}s: {:.0} simulated votes/s ({:.0} represented votes/s), peak RSS {} MiB",
        s.perf.wall_s,
        s.perf.simulated_votes_per_wall_s,
        s.perf.represented_votes_per_wall_s,
        f(s.perf.max_rss_mib)
    );
    if s.scenario.is_empty() {
        return;
    }
    if s.fidelity.scale > 1 {
        println!("scaled run: see summary.json fidelity for which figures are exact and which are modelled");
    }
    println!(
        "invariants: {}",
        if s.passed { "all held" } else { "VIOLATED" }
    );
}
