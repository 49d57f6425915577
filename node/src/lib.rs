//! The votemesh regional node: durable vote storage and the HTTP API.
//!
//! A vote acknowledged is a vote on disk. Votes are admitted with
//! `crdt::admit_batch`, written to sled by a single committer task that
//! shares one flush + fdatasync among every request queued while the previous
//! group was syncing (group commit), and only then added to the in-memory
//! `crdt::PollState` and answered with a `crdt::Receipt`: the committer signs
//! one `crdt::GroupStatement` per group and poll, over the Merkle root of the
//! entries made durable together, and each receipt carries it with the
//! entry's inclusion path (`receipts`). A restart
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
//! | GET | `/v1/polls/{id}/tally/stream` | the same tally as Server-Sent Events, on every change (≤ 10/s) |
//! | GET | `/v1/polls/{id}/export` | NDJSON export (`crdt::export`), or 429 `export_busy` |
//! | GET | `/v1/node`, `/healthz`, `/readyz`, `/metrics` | identity, liveness, readiness, Prometheus |
//! | GET | `/v1/peers` | `{mesh, peers: [{peer_id, addresses, configured, connected, blocked, last_sync_ms, last_sync, lag}]}` |
//! | POST | `/v1/peers/{peer_id}/block`, `/unblock` | bearer `admin_token`; 403 `admin_disabled` without one, 401 `unauthorized` |
//!
//! # Replication mesh
//!
//! Nodes replicate every poll's entries to each other over libp2p (tcp +
//! noise + yamux). The libp2p ed25519 key is the node key (`node.key`), so
//! the peer id in `p2p` of the start-up line names the node that signs the
//! receipts. Two paths carry the same signed entries:
//!
//! - push: each group the committer makes durable from HTTP or sync is
//!   published, after its fsync, on gossipsub topic `votemesh/entries/v1` in
//!   batches of at most 100 entries (content-hash message ids). A receiver
//!   admits the entries, commits them through the same group commit, and only
//!   then lets gossipsub relay the message (strict signing, manual
//!   validation). Gossip is best-effort;
//! - repair: on every (re)connect, every `sync_interval_secs`, and when a
//!   peer is unblocked, the node runs a round with each connected peer: it
//!   fetches poll definitions it lacks (`/votemesh/polls/1`, checked with
//!   `Poll::verify`), then reconciles each poll (`/votemesh/sync/1`,
//!   `crdt::sync` messages in length-prefixed frames, 32 MiB per request or
//!   response at most).
//!
//! Whatever arrives is admitted before it is stored: a peer can withhold
//! entries, never forge one. Invalid input is logged at warn with the
//! `peer`, counted in `votemesh_p2p_invalid_input`, and after 5 such inputs
//! the peer is disconnected (`votemesh_p2p_peers_disconnected`).
//!
//! | setting (file / `VOTEMESH_*` / flag) | default | meaning |
//! |---|---|---|
//! | `p2p_listen` / `--p2p-listen` | `/ip4/127.0.0.1/tcp/0` | where peers connect; empty turns the mesh off. Use a fixed port for peers to find the node again after a restart |
//! | `peers` / `--peers a,b` | none | multiaddrs ending in `/p2p/<peer id>` to dial, redialed with exponential backoff and jitter (0.5 s doubling, at most 30 s) |
//! | `allow` / `--allow id,id` | the ids in `peers` | further peer ids that may connect; every other peer is refused at connection level |
//! | `sync_interval_secs` | 10 | seconds between reconciliation rounds |
//! | `admin_token` | unset | bearer token of the block and unblock endpoints |
//!
//! A link needs one side to dial and the other to allow it: a hub can list
//! its regions in `allow` while each region lists the hub in `peers`.
//! Connections stay open through an hour of silence. Metrics:
//! `votemesh_entries_received{path=http|gossip|sync}`, `votemesh_p2p_bytes`,
//! `votemesh_sync_sessions{outcome}`, `votemesh_sync_entries_missing{peer}`,
//! `votemesh_p2p_peers_connected`, `votemesh_p2p_connections_refused`.
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
#[cfg(test)]
mod fixture;
mod key;
mod mesh;
mod metrics;
mod node;
mod peers;
mod receipts;
mod server;
mod state;
mod store;
mod stream;

pub use config::{Config, LogFormat, RunArgs};
pub use error::{ApiError, CommitError, ConfigError, KeyError, StartError, StoreError};
pub use node::Node;
pub use store::{EntryRef, NewEntry, SledStore, Store, StoredEntry, StoredGroup};
