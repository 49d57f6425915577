//! automerge and yrs as strategies inside the event simulation (needs the
//! `baselines` feature): deterministic, convergent through crashes, and
//! compared with votemesh and naive in one `compare` run.

#![cfg(feature = "baselines")]

mod common;

use common::{run, scenario};
use sim::{compare, Fault, Strategy, Summary};

#[test]
fn baseline_strategies_are_deterministic() {
    for strategy in [Strategy::Automerge, Strategy::Yrs] {
        let mut s = scenario("three-node-partition");
        s.sync.strategy = strategy;

        let first = run(s.clone(), 7);
        let second = run(s, 7);

        assert!(first.check.passed(), "{:?}", first.check.violations());
        assert_eq!(first.trace_hash, second.trace_hash, "{strategy:?}");
        assert_eq!(first.counters.bytes, second.counters.bytes);
        assert_eq!(first.counters.group_commits, second.counters.group_commits);
        assert!(first.counters.group_commits > 0);
    }
}

#[test]
fn baseline_strategies_differ_from_votemesh_under_the_same_seed() {
    let votemesh = run(scenario("three-node-partition"), 1);
    let mut s = scenario("three-node-partition");
    s.sync.strategy = Strategy::Yrs;
    let yrs = run(s, 1);

    // The same workload (votes and their times come from the clients'
    // stream), different replication traffic.
    assert_eq!(votemesh.counters.cast, yrs.counters.cast);
    assert_eq!(votemesh.counters.acked, yrs.counters.acked);
    assert_ne!(votemesh.trace_hash, yrs.trace_hash);
    assert_ne!(votemesh.counters.bytes, yrs.counters.bytes);
}

#[test]
fn documents_survive_a_crash_and_catch_up() {
    for strategy in [Strategy::Automerge, Strategy::Yrs] {
        let mut s = scenario("crash-restart");
        // Shorter and slower than the shipped scenario (debug builds of
        // automerge are slow), the same crash and restart of node 4.
        s.duration_s = 45.0;
        s.votes.stop_at_s = 40.0;
        s.votes.rate = vec![[0.0, 10.0]];
        s.faults.retain(|f| {
            matches!(
                f,
                Fault::Crash { node: 4, .. } | Fault::Restart { node: 4, .. }
            )
        });
        s.sync.strategy = strategy;

        let outcome = run(s, 3);
        let summary = Summary::new(&outcome, std::time::Duration::ZERO);

        assert!(
            outcome.check.passed(),
            "{strategy:?}: {:?}",
            outcome.check.violations()
        );
        assert_eq!(summary.lost, 0);
        assert!(outcome.counters.acked > 300, "{:?}", outcome.counters);
        let node4_end = outcome.samples.iter().rfind(|s| s.node == 4).unwrap();
        assert_eq!(node4_end.missing, 0);
        // Every live replica's document was measured and holds every entry.
        assert_eq!(outcome.memory.replicas, 9);
        let accepted = outcome
            .votes
            .iter()
            .filter(|v| v.accepted.is_some())
            .count();
        assert_eq!(outcome.memory.entries_mean, accepted as f64);
        assert!(outcome.memory.serialized_bytes_mean > 0.0);
    }
}

#[test]
fn compare_runs_all_four_strategies_in_one_table() {
    let dir = std::env::temp_dir().join(format!("votemesh-sim-compare-{}", std::process::id()));
    let s = scenario("three-node-partition");

    let results = compare(&s, 1, &dir).unwrap();

    let names: Vec<&str> = results.iter().map(|r| r.strategy.as_str()).collect();
    assert_eq!(names, ["votemesh", "naive", "automerge", "yrs"]);
    assert!(results.iter().all(|r| r.summary.passed));
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    for name in names {
        assert!(md.contains(&format!("| {name} | true |")), "{md}");
        assert!(dir.join(name).join("summary.json").exists());
    }
    assert!(dir.join("bytes_per_vote_by_strategy.svg").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
