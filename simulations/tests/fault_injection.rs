//! A deliberate bug makes the checker fail and name the seed.

mod common;

use std::process::Command;

use common::scenario;
use sim::{failure_report, Injection, Options, Sim, Violation};

#[test]
fn acked_but_unstored_vote_is_caught_with_its_trace() {
    let options = Options {
        seed: Some(99),
        injection: Some(Injection::LoseAckedVote),
    };

    let outcome = Sim::new(scenario("three-node-partition"), &options).run(&mut |_| {});

    assert!(!outcome.check.passed());
    let first = &outcome.check.violations()[0];
    assert!(
        matches!(first, Violation::AckedNotDurable { node: 0, .. }),
        "{first}"
    );
    let report = failure_report(&outcome);
    assert!(report.contains("seed 99"), "{report}");
    assert!(report.contains("VOTEMESH_SIM_SEED=99"), "{report}");
    assert!(report.contains("InjectedLoss"), "{report}");
    assert!(report.contains("Acked"), "{report}");
}

#[test]
fn cli_exits_non_zero_and_prints_the_seed() {
    let dir = std::env::temp_dir().join(format!("votemesh-sim-test-{}", std::process::id()));
    let path = format!(
        "{}/scenarios/three-node-partition.toml",
        env!("CARGO_MANIFEST_DIR")
    );

    let output = Command::new(env!("CARGO_BIN_EXE_votemesh-sim"))
        .args([
            "run",
            &path,
            "--fault-injection",
            "lose-acked-vote",
            "--out",
        ])
        .arg(&dir)
        .env("VOTEMESH_SIM_SEED", "5")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("with seed 5"), "{stderr}");
    assert!(dir.join("summary.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
