//! Crashes lose memory, never an acknowledged vote.

mod common;

use common::{run, scenario, seed};
use sim::{Fault, Summary};

#[test]
fn crash_and_restart_lose_no_acked_vote() {
    let mut scenario = scenario("crash-restart");
    // Shorter than the shipped scenario, same faults up to the first restart.
    scenario.duration_s = 60.0;
    scenario.votes.stop_at_s = 45.0;
    scenario.faults.retain(|f| {
        matches!(
            f,
            Fault::Crash { node: 4, .. } | Fault::Restart { node: 4, .. }
        )
    });
    let seed = seed(&scenario);

    let outcome = run(scenario, seed);
    let summary = Summary::new(&outcome, std::time::Duration::ZERO);

    assert!(outcome.check.passed(), "{:?}", outcome.check.violations());
    assert_eq!(summary.lost, 0);
    assert_eq!(summary.stale, 0);
    assert!(outcome.counters.acked > 1_000, "{:?}", outcome.counters);

    // Node 4 was down from 20 s to 35 s: clients of its relays retried
    // elsewhere, and after the restart it caught up.
    let down = outcome
        .samples
        .iter()
        .filter(|s| s.node == 4 && !s.up)
        .count();
    assert!(down >= 14, "node 4 down in {down} samples");
    assert!(outcome.counters.retries > 0);
    let node4_end = outcome.samples.iter().rfind(|s| s.node == 4).unwrap();
    assert_eq!(node4_end.missing, 0);
    assert!(
        summary.convergence_after_last_heal_s.unwrap() < 2.0,
        "{summary:?}"
    );
}
