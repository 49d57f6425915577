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
//!
//! Each poll stands alone: one the nodes cannot give, or that the renderer
//! leaves out (invalid, or its pages fail), is logged with its id and the
//! others are published.
//!
//! The web directory is replaced at every rendering, so the relay only
//! renders into a directory that is missing, empty, or marked by the
//! renderer as its own (it holds [`SITE_MARKER`]): see [`Pages::check`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::error::StartError;
use crate::metrics::Metrics;
use crate::upstream::Upstreams;

/// Most polls rendered at once; more are left out with a warning.
const MAX_POLLS: usize = 1_000;
/// Longest a rendering may take.
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);
/// The file `votemesh-client publish` writes into each site it makes
/// (`client/app/src/publish.rs`); a non-empty directory without it is not
/// the renderer's to replace.
pub(crate) const SITE_MARKER: &str = ".votemesh-site";

/// Where the renderer and its assets are, and where the site goes.
pub(crate) struct Pages {
    renderer: PathBuf,
    assets: PathBuf,
    site: PathBuf,
    /// The site's parent, where the scratch files go.
    parent: PathBuf,
}

impl Pages {
    /// Checks the browser build (`client/build.sh` output) and the web
    /// directory before the relay starts: the build has the renderer and the
    /// assets; the web directory is missing (then created), empty, or made
    /// by the renderer; its parent takes new files (the renderer works and
    /// swaps beside it).
    pub(crate) fn check(build: &Path, site: &Path) -> Result<Pages, StartError> {
        let bad_build = |reason: &str| StartError::Pages {
            path: build.to_path_buf(),
            reason: reason.to_string(),
        };
        let renderer = build.join("bin/votemesh-client");
        let assets = build.join("assets");
        if !build.is_dir() {
            return Err(bad_build("not a directory (make it with client/build.sh)"));
        }
        if !renderer.is_file() {
            return Err(bad_build(
                "no bin/votemesh-client in it: not the output of client/build.sh",
            ));
        }
        for asset in ["bundle.js", "bundle.wasm", "sw/sw.js"] {
            if !assets.join(asset).is_file() {
                return Err(bad_build(&format!(
                    "no assets/{asset} in it: not the output of client/build.sh"
                )));
            }
        }

        let site = std::path::absolute(site).map_err(|source| StartError::WebDirCreate {
            path: site.to_path_buf(),
            source,
        })?;
        let parent = site
            .parent()
            .ok_or_else(|| StartError::WebDirNotOurs { path: site.clone() })?
            .to_path_buf();
        match std::fs::metadata(&site) {
            Ok(meta) if meta.is_dir() => {
                let empty = std::fs::read_dir(&site)
                    .map_err(|source| StartError::WebDirCreate {
                        path: site.clone(),
                        source,
                    })?
                    .next()
                    .is_none();
                if !empty && !site.join(SITE_MARKER).is_file() {
                    return Err(StartError::WebDirNotOurs { path: site });
                }
            }
            Ok(_) => return Err(StartError::WebDir { path: site }),
            Err(_) => {
                std::fs::create_dir_all(&site).map_err(|source| StartError::WebDirCreate {
                    path: site.clone(),
                    source,
                })?;
            }
        }
        let probe = parent.join(format!(".votemesh-probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|source| StartError::WebDirParent {
            path: parent.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(Pages {
            renderer,
            assets,
            site,
            parent,
        })
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

/// Removes a file when dropped: the site file goes however a rendering ends
/// (an error, the timeout, or the task stopped with the relay).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Tells apart the site files of relays sharing a process and a parent
/// directory (the demo runs three).
static RENDERING: AtomicU64 = AtomicU64::new(0);

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
        let Some(id) = entry["id"].as_str() else {
            tracing::warn!(%entry, "a node listed a poll without an id: it gets no page");
            continue;
        };
        if crate::polls::parse_poll_id(id).is_err() {
            tracing::warn!(poll = ?id, "a node listed a malformed poll id: it gets no page");
            continue;
        }
        let fetched = async {
            let poll = get_json(upstreams, &format!("/v1/polls/{id}")).await?;
            let tally = get_json(upstreams, &format!("/v1/polls/{id}/tally")).await?;
            Ok::<_, String>(json!({ "poll": poll, "tally": tally }))
        };
        match fetched.await {
            Ok(entry) => polls.push(entry),
            Err(reason) => tracing::warn!(poll = id, %reason, "poll not rendered this time"),
        }
    }
    let node_keys = upstreams.keys().await;
    if node_keys.is_empty() {
        return Err("no node's key is known: the pages would trust no receipt".into());
    }
    let site = json!({ "published_at": now_ms(), "node_keys": node_keys, "polls": polls });

    let n = RENDERING.fetch_add(1, Ordering::Relaxed);
    let site_file = pages
        .parent
        .join(format!(".site-{}-{n}.json", std::process::id()));
    let _remove = RemoveOnDrop(site_file.clone());
    tokio::fs::write(&site_file, site.to_string())
        .await
        .map_err(|e| format!("cannot write {}: {e}", site_file.display()))?;
    let mut child = tokio::process::Command::new(&pages.renderer)
        .arg("publish")
        .arg("--site")
        .arg(&site_file)
        .arg("--assets")
        .arg(&pages.assets)
        .arg("--out")
        .arg(&pages.site)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", pages.renderer.display()))?;
    let pid = child.id();
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(pipe) = stdout.as_mut() {
                let _ = pipe.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(pipe) = stderr.as_mut() {
                let _ = pipe.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let finished = tokio::time::timeout(RENDER_TIMEOUT, run).await;
    let (status, out, err) = match finished {
        Ok(done) => done,
        Err(_) => {
            let _ = child.kill().await;
            if let Some(pid) = pid {
                remove_leftovers(pages, pid);
            }
            return Err(format!(
                "the renderer took longer than {RENDER_TIMEOUT:?} and was stopped"
            ));
        }
    };
    let status = status.map_err(|e| format!("waiting for {}: {e}", pages.renderer.display()))?;
    let stderr = String::from_utf8_lossy(&err);
    // The renderer names each poll it leaves out on a `warning:` line.
    for line in stderr.lines() {
        if let Some(warning) = line.strip_prefix("warning: ") {
            tracing::warn!(renderer = warning, "poll left out of the pages");
        }
    }
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("the renderer failed ({status}): {last}"));
    }
    // "published N poll(s) to DIR; M left out"
    let published = String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(polls.len());
    Ok(published)
}

/// What a renderer stopped by the timeout leaves: its scratch directory and,
/// had it been stopped between the two renames of a swap, the old site
/// (put back when the site is missing).
fn remove_leftovers(pages: &Pages, pid: u32) {
    let _ = std::fs::remove_dir_all(pages.parent.join(format!(".publish-{pid}")));
    let replaced = pages.parent.join(format!(".replaced-{pid}"));
    if replaced.exists() && !pages.site.exists() {
        let _ = std::fs::rename(&replaced, &pages.site);
    }
    let _ = std::fs::remove_dir_all(&replaced);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn build(dir: &Path) -> PathBuf {
        let build = dir.join("web");
        std::fs::create_dir_all(build.join("bin")).unwrap();
        std::fs::create_dir_all(build.join("assets/sw")).unwrap();
        for file in [
            "bin/votemesh-client",
            "assets/bundle.js",
            "assets/bundle.wasm",
            "assets/sw/sw.js",
        ] {
            std::fs::write(build.join(file), b"").unwrap();
        }
        build
    }

    #[test]
    fn only_a_missing_empty_or_rendered_web_dir_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let build = build(dir.path());
        let site = dir.path().join("site");

        // Missing: created.
        Pages::check(&build, &site).unwrap();
        assert!(site.is_dir());
        // Empty.
        Pages::check(&build, &site).unwrap();
        // Someone's files: refused, and left as they are.
        std::fs::write(site.join("notes.txt"), "mine").unwrap();
        let refused = Pages::check(&build, &site).err().unwrap();
        assert!(
            matches!(refused, StartError::WebDirNotOurs { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains(SITE_MARKER), "{refused}");
        assert_eq!(
            std::fs::read_to_string(site.join("notes.txt")).unwrap(),
            "mine"
        );
        // Made by the renderer.
        std::fs::write(site.join(SITE_MARKER), "").unwrap();
        Pages::check(&build, &site).unwrap();
        // A file is not a web dir.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(Pages::check(&build, &file).is_err());
    }

    #[test]
    fn a_build_without_the_renderer_or_assets_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let build = build(dir.path());
        let site = dir.path().join("site");
        std::fs::remove_file(build.join("assets/bundle.wasm")).unwrap();
        let error = Pages::check(&build, &site).err().unwrap().to_string();
        assert!(error.contains("assets/bundle.wasm"), "{error}");
        std::fs::remove_file(build.join("bin/votemesh-client")).unwrap();
        let error = Pages::check(&build, &site).err().unwrap().to_string();
        assert!(error.contains("bin/votemesh-client"), "{error}");
        let error = Pages::check(&dir.path().join("nothing"), &site)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("client/build.sh"), "{error}");
    }

    #[test]
    fn a_web_dir_that_cannot_be_made_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let build = build(dir.path());
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "a file").unwrap();
        let error = Pages::check(&build, &blocker.join("site")).err().unwrap();
        assert!(matches!(error, StartError::WebDirCreate { .. }), "{error}");
    }
}
