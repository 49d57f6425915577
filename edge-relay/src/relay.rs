//! A running relay: start (keys, nodes, listener), serve, shut down.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use axum::Router;
use crdt::SecretKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{self, AppState, Shared};
use crate::config::Config;
use crate::error::StartError;
use crate::limit::{Limits, PRUNE_EVERY};
use crate::live::Hub;
use crate::polls::Polls;
use crate::pow::Pow;
use crate::upstream::Upstreams;

/// A relay that has bound its listener, ready to serve.
pub struct Relay {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    state: AppState,
    closing: watch::Sender<bool>,
    config: Config,
    pages: Option<crate::publish::Pages>,
}

impl Relay {
    /// Reads the registrar key, checks the web directory (and, with
    /// `pages`, the browser build, and that the web directory is the
    /// renderer's to replace), builds the node client and binds the listener.
    pub async fn start(config: &Config) -> Result<Relay, StartError> {
        let config = config.clone().check()?;
        let registrar = match &config.registrar_key {
            Some(path) => Some(read_key(path)?),
            None => None,
        };
        let pages = match (&config.pages, &config.web_dir) {
            (Some(build), Some(dir)) => Some(crate::publish::Pages::check(build, dir)?),
            _ => None,
        };
        let web = match &config.web_dir {
            Some(dir) if dir.is_dir() => Some(crate::web::router(dir)),
            Some(dir) => return Err(StartError::WebDir { path: dir.clone() }),
            None => None,
        };
        let upstreams = Arc::new(Upstreams::new(&config)?);

        let (closing, closing_rx) = watch::channel(false);
        let state = AppState(Arc::new(Shared {
            upstreams: upstreams.clone(),
            polls: Polls::default(),
            hub: Hub::new(upstreams),
            limits: Limits::new(&config),
            pow: Pow::new(
                config.pow_bits,
                std::time::Duration::from_secs(config.challenge_ttl_secs),
                config.max_challenges,
            ),
            registrar,
            body_limit: config.body_limit,
            request_timeout: config.request_timeout(),
            heartbeat: config.heartbeat(),
            closing: closing_rx,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }));
        let mut router = api::router(state.clone(), web);
        if let Some(cors) = cors(&config.cors_origins) {
            router = router.layer(cors);
        }

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
        Ok(Relay {
            listener,
            addr,
            router,
            state,
            closing,
            config,
            pages,
        })
    }

    /// The address the listener is bound to (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes; then live streams end and requests
    /// in flight get the shutdown timeout to finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, nodes = ?self.config.nodes, "listening");
        let shared = self.state.0.clone();
        let health = tokio::spawn(shared.upstreams.clone().check_health());
        let publishing = self.pages.map(|pages| {
            tokio::spawn(crate::publish::every(
                shared.upstreams.clone(),
                shared.metrics.clone(),
                pages,
                std::time::Duration::from_secs(self.config.publish_interval_secs),
            ))
        });
        let pruning = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PRUNE_EVERY);
            loop {
                ticker.tick().await;
                shared.limits.prune();
                shared.pow.prune();
            }
        });

        let (stop, stopped) = watch::channel(false);
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let mut stopped_rx = stopped.clone();
        let server = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped_rx.wait_for(|s| *s).await;
            })
            .into_future();
        tokio::pin!(server);

        let served = tokio::select! {
            served = &mut server => served,
            () = shutdown => {
                // Live streams end first, or graceful shutdown would wait on them.
                let _ = self.closing.send(true);
                let _ = stop.send(true);
                match tokio::time::timeout(self.config.shutdown_timeout(), &mut server).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!("connections still open at the shutdown deadline are cut off");
                        Ok(())
                    }
                }
            }
        };
        drop(stopped);
        health.abort();
        pruning.abort();
        if let Some(publishing) = publishing {
            publishing.abort();
        }
        tracing::info!("stopped");
        served
    }

    /// Browsers watching live counts right now.
    pub fn watchers(&self) -> usize {
        self.state.0.hub.watchers()
    }
}

/// CORS for the configured origins; none configured: no CORS headers, so
/// browsers let only the relay's own pages call it.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ]),
    )
}

fn read_key(path: &Path) -> Result<SecretKey, StartError> {
    let bad = |reason: String| StartError::RegistrarKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("not 32 bytes of hex".into()))?;
    Ok(SecretKey::from_seed(&seed))
}
