//! Shared by the simulator's tests: scenarios from `scenarios/`, seeds from
//! the environment.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use sim::{Options, Outcome, Scenario, Sim};

pub fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap()
}

/// `VOTEMESH_SIM_SEED` if set, else the scenario's; printed so a failing
/// test can be rerun with it.
pub fn seed(scenario: &Scenario) -> u64 {
    let seed = std::env::var("VOTEMESH_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(scenario.seed);
    eprintln!("scenario {} seed {seed}", scenario.name);
    seed
}

pub fn run(scenario: Scenario, seed: u64) -> Outcome {
    let options = Options {
        seed: Some(seed),
        injection: None,
    };
    Sim::new(scenario, &options).run(&mut |_| {})
}
