//! A running node: start (key, store, rebuild, committer, listener), serve,
//! shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use crdt::PublicKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{self, AppState, Shared};
use crate::commit::Committer;
use crate::config::Config;
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::server::{self, Limits};
use crate::state::Polls;
use crate::store::{SledStore, Store};

/// A node that has rebuilt its state and bound its listener, ready to serve.
pub struct Node {
    listener: TcpListener,
    addr: SocketAddr,
    public: PublicKey,
    router: Router,
    limits: Limits,
    store: Arc<dyn Store>,
    committer: JoinHandle<()>,
    /// The replication mesh's address and task, when it is on.
    p2p: Option<(String, JoinHandle<()>)>,
}

impl Node {
    /// Loads or creates the node key, opens the store, rebuilds every poll's
    /// state from it, starts the committer and binds the listener.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let key = Arc::new(crate::key::load_or_create(&dir.join("node.key"))?);
        let public = key.public();
        tracing::info!(node = %public.short(), data_dir = %dir.display(), "starting");

        let opened = tokio::task::spawn_blocking(move || {
            let store = SledStore::open(&dir.join("sled"))?;
            let (polls, rebuilt) = Polls::rebuild(&store)?;
            Ok::<_, StartError>((store, polls, rebuilt))
        })
        .await
        .map_err(|e| StartError::DataDir {
            path: config.data_dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let (store, polls, rebuilt) = opened?;
        tracing::info!(
            polls = rebuilt.polls,
            entries = rebuilt.entries,
            took_ms = rebuilt.took.as_millis() as u64,
            "state rebuilt from disk"
        );

        let store: Arc<dyn Store> = Arc::new(store);
        let polls = Arc::new(polls);
        let metrics = Arc::new(Metrics::new());
        for poll in polls.list() {
            let entries = polls.get(&poll.id).map_or(0, |slot| slot.len());
            metrics.set_entries(&poll.id, entries);
        }
        let settings = crate::mesh::Settings::from_config(config).map_err(StartError::Mesh)?;
        let (feed, fresh) = tokio::sync::mpsc::channel(crate::mesh::FEED);
        let feed = settings.listen.is_some().then_some(feed);
        let (committer, task) = Committer::spawn_with_feed(
            store.clone(),
            polls.clone(),
            metrics.clone(),
            key.clone(),
            feed,
        );
        let mesh = match settings.listen.clone() {
            Some(listen) => {
                let parts = (polls.clone(), committer.clone(), metrics.clone());
                let mesh =
                    crate::mesh::start(settings, listen, &key, parts.0, parts.1, parts.2, fresh);
                Some(mesh.await.map_err(StartError::Mesh)?)
            }
            None => None,
        };

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;

        let state = AppState::new(Shared {
            key,
            node: public,
            polls,
            store: store.clone(),
            committer,
            metrics,
            body_limit: config.body_limit,
            body_timeout: config.body_timeout(),
            max_batch: config.max_batch,
            exports: Arc::new(tokio::sync::Semaphore::new(config.max_exports)),
        });
        let limits = Limits {
            header: config.header_timeout(),
            write: config.write_timeout(),
            shutdown: config.shutdown_timeout(),
        };
        Ok(Node {
            listener,
            addr,
            public,
            router: api::router(state).merge(crate::peers::router(
                mesh.as_ref().map(|m| m.handle.clone()),
                config.admin_token.clone(),
            )),
            limits,
            store,
            committer: task,
            p2p: mesh.map(|m| (m.addr.to_string(), m.task)),
        })
    }

    /// The address the listener is bound to (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The replication mesh's address, ending in `/p2p/<peer id>`; `None`
    /// when the mesh is off.
    pub fn p2p_addr(&self) -> Option<&str> {
        self.p2p.as_ref().map(|(addr, _)| addr.as_str())
    }

    /// The node's public key, which signs its receipts, tallies and exports.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Serves until `shutdown` completes, then lets requests in flight
    /// finish, for at most the configured shutdown timeout, and syncs the
    /// store once more.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(node = %self.public.short(), addr = %self.addr, "listening");
        server::serve(self.listener, self.router, self.limits, shutdown).await;

        // Acknowledged votes are already durable; this covers nothing but tidiness.
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => tracing::info!(node = %self.public.short(), "stopped"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "final sync failed; acknowledged votes were synced already")
            }
            Err(e) => tracing::warn!(error = %e, "final sync task failed"),
        }
        self.committer.abort();
        if let Some((_, mesh)) = self.p2p {
            mesh.abort();
        }
        Ok(())
    }
}
