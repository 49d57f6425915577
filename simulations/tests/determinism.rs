//! The same seed and scenario give the same trace, byte for byte.

mod common;

use common::{run, scenario};

#[test]
fn same_seed_same_trace() {
    let first = run(scenario("flapping-links"), 42);
    let second = run(scenario("flapping-links"), 42);

    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.trace_events, second.trace_events);
    assert!(first.trace_events > 10_000, "{} events", first.trace_events);
    assert_eq!(first.counters.bytes, second.counters.bytes);
}

#[test]
fn different_seeds_differ() {
    let a = run(scenario("three-node-partition"), 1);
    let b = run(scenario("three-node-partition"), 2);

    assert_ne!(a.trace_hash, b.trace_hash);
}
