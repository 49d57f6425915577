//! What sync costs on 1,000,000-entry sets, as one table. Ignored by default;
//! run with
//! `cargo test --release -p votemesh-crdt --test sync_bytes -- --ignored --nocapture`.
//! `SYNC_BYTES_N` overrides the set size.
//!
//! The goal it asserts: all protocol bytes, both directions, are at most 1.5
//! times the bytes of the entries that had to move.

mod common;

use std::time::Instant;

use common::{state, sync, vote};
use crdt::Vote;

const MAX_RATIO: f64 = 1.5;

#[test]
#[ignore = "builds sets of a million entries; run in release"]
fn protocol_bytes_stay_within_one_and_a_half_times_the_missing_entries() {
    let n: usize = std::env::var("SYNC_BYTES_N").map_or(1_000_000, |v| v.parse().unwrap());
    let universe: Vec<Vote> = (0..(3 * n / 2) as u64).map(vote).collect();

    println!(
        "{:>9} {:>8} {:>12} {:>12} {:>12} {:>6} {:>6} {:>8} {:>8} {:>9}",
        "n",
        "missing",
        "shape",
        "entry_bytes",
        "proto_bytes",
        "ratio",
        "rtt",
        "messages",
        "symbols",
        "sync_ms"
    );
    let mut worst: f64 = 0.0;
    for fraction in [0.0001, 0.01, 0.1, 0.5] {
        let k = (n as f64 * fraction).round() as usize;
        for shape in ["initiator", "responder", "both"] {
            // "both": each side lacks k of the other's n entries.
            let (a, b) = match shape {
                "initiator" => (&universe[k..n], &universe[..n]),
                "responder" => (&universe[..n], &universe[k..n]),
                _ => (&universe[..n], &universe[k..n + k]),
            };
            let mut a = state(a);
            let mut b = state(b);

            let started = Instant::now();
            let run = sync(&mut a, &mut b);
            let elapsed = started.elapsed();

            let moved = run.to_initiator.len() + run.to_responder.len();
            let expected = if shape == "both" { 2 * k } else { k };
            assert_eq!(moved, expected, "{shape} {fraction}");
            let entry_bytes: usize = run
                .to_initiator
                .iter()
                .chain(&run.to_responder)
                .map(|v| v.encoded().len())
                .sum();
            let ratio = run.bytes() as f64 / entry_bytes as f64;
            worst = worst.max(ratio);
            println!(
                "{:>9} {:>7}% {:>12} {:>12} {:>12} {:>6.3} {:>6} {:>8} {:>8} {:>9}",
                n,
                fraction * 100.0,
                shape,
                entry_bytes,
                run.bytes(),
                ratio,
                run.round_trips(),
                run.messages(),
                run.initiator.stats.symbols_received,
                elapsed.as_millis()
            );
        }
    }
    println!("worst ratio {worst:.3} (limit {MAX_RATIO})");
    assert!(worst <= MAX_RATIO, "ratio {worst:.3} exceeds {MAX_RATIO}");
}
