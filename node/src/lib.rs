//! The votemesh regional node: durable vote storage and the HTTP API.
//!
//! A vote acknowledged is a vote on disk. Votes are admitted with
//! `crdt::admit_batch`, written to sled by a single committer task that
//! shares one flush + fdatasync among every request queued while the previous
//! group was syncing (group commit), and only then added to the in-memory
//! `crdt::PollState` and answered with a signed `crdt::Receipt`. A restart
//! rebuilds every poll's state from the store.
//!
//! HTTP API (JSON; errors are `{"error":{"code":..,"message":..}}`):
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/v1/polls` | 201 new poll, 200 already known |
//! | GET | `/v1/polls` | `[{id, title}]` |
//! | GET | `/v1/polls/{id}` | the signed poll |
//! | POST | `/v1/polls/{id}/votes` | `{receipt, status}` |
//! | POST | `/v1/polls/{id}/votes/batch` | `{results: [{receipt, status} \| {error}]}` |
//! | GET | `/v1/polls/{id}/entries/{hash}` | `{receipt}` or 404 `unknown_entry` |
//! | GET | `/v1/polls/{id}/tally` | counts, digest and a `crdt::SignedTally` |
//! | GET | `/v1/polls/{id}/export` | NDJSON export (`crdt::export`), or 429 `export_busy` |
//! | GET | `/v1/node`, `/healthz`, `/readyz`, `/metrics` | identity, liveness, readiness, Prometheus |
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = node::Config { data_dir: "/tmp/votemesh-example".into(), ..Default::default() };
//! let node = node::Node::start(&config).await?;
//! println!("listening on {} as {}", node.local_addr(), node.public_key());
//! node.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod clock;
mod commit;
mod config;
mod error;
mod export;
mod extract;
mod key;
mod metrics;
mod node;
mod server;
mod state;
mod store;

pub use config::{Config, LogFormat, RunArgs};
pub use error::{ApiError, CommitError, ConfigError, KeyError, StartError, StoreError};
pub use node::Node;
pub use store::{NewEntry, SledStore, Store, StoredEntry};
