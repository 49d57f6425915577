//! Reconciliation cost against automerge and yrs on large one-sided
//! differences: `cargo bench -p votemesh-sim --features baselines --bench baselines`.
//!
//! One replica holds `N` entries (env `VOTEMESH_BASELINE_N`, default 100,000),
//! the other lacks a share of them (0.01 %, 1 %, 10 %, 50 %). Each strategy
//! carries the same entries: votemesh's reconciliation (`crdt::sync`), naive
//! full-state exchange, automerge's sync protocol over a document holding the
//! entries, and a yrs update against the lacking side's state vector. Prints
//! one table: bytes, bytes per missing entry against the entry's own size,
//! message flights and wall time.

use std::time::Instant;

use sim::{heal_comparison, HealCase, Link};

/// Encoded size of one simulated vote, for the "minimum" column.
const ENTRY_BYTES: f64 = 182.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("VOTEMESH_BASELINE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let wan = Link {
        latency_ms: 20.0,
        jitter_ms: 0.0,
        loss: 0.0,
        bandwidth_mbps: 0.0,
    };
    println!("| entries | missing | strategy | bytes | bytes / missing entry | x minimum | flights | wall s | converged |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for share in [0.0001, 0.01, 0.1, 0.5] {
        let missing = ((n as f64 * share).round() as usize).max(1);
        let case = HealCase {
            common: n - missing,
            only_a: missing,
            only_b: 0,
            source: "bench",
        };
        let started = Instant::now();
        let results = heal_comparison(case, wan);
        let wall = started.elapsed().as_secs_f64();
        for r in results {
            println!(
                "| {n} | {missing} | {} | {} | {:.0} | {:.2} | {} | {wall:.1} | {} |",
                r.strategy,
                r.bytes,
                r.bytes_per_difference,
                r.bytes_per_difference / ENTRY_BYTES,
                r.flights,
                r.converged
            );
        }
    }
    println!("(wall s is the time of all strategies together for that row; x minimum is bytes per missing entry over a vote's {ENTRY_BYTES} encoded bytes)");
}
