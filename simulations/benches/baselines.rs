//! Reconciliation cost against automerge and yrs on large one-sided
//! differences: `cargo bench -p votemesh-sim --features baselines --bench baselines`.
//!
//! One replica holds `N` entries (env `VOTEMESH_BASELINE_N`, default
//! 1,000,000), the other lacks a share of them (0.01 %, 1 %, 10 %, 50 %; env
//! `VOTEMESH_BASELINE_SHARES`, comma-separated percentages, to pick others).
//! Each strategy carries the same entries: votemesh's reconciliation
//! (`crdt::sync`), naive full-state exchange, automerge's sync protocol over
//! a document holding the entries, and a yrs update against the lacking
//! side's state vector. The baselines store the entries as a node would: one
//! automerge change, one yrs transaction, per group commit of
//! `VOTEMESH_BASELINE_GROUP` entries (default 1,000).
//!
//! Prints one table: bytes, bytes per missing entry, the ratio to the missing
//! entries' own encoded bytes (the minimum any strategy must send), messages,
//! one-way flights, the wall time to build the two replicas and the wall time
//! of the reconciliation itself (in process: encode, decode, apply; no
//! network).

use std::time::Instant;

use sim::{heal_comparison, simulated_entry_bytes, Grouping, HealCase, Link};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str| std::env::var(name).ok();
    let n: usize = env("VOTEMESH_BASELINE_N")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let group: usize = env("VOTEMESH_BASELINE_GROUP")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let shares: Vec<f64> = env("VOTEMESH_BASELINE_SHARES")
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0.01, 1.0, 10.0, 50.0]);
    let wan = Link {
        latency_ms: 20.0,
        jitter_ms: 0.0,
        loss: 0.0,
        bandwidth_mbps: 0.0,
    };
    let entry = simulated_entry_bytes() as f64;
    println!(
        "{n} entries; baselines write one change / transaction per {group} entries; \
         an entry is {entry} bytes encoded"
    );
    println!("| entries | missing | strategy | bytes | bytes / missing entry | x entries' bytes | messages | flights | build s | reconcile s | converged |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let started = Instant::now();
    for share in shares {
        let missing = ((n as f64 * share / 100.0).round() as usize).clamp(1, n);
        let case = HealCase {
            common: n - missing,
            only_a: missing,
            only_b: 0,
            source: "bench",
        };
        for r in heal_comparison(case, wan, Grouping { group }) {
            println!(
                "| {n} | {missing} | {} | {} | {:.1} | {:.3} | {} | {} | {:.2} | {:.3} | {} |",
                r.strategy,
                r.bytes,
                r.bytes_per_difference,
                r.bytes_per_difference / entry,
                r.messages,
                r.flights,
                r.setup_s,
                r.reconcile_s,
                r.converged
            );
        }
    }
    println!(
        "(x entries' bytes: bytes over missing x {entry}; build s: both replicas written, \
         not part of the reconciliation; total wall {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}
