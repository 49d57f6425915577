//! The votemesh edge relay: the one server a voter's browser talks to.
//!
//! - **Forwarding** ([`upstream`](self)): votes go to the configured regional
//!   nodes, healthy ones first, with retries, backoff and a hedged second
//!   request when a node is slow. Votes are idempotent by entry hash, so a
//!   vote sent to two nodes still counts once; the node's signed receipt is
//!   passed back unchanged, and only if the key of the node that answered
//!   signed it (keys pinned with `--node-key` or learnt from each node's
//!   `GET /v1/node`, listed at `GET /v1/nodes` and named in every page).
//! - **Live counts**: one subscription per watched poll to a node's tally
//!   stream; browsers get the latest snapshot over WebSocket
//!   (`/v1/polls/{id}/live`) or Server-Sent Events (`/v1/polls/{id}/events`,
//!   resumable with `Last-Event-ID`), at most 10 messages a second, absolute
//!   counts with a version and the digest. A slow browser skips to the latest.
//! - **Edge protection**: per-IP and per-poll rate limits (429 with
//!   `Retry-After`), body size and request time limits, CORS only for
//!   configured origins.
//! - **Credentials**: for polls whose registrar key the relay holds, a
//!   proof-of-work challenge, then a `crdt::Credential` for the voter's key.
//! - **The web app**: files of `--web-dir` with caching headers by name,
//!   compressed.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = relay::Config { nodes: vec!["http://127.0.0.1:7400".into()], ..Default::default() };
//! let relay = relay::Relay::start(&config).await?;
//! println!("listening on {}", relay.local_addr());
//! relay.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod config;
mod error;
mod limit;
mod live;
mod metrics;
mod polls;
mod pow;
mod publish;
mod relay;
mod upstream;
mod vouch;
mod web;

pub use config::{Config, LogFormat, RunArgs};
pub use error::{report_exit, ApiError, ConfigError, StartError};
pub use pow::solve;
pub use relay::Relay;
