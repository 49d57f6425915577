//! Node processes started by the demo, and the HTTP calls it makes to them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use crdt::{Poll, PollId, PublicKey, Receipt, Vote};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// How long a node may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per request before the demo gives up (requests are idempotent).
const ATTEMPTS: u32 = 8;

/// A `votemesh-node run` child process; killed when dropped.
pub(crate) struct NodeProcess {
    child: Child,
    /// Held open so the node never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pub(crate) addr: String,
    pub(crate) key: PublicKey,
}

#[derive(Deserialize)]
struct Listening {
    addr: String,
    node: PublicKey,
}

impl NodeProcess {
    /// Starts this binary as a node on a free loopback port, with `extra`
    /// arguments and environment variables.
    pub(crate) async fn start(
        data_dir: &Path,
        log: &Path,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<NodeProcess> {
        let exe = std::env::current_exe().context("locating the votemesh-node binary")?;
        let log =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the node")?;

        let stdout = child.stdout.take().context("node stdout")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        match tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => bail!("the node exited before listening; see its log"),
            Err(_) => bail!("the node did not start within {START_TIMEOUT:?}"),
        }
        let listening: Listening =
            serde_json::from_str(&line).with_context(|| format!("node start line {line:?}"))?;
        Ok(NodeProcess {
            child,
            _stdout: stdout,
            addr: listening.addr,
            key: listening.node,
        })
    }

    pub(crate) fn key_short(&self) -> String {
        self.key.short()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) async fn create_poll(
        &self,
        client: &reqwest::Client,
        poll: &Poll,
    ) -> anyhow::Result<()> {
        let response = client.post(self.url("/v1/polls")).json(poll).send().await?;
        if !response.status().is_success() {
            bail!(
                "creating the poll: {} {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    pub(crate) async fn tally(
        &self,
        client: &reqwest::Client,
        poll: &PollId,
    ) -> anyhow::Result<NodeTally> {
        let response = client
            .get(self.url(&format!("/v1/polls/{poll}/tally")))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("tally: {} {}", response.status(), response.text().await?);
        }
        Ok(response.json().await?)
    }

    /// Streams the export to `path`; returns the number of lines.
    pub(crate) async fn export(
        &self,
        client: &reqwest::Client,
        poll: &PollId,
        path: &Path,
    ) -> anyhow::Result<u64> {
        let mut response = client
            .get(self.url(&format!("/v1/polls/{poll}/export")))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("export: {} {}", response.status(), response.text().await?);
        }
        let mut file = tokio::fs::File::create(path).await?;
        let mut lines = 0;
        while let Some(chunk) = response.chunk().await? {
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok(lines)
    }

    /// Asks the node to shut down, then waits for it.
    pub(crate) async fn stop(mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The part of the node's tally reply the demo compares.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeTally {
    pub(crate) counts: Vec<u64>,
    pub(crate) digest: String,
    pub(crate) entries: u64,
}

/// The mesh identity of a node the demo is about to start: its key is
/// written into the data directory first, so every peer id is known before
/// any node starts and each can allow exactly the others.
pub(crate) struct Ident {
    pub(crate) peer_id: String,
    pub(crate) port: u16,
}

impl Ident {
    pub(crate) fn prepare(data_dir: &Path, seed: &[u8; 32]) -> anyhow::Result<Ident> {
        std::fs::create_dir_all(data_dir)?;
        std::fs::write(data_dir.join("node.key"), hex::encode(seed))?;
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(*seed)?;
        // A free port now; the node binds it a moment later (loopback only).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Ident {
            peer_id: keypair.public().to_peer_id().to_string(),
            port,
        })
    }

    pub(crate) fn listen(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    pub(crate) fn addr(&self) -> String {
        format!("{}/p2p/{}", self.listen(), self.peer_id)
    }
}

/// The operator's view of a node's peers, from `GET /v1/peers`.
#[derive(Debug, Deserialize)]
struct Peers {
    peers: Vec<PeerState>,
}

#[derive(Debug, Deserialize)]
struct PeerState {
    connected: bool,
}

impl NodeProcess {
    /// How many peers the node reports connected.
    pub(crate) async fn connected_peers(&self, client: &reqwest::Client) -> anyhow::Result<usize> {
        let peers: Peers = client
            .get(self.url("/v1/peers"))
            .send()
            .await?
            .json()
            .await?;
        Ok(peers.peers.iter().filter(|p| p.connected).count())
    }

    /// Blocks or unblocks a peer through the operator API.
    pub(crate) async fn set_blocked(
        &self,
        client: &reqwest::Client,
        token: &str,
        peer_id: &str,
        blocked: bool,
    ) -> anyhow::Result<()> {
        let action = if blocked { "block" } else { "unblock" };
        let response = client
            .post(self.url(&format!("/v1/peers/{peer_id}/{action}")))
            .bearer_auth(token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "{action} {peer_id}: {} {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }
}

/// What one batch request achieved.
pub(crate) struct BatchOutcome {
    pub(crate) stored: u64,
    pub(crate) duplicates: u64,
    pub(crate) rejected: u64,
    pub(crate) retries: u64,
    pub(crate) receipts: Vec<Receipt>,
}

#[derive(Deserialize)]
struct BatchReply {
    results: Vec<ItemReply>,
}

#[derive(Deserialize)]
struct ItemReply {
    receipt: Option<Receipt>,
    status: Option<String>,
}

/// Sends one batch, retrying transport errors and 5xx with backoff: the
/// node deduplicates by entry hash, so a retry never counts twice.
pub(crate) async fn submit_batch(
    client: &reqwest::Client,
    url: &str,
    votes: &[Vote],
) -> anyhow::Result<BatchOutcome> {
    let body = serde_json::json!({ "votes": votes });
    let mut retries = 0;
    loop {
        let attempt = client.post(url).json(&body).send().await;
        let failure = match attempt {
            Ok(response) if response.status().is_success() => {
                let reply: BatchReply = response.json().await.context("batch reply")?;
                return Ok(tally_batch(reply, retries));
            }
            Ok(response) if response.status().is_client_error() => {
                bail!(
                    "batch refused: {} {}",
                    response.status(),
                    response.text().await?
                )
            }
            Ok(response) => format!("status {}", response.status()),
            Err(e) => e.to_string(),
        };
        retries += 1;
        if retries >= ATTEMPTS {
            bail!("batch failed after {ATTEMPTS} attempts: {failure}");
        }
        tokio::time::sleep(Duration::from_millis(50 << retries.min(6))).await;
    }
}

fn tally_batch(reply: BatchReply, retries: u32) -> BatchOutcome {
    let mut out = BatchOutcome {
        stored: 0,
        duplicates: 0,
        rejected: 0,
        retries: retries as u64,
        receipts: Vec::new(),
    };
    for item in reply.results {
        match (item.receipt, item.status.as_deref()) {
            (Some(receipt), Some("duplicate")) => {
                out.duplicates += 1;
                out.receipts.push(receipt);
            }
            (Some(receipt), _) => {
                out.stored += 1;
                out.receipts.push(receipt);
            }
            (None, _) => out.rejected += 1,
        }
    }
    out
}
