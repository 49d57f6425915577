//! Rendering the voters' pages (`--pages`).
//!
//! The relay asks its nodes for every poll and its tally, writes them to a
//! site file, and runs the page renderer of the browser build
//! (`votemesh-client publish`), which checks each poll's signature, renders
//! `poll/<id>` and `results/<id>` with the counts of the moment and swaps
//! the new site into the web directory whole. Pages carry counts as of their
//! rendering; once loaded, they follow the live counts. The site file also
//! names the nodes' keys (`node_keys`): every page trusts receipts from those
//! nodes only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::upstream::Upstreams;

/// Most polls rendered at once; more are left out with a warning.
const MAX_POLLS: usize = 1_000;
/// Longest a rendering may take.
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the renderer and its assets are, and where the site goes.
pub(crate) struct Pages {
    renderer: PathBuf,
    assets: PathBuf,
    site: PathBuf,
}

impl Pages {
    /// `build` is the output of `client/build.sh`; `site` the web directory.
    pub(crate) fn new(build: &Path, site: &Path) -> Pages {
        Pages {
            renderer: build.join("bin/votemesh-client"),
            assets: build.join("assets"),
            site: site.to_path_buf(),
        }
    }
}

/// Renders the pages now and then every `interval`, logging failures (the
/// pages already served stay as they are).
pub(crate) async fn every(
    upstreams: Arc<Upstreams>,
    metrics: Arc<Metrics>,
    pages: Pages,
    interval: Duration,
) {
    loop {
        match publish(&upstreams, &pages).await {
            Ok(count) => {
                metrics.rendered(Ok(count));
                tracing::debug!(polls = count, "pages rendered");
            }
            Err(reason) => {
                metrics.rendered(Err(()));
                tracing::warn!(%reason, "pages not rendered");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

async fn publish(upstreams: &Upstreams, pages: &Pages) -> Result<usize, String> {
    let list = get_json(upstreams, "/v1/polls").await?;
    let list = list.as_array().ok_or("the poll list is not a list")?;
    if list.len() > MAX_POLLS {
        tracing::warn!(
            polls = list.len(),
            rendered = MAX_POLLS,
            "too many polls: some get no page"
        );
    }
    let mut polls = Vec::new();
    for entry in list.iter().take(MAX_POLLS) {
        let id = entry["id"].as_str().ok_or("a poll without an id")?;
        if crate::polls::parse_poll_id(id).is_err() {
            return Err(format!("a node listed a malformed poll id {id:?}"));
        }
        let poll = get_json(upstreams, &format!("/v1/polls/{id}")).await?;
        let tally = get_json(upstreams, &format!("/v1/polls/{id}/tally")).await?;
        polls.push(json!({ "poll": poll, "tally": tally }));
    }
    let count = polls.len();
    let node_keys = upstreams.keys().await;
    if node_keys.is_empty() {
        return Err("no node's key is known: the pages would trust no receipt".into());
    }
    let site = json!({ "published_at": now_ms(), "node_keys": node_keys, "polls": polls });

    let parent = pages.site.parent().unwrap_or(Path::new("."));
    let site_file = parent.join(format!(".site-{}.json", std::process::id()));
    tokio::fs::write(&site_file, site.to_string())
        .await
        .map_err(|e| format!("cannot write {}: {e}", site_file.display()))?;
    let run = tokio::process::Command::new(&pages.renderer)
        .arg("publish")
        .arg("--site")
        .arg(&site_file)
        .arg("--assets")
        .arg(&pages.assets)
        .arg("--out")
        .arg(&pages.site)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RENDER_TIMEOUT, run)
        .await
        .map_err(|_| format!("the renderer took longer than {RENDER_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run {}: {e}", pages.renderer.display()))?;
    let _ = tokio::fs::remove_file(&site_file).await;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("the renderer failed ({}): {last}", output.status));
    }
    Ok(count)
}

async fn get_json(upstreams: &Upstreams, path: &str) -> Result<Value, String> {
    let reply = upstreams
        .forward(Method::GET, path, None)
        .await
        .map_err(|e| format!("GET {path}: {e:?}"))?;
    if reply.status != StatusCode::OK {
        return Err(format!("GET {path}: status {}", reply.status));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("GET {path}: not JSON: {e}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
