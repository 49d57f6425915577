//! `votemesh-sim`: a deterministic discrete-event simulator of a votemesh
//! deployment for researchers.
//!
//! Simulated nodes hold the real [`crdt::PollState`] per poll, push new
//! entries to their peers and reconcile with the real [`crdt::sync`]
//! initiator and responder machines, whose messages cross simulated links as
//! their real encodings ([`crdt::sync::Message::encode`]), so message and
//! byte counts are those of the protocol. Time is simulated (an event queue
//! keyed by time and sequence number) and all randomness comes from ChaCha
//! streams of the scenario's seed (one each for clients, links and timers, so
//! strategies compared under one seed see the same votes), so a seed
//! reproduces a run's trace byte for byte.
//!
//! Other strategies run in the same event simulation for comparison
//! ([`Strategy`]): naive full-state exchange and, with the `baselines`
//! feature, automerge documents synced with automerge's sync protocol and yrs
//! documents synced with state vectors and updates, each node writing its
//! accepted entries into its document in group commits.
//!
//! The simulator models replication, not signature checking: its votes carry
//! unchecked (pseudo-random) signatures and are stored with
//! `insert_admitted`.
//!
//! ```
//! use sim::{Options, Scenario, Sim};
//!
//! let scenario = Scenario::parse(r#"
//!     name = "two nodes"
//!     duration_s = 10
//!     [topology]
//!     regions = 2
//!     nodes_per_region = 1
//!     relays = 2
//!     voters = 100
//!     [links]
//!     access = { latency_ms = 20 }
//!     intra_region = { latency_ms = 2 }
//!     inter_region = { latency_ms = 40 }
//!     [votes]
//!     rate = [[0, 20]]
//!     stop_at_s = 5
//! "#).unwrap();
//!
//! let outcome = Sim::new(scenario, &Options::default()).run(&mut |_| {});
//!
//! assert!(outcome.check.passed());
//! assert_eq!(outcome.counters.lost, 0);
//! ```

mod baseline;
mod check;
mod docs;
mod net;
mod plot;
mod queue;
mod replica;
mod report;
mod scenario;
mod sim;
mod stats;
mod sweep;
mod trace;

pub use baseline::{heal_comparison, simulated_entry_bytes, Grouping, HealCase, HealResult};
pub use check::{Check, Violation};
pub use queue::{millis, secs, Micros};
pub use report::{failure_report, write_outputs, Summary};
pub use scenario::{
    Burst, Clients, Fault, Link, Links, Reconnect, Scenario, Strategy, Sync, Topology, Votes,
};
pub use sim::{Injection, Options, Outcome, Sim};
pub use stats::{quantile, Counters, Memory, Sample, VoteTimes};
pub use sweep::{compare, sweep, sweep_table, CellResult, Grid, Spread, StrategyResult};
pub use trace::{Kind, Record};
