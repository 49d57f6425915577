//! Node configuration: embedded defaults, then a TOML file, then
//! `VOTEMESH_*` environment variables, then command-line flags, each layer
//! overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The keys a config file or `VOTEMESH_<KEY>` may set.
const KEYS: [&str; 15] = [
    "data_dir",
    "listen",
    "log_format",
    "body_limit",
    "max_batch",
    "max_exports",
    "header_timeout_secs",
    "body_timeout_secs",
    "write_timeout_secs",
    "shutdown_timeout_secs",
    "p2p_listen",
    "peers",
    "allow",
    "sync_interval_secs",
    "admin_token",
];

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding the node key and the sled store.
    pub data_dir: PathBuf,
    /// Address the HTTP API listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Most votes accepted in one batch request.
    pub max_batch: usize,
    /// Most exports streamed at once; more get 429 `export_busy`.
    pub max_exports: usize,
    /// Seconds a client may take to send a request's headers (at least 1).
    pub header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body (at least 1).
    pub body_timeout_secs: u64,
    /// Seconds a connection may go without the client accepting any response
    /// bytes before it is closed (at least 1).
    pub write_timeout_secs: u64,
    /// Seconds to wait for open connections after SIGTERM or SIGINT before
    /// exiting anyway.
    pub shutdown_timeout_secs: u64,
    /// libp2p listen address of the replication mesh (tcp + noise + yamux);
    /// empty disables the mesh.
    pub p2p_listen: String,
    /// Peers to dial and keep dialing: multiaddrs ending in `/p2p/<peer id>`.
    pub peers: Vec<String>,
    /// Peer ids allowed to connect besides those in `peers`; everyone else
    /// is refused at connection level.
    pub allow: Vec<String>,
    /// Seconds between reconciliation rounds with each connected peer (at least 1).
    pub sync_interval_secs: u64,
    /// Bearer token of the operator endpoints (`/v1/peers/{id}/block`, ..);
    /// unset, they answer 403 `admin_disabled`.
    pub admin_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./votemesh-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            log_format: LogFormat::Human,
            body_limit: 8 * 1024 * 1024,
            max_batch: 10_000,
            max_exports: 8,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            write_timeout_secs: 30,
            shutdown_timeout_secs: 10,
            p2p_listen: "/ip4/127.0.0.1/tcp/0".into(),
            peers: Vec::new(),
            allow: Vec::new(),
            sync_interval_secs: 10,
            admin_token: None,
        }
    }
}

/// The flags of `votemesh-node run`. A flag left out falls back to its
/// environment variable, then to the config file, then to the default.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct RunArgs {
    /// TOML config file with any of the keys data_dir, listen, log_format,
    /// body_limit, max_batch, max_exports, header_timeout_secs,
    /// body_timeout_secs, write_timeout_secs, shutdown_timeout_secs,
    /// p2p_listen, peers, allow, sync_interval_secs, admin_token.
    /// Optional: without it the node runs on defaults.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory for the node key (node.key) and the vote store (sled/).
    /// Created if missing. [env: VOTEMESH_DATA_DIR] [default: ./votemesh-data]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// Address and port of the HTTP API; port 0 picks a free port, reported
    /// in the start-up line on stdout. [env: VOTEMESH_LISTEN] [default: 127.0.0.1:7400]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,

    /// Format of the logs written to stderr (filter them with RUST_LOG).
    /// [env: VOTEMESH_LOG_FORMAT] [default: human]
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// Largest request body accepted, in bytes; larger requests get 413
    /// body_too_large. [env: VOTEMESH_BODY_LIMIT] [default: 8388608, room for a full batch of 10000 votes]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,

    /// Most votes in one batch request; larger batches get 413
    /// batch_too_large. [env: VOTEMESH_MAX_BATCH] [default: 10000]
    #[arg(long, value_name = "VOTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,

    /// Most exports streamed at once; more get 429 export_busy with
    /// Retry-After. [env: VOTEMESH_MAX_EXPORTS] [default: 8]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_exports: Option<usize>,

    /// Seconds a client may take to send a request's headers, and to start
    /// the next request on a kept-alive connection; then the connection is
    /// closed. [env: VOTEMESH_HEADER_TIMEOUT_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_secs: Option<u64>,

    /// Seconds a client may take to send a request body; then it gets 408
    /// body_timeout. [env: VOTEMESH_BODY_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_secs: Option<u64>,

    /// Seconds a connection may go without the client accepting any response
    /// bytes (a stalled export reader, say); then it is closed.
    /// [env: VOTEMESH_WRITE_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout_secs: Option<u64>,

    /// Seconds to wait for open connections after SIGTERM or SIGINT; then
    /// the node exits anyway (acknowledged votes are already durable).
    /// [env: VOTEMESH_SHUTDOWN_TIMEOUT_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,

    /// libp2p listen address of the replication mesh, e.g.
    /// /ip4/0.0.0.0/tcp/7401; port 0 picks a free port, reported in the
    /// start-up line. An empty value disables the mesh.
    /// [env: VOTEMESH_P2P_LISTEN] [default: /ip4/127.0.0.1/tcp/0]
    #[arg(long, value_name = "MULTIADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2p_listen: Option<String>,

    /// Peers to replicate with, comma-separated or repeated: multiaddrs
    /// ending in /p2p/<peer id>, redialed with backoff while down.
    /// [env: VOTEMESH_PEERS, as a list: [a,b]] [default: none]
    #[arg(long, value_name = "MULTIADDR", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,

    /// Peer ids allowed to connect, comma-separated or repeated, in addition
    /// to the peers above; any other peer is refused at connection level.
    /// [env: VOTEMESH_ALLOW, as a list: [a,b]] [default: the peer ids of --peers]
    #[arg(long, value_name = "PEER_ID", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,

    /// Seconds between reconciliation rounds with each connected peer; a
    /// round also runs on every (re)connect. [env: VOTEMESH_SYNC_INTERVAL_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_interval_secs: Option<u64>,

    /// Bearer token for the operator endpoints POST /v1/peers/{id}/block and
    /// /unblock; without it they answer 403 admin_disabled. Prefer the
    /// environment or the file over the flag (flags show in ps).
    /// [env: VOTEMESH_ADMIN_TOKEN] [default: unset]
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

impl Config {
    /// Merges defaults, the config file named by `args`, the process
    /// environment and the flags, in that order of increasing precedence.
    pub fn load(args: &RunArgs) -> Result<Config, ConfigError> {
        let config: Config =
            Self::figment(args, args.config.as_deref(), Env::prefixed("VOTEMESH_"))
                .extract()
                .map_err(|e| ConfigError(Box::new(e)))?;
        config.check()
    }

    /// Refuses settings that would disable a limit: a zero timeout or export cap.
    fn check(self) -> Result<Config, ConfigError> {
        let zero = [
            ("max_exports", self.max_exports as u64),
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("write_timeout_secs", self.write_timeout_secs),
            ("sync_interval_secs", self.sync_interval_secs),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((key, _)) = zero {
            let message = format!("{key} must be at least 1");
            return Err(ConfigError(Box::new(figment::Error::from(message))));
        }
        if let Err(message) = crate::mesh::Settings::from_config(&self) {
            return Err(ConfigError(Box::new(figment::Error::from(message))));
        }
        Ok(self)
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub(crate) fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    pub(crate) fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    fn figment(args: &RunArgs, file: Option<&Path>, env: Env) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(env.only(&KEYS))
            .merge(Serialized::globals(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nmax_batch = 7\nbody_limit = 99\n",
        )
        .unwrap();
        let args = RunArgs {
            max_batch: Some(3),
            ..RunArgs::default()
        };

        let config: Config =
            Config::figment(&args, Some(&file), Env::prefixed("VOTEMESH_TEST_NONE_"))
                .extract()
                .unwrap();

        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.body_limit, 99);
        assert_eq!(config.max_batch, 3);
        assert_eq!(config.data_dir, Config::default().data_dir);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "listne = \"0.0.0.0:9000\"\n").unwrap();

        let result: Result<Config, _> = Config::figment(
            &RunArgs::default(),
            Some(&file),
            Env::prefixed("VOTEMESH_TEST_NONE_"),
        )
        .extract();

        assert!(result.is_err());
    }

    #[test]
    fn mesh_settings_come_from_the_file_and_bad_peers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let peer =
            "/ip4/10.0.0.2/tcp/7401/p2p/12D3KooWAaYVakMyznsMrUbM1TPKUnduj2tCfQiM6zujqQmepeqr";
        std::fs::write(
            &file,
            format!("p2p_listen = \"\"\npeers = [\"{peer}\"]\nsync_interval_secs = 3\n"),
        )
        .unwrap();
        let env = || Env::prefixed("VOTEMESH_TEST_NONE_");

        let config: Config = Config::figment(&RunArgs::default(), Some(&file), env())
            .extract()
            .unwrap();
        let settings = crate::mesh::Settings::from_config(&config).unwrap();
        let bad = RunArgs {
            peers: Some(vec!["/ip4/10.0.0.2/tcp/7401".into()]),
            ..RunArgs::default()
        };
        let bad: Config = Config::figment(&bad, None, env()).extract().unwrap();

        assert!(
            settings.listen.is_none(),
            "empty p2p_listen turns the mesh off"
        );
        assert_eq!(settings.peers.len(), 1);
        assert!(
            settings.allow.contains(&settings.peers[0].0),
            "peers are allowed"
        );
        assert_eq!(config.sync_interval_secs, 3);
        assert!(bad.check().unwrap_err().to_string().contains("/p2p/"));
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let args = RunArgs {
            header_timeout_secs: Some(0),
            ..RunArgs::default()
        };

        let config: Config = Config::figment(&args, None, Env::prefixed("VOTEMESH_TEST_NONE_"))
            .extract()
            .unwrap();

        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("header_timeout_secs"), "{error}");
    }
}
