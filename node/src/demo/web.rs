//! `demo --serve`: the voters' pages on the demo's relays.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crdt::PollId;

use super::live::EdgeRelay;

/// How long the first rendering of the pages may take.
const FIRST_RENDER: Duration = Duration::from_secs(120);

/// The browser build: `dir` if given, else `<target dir>/web` beside this
/// binary (target/release/votemesh-node → target/web). When this binary runs
/// from a checkout, `client/build.sh` brings that build up to date first (it
/// does nothing when the sources have not changed since the last build), so a
/// stale app is never served after an edit; an installed binary uses what is
/// there.
pub(super) fn build_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = dir {
        if !renderer(dir).is_file() {
            bail!(
                "{} holds no browser build (no bin/votemesh-client); make one with client/build.sh",
                dir.display()
            );
        }
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("this binary is not inside a cargo target directory; pass --web-build")?
        .to_path_buf();
    let dir = target.join("web");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../client/build.sh");
    if !script.is_file() {
        if renderer(&dir).is_file() {
            return Ok(dir);
        }
        bail!(
            "no browser build at {} and no source checkout to build one; pass --web-build",
            dir.display()
        );
    }
    if !renderer(&dir).is_file() {
        eprintln!(
            "building the browser app into {} with client/build.sh (the first time takes several minutes)",
            dir.display()
        );
    }
    let status = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running client/build.sh")?;
    if !status.success() || !renderer(&dir).is_file() {
        bail!("client/build.sh failed ({status}); see its output above");
    }
    Ok(dir)
}

fn renderer(build: &Path) -> PathBuf {
    build.join("bin/votemesh-client")
}

/// Waits until every relay serves the poll's page, prints where, and keeps
/// everything running until Ctrl-C.
pub(super) async fn serve(
    client: &reqwest::Client,
    relays: &[EdgeRelay],
    poll: &PollId,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for relay in relays {
        let url = format!("{}/poll/{poll}", relay.url);
        loop {
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => break,
                _ if started.elapsed() > FIRST_RENDER => {
                    bail!("{url} was not rendered within {FIRST_RENDER:?}; see the relay's warnings above")
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    eprintln!();
    eprintln!("Serving the voters' pages (counts follow live; a vote cast there is signed in the browser and confirmed by a node):");
    for (i, relay) in relays.iter().enumerate() {
        eprintln!(
            "  relay {}: {}/poll/{poll}   results: {}/results/{poll}",
            i + 1,
            relay.url,
            relay.url
        );
    }
    eprintln!("Press Ctrl-C to stop the nodes and relays.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("stopping");
    Ok(())
}
