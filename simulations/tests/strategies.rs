//! Strategies side by side, and sweep parameters.

mod common;

use common::{run, scenario};
use sim::{heal_comparison, Fault, Grouping, HealCase, Strategy};

#[test]
fn heal_reconciliation_converges_for_every_strategy() {
    let outcome = run(scenario("three-node-partition"), 1);
    let case = HealCase::from_outcome(&outcome);

    let results = heal_comparison(
        case,
        outcome.scenario.links.inter_region,
        Grouping { group: 1 },
    );

    assert_eq!(case.common, 100);
    assert_eq!(case.common + case.only_a + case.only_b, 200);
    assert!(results.iter().all(|r| r.converged), "{results:?}");
    let bytes = |name: &str| results.iter().find(|r| r.strategy == name).unwrap().bytes;
    assert!(bytes("votemesh") * 2 < bytes("naive"), "{results:?}");
}

#[test]
fn naive_exchange_converges_with_many_more_bytes() {
    let mut naive = scenario("three-node-partition");
    naive.sync.strategy = Strategy::Naive;

    let votemesh = run(scenario("three-node-partition"), 1);
    let naive = run(naive, 1);

    assert!(votemesh.check.passed() && naive.check.passed());
    assert!(naive.counters.sync_bytes > 10 * votemesh.counters.sync_bytes);
}

#[test]
fn partition_length_moves_the_heal_and_keeps_the_settling_time() {
    let mut s = scenario("three-node-partition");

    s.set("partition_secs", "60").unwrap();

    let heal = s.faults.iter().find_map(|f| match f {
        Fault::Heal { at_s } => Some(*at_s),
        _ => None,
    });
    assert_eq!(heal, Some(70.0));
    assert_eq!(s.duration_s, 90.0);
}

#[cfg(not(feature = "baselines"))]
#[test]
fn automerge_and_yrs_need_the_baselines_feature() {
    let mut s = scenario("three-node-partition");

    for name in ["automerge", "yrs"] {
        let err = s.set("strategy", name).unwrap_err().to_string();

        assert!(err.contains("needs the `baselines` feature"), "{err}");
    }
    assert!(s.set("strategy", "paxos").is_err());
}
