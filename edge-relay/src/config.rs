//! Relay configuration: embedded defaults, then a TOML file, then
//! `VOTEMESH_RELAY_*` environment variables, then command-line flags, each
//! layer overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crdt::PublicKey;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The keys a config file or `VOTEMESH_RELAY_<KEY>` may set.
const KEYS: [&str; 24] = [
    "listen",
    "nodes",
    "node_keys",
    "log_format",
    "web_dir",
    "pages",
    "publish_interval_secs",
    "registrar_key",
    "cors_origins",
    "body_limit",
    "request_timeout_ms",
    "ip_rate",
    "ip_burst",
    "poll_rate",
    "poll_burst",
    "retries",
    "backoff_ms",
    "hedge_after_ms",
    "health_interval_ms",
    "pow_bits",
    "challenge_ttl_secs",
    "heartbeat_secs",
    "shutdown_timeout_secs",
    "max_challenges",
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

/// Everything a relay needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the relay listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Base URLs of the regional nodes, in order of preference.
    pub nodes: Vec<String>,
    /// The nodes' public keys (hex), one per node in the order of `nodes`;
    /// empty: each node's key is learnt from its `GET /v1/node` and kept.
    pub node_keys: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Directory of the web app to serve at `/`, if any.
    pub web_dir: Option<PathBuf>,
    /// The browser build (`client/build.sh` output). With it, the relay
    /// renders the poll and results pages of every poll its nodes hold into
    /// `web_dir`, at start and then every `publish_interval_secs`.
    pub pages: Option<PathBuf>,
    /// Seconds between two renderings of the pages.
    pub publish_interval_secs: u64,
    /// File holding a registrar's secret key seed (64 hex characters).
    pub registrar_key: Option<PathBuf>,
    /// Origins allowed to call the API cross-origin; empty: only the relay's own.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Milliseconds a whole request (forwarding included) may take.
    pub request_timeout_ms: u64,
    /// Requests per second allowed to one client IP, sustained.
    pub ip_rate: u32,
    /// Requests one client IP may send at once above the rate.
    pub ip_burst: u32,
    /// Requests per second allowed for one poll, sustained, from all clients.
    pub poll_rate: u32,
    /// Requests for one poll allowed at once above the rate.
    pub poll_burst: u32,
    /// Further attempts after a forwarded request fails.
    pub retries: u32,
    /// First backoff between attempts, in milliseconds; doubled each time.
    pub backoff_ms: u64,
    /// Milliseconds without an answer before a second, hedged request goes
    /// to the next node.
    pub hedge_after_ms: u64,
    /// Milliseconds between health checks of each node.
    pub health_interval_ms: u64,
    /// Leading zero bits a proof-of-work solution must have.
    pub pow_bits: u8,
    /// Seconds a proof-of-work challenge stays valid.
    pub challenge_ttl_secs: u64,
    /// Seconds between heartbeats on idle live streams.
    pub heartbeat_secs: u64,
    /// Seconds to wait for open connections at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Most unanswered challenges held at once; more get 429.
    pub max_challenges: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7500)),
            nodes: Vec::new(),
            node_keys: Vec::new(),
            log_format: LogFormat::Human,
            web_dir: None,
            pages: None,
            publish_interval_secs: 30,
            registrar_key: None,
            cors_origins: Vec::new(),
            body_limit: 1024 * 1024,
            request_timeout_ms: 10_000,
            ip_rate: 50,
            ip_burst: 200,
            poll_rate: 5_000,
            poll_burst: 10_000,
            retries: 3,
            backoff_ms: 50,
            hedge_after_ms: 250,
            health_interval_ms: 1_000,
            pow_bits: 18,
            challenge_ttl_secs: 120,
            heartbeat_secs: 15,
            shutdown_timeout_secs: 5,
            max_challenges: 100_000,
        }
    }
}

/// A votemesh edge relay: forwards votes to regional nodes (failover,
/// retries, hedging), streams live counts over WebSocket and Server-Sent
/// Events, rate-limits, issues credentials after a proof of work and serves
/// the web app.
///
/// Each flag can also come from the environment (VOTEMESH_RELAY_<FLAG>) or
/// the --config file; flags win over the environment, the environment over
/// the file. On start it prints one JSON line to stdout,
/// {"event":"listening","addr":..}; logs go to stderr.
#[derive(Debug, Clone, Default, Serialize, clap::Parser)]
#[command(name = "votemesh-relay", version)]
pub struct RunArgs {
    /// TOML config file with any of the keys listen, nodes, node_keys,
    /// log_format, web_dir, pages, publish_interval_secs, registrar_key,
    /// cors_origins, body_limit, request_timeout_ms, ip_rate, ip_burst,
    /// poll_rate, poll_burst, retries, backoff_ms, hedge_after_ms,
    /// health_interval_ms, pow_bits, challenge_ttl_secs, heartbeat_secs,
    /// shutdown_timeout_secs, max_challenges.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on; port 0 picks a free port, reported in
    /// the start-up line on stdout. [env: VOTEMESH_RELAY_LISTEN] [default: 127.0.0.1:7500]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,

    /// Base URL of a regional node (http://host:port); repeat for several,
    /// nearest first: votes go to the first healthy one and fail over to the
    /// next. Required. [env: VOTEMESH_RELAY_NODES, as a TOML list: '["http://a", "http://b"]']
    #[arg(long = "node", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,

    /// The public key (64 hex characters, as its GET /v1/node answers) of
    /// each --node, in the same order: one per node, or none. The relay
    /// passes on only receipts signed by the key of the node that answered,
    /// and pages trust only these keys. Without them each node's key is
    /// learnt from its GET /v1/node when first reached, and kept while the
    /// relay runs. [env: VOTEMESH_RELAY_NODE_KEYS, as a TOML list] [default: learnt]
    #[arg(long = "node-key", value_name = "KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_keys: Option<Vec<String>>,

    /// Format of the logs written to stderr (filter them with RUST_LOG).
    /// [env: VOTEMESH_RELAY_LOG_FORMAT] [default: human]
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// Directory of the built web app, served at /: hashed assets
    /// (name.<hash>.ext) cached for a year as immutable, HTML for a minute,
    /// compressed with brotli or gzip; sw.js gets Service-Worker-Allowed: /.
    /// [env: VOTEMESH_RELAY_WEB_DIR] [default: none, no pages]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_dir: Option<PathBuf>,

    /// The browser build made by client/build.sh (bin/votemesh-client and
    /// assets/). With it, the relay renders a poll page and a live results
    /// page for every poll its nodes hold into --web-dir, with the counts of
    /// the moment, at start and then every --publish-interval-secs. Each
    /// rendering REPLACES the whole --web-dir, so it must be missing
    /// (created), empty, or made by an earlier rendering (it holds a
    /// .votemesh-site file); any other directory is refused at start, never
    /// deleted. The renderer works beside it (.publish-*, .site-*.json), so
    /// its parent must be writable. A poll that cannot be rendered is left
    /// out, with a warning naming it. [env: VOTEMESH_RELAY_PAGES] [default: none]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PathBuf>,

    /// Seconds between two renderings of the pages (with --pages).
    /// [env: VOTEMESH_RELAY_PUBLISH_INTERVAL_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_interval_secs: Option<u64>,

    /// File with a registrar's secret key seed (64 hex characters). With it,
    /// the relay issues credentials, after a proof of work, for polls whose
    /// eligibility names this registrar. [env: VOTEMESH_RELAY_REGISTRAR_KEY] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar_key: Option<PathBuf>,

    /// An origin (https://example.org) allowed to call the API from another
    /// site; repeat for several. Without any, browsers allow only pages served
    /// by the relay itself. [env: VOTEMESH_RELAY_CORS_ORIGINS] [default: none]
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<Vec<String>>,

    /// Largest request body accepted, in bytes; larger get 413
    /// body_too_large. [env: VOTEMESH_RELAY_BODY_LIMIT] [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,

    /// Milliseconds a request may take, body and forwarding included; then
    /// 408 request_timeout. Live streams are exempt.
    /// [env: VOTEMESH_RELAY_REQUEST_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,

    /// Sustained requests per second allowed from one client IP; more get
    /// 429 rate_limited with Retry-After. [env: VOTEMESH_RELAY_IP_RATE] [default: 50]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_rate: Option<u32>,

    /// Requests one client IP may send in a burst above its rate.
    /// [env: VOTEMESH_RELAY_IP_BURST] [default: 200]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_burst: Option<u32>,

    /// Sustained requests per second allowed for one poll from all clients
    /// together. [env: VOTEMESH_RELAY_POLL_RATE] [default: 5000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_rate: Option<u32>,

    /// Requests for one poll allowed in a burst above its rate.
    /// [env: VOTEMESH_RELAY_POLL_BURST] [default: 10000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_burst: Option<u32>,

    /// Further attempts, on other nodes where there are, after a forwarded
    /// request fails (no answer, or a 5xx). [env: VOTEMESH_RELAY_RETRIES] [default: 3]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,

    /// Milliseconds before the first retry, doubled each time, with jitter.
    /// [env: VOTEMESH_RELAY_BACKOFF_MS] [default: 50]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,

    /// Milliseconds a node may take to answer before the same request also
    /// goes to the next node (a hedge; votes are idempotent, the first answer
    /// wins). [env: VOTEMESH_RELAY_HEDGE_AFTER_MS] [default: 250]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge_after_ms: Option<u64>,

    /// Milliseconds between health checks (GET /readyz) of each node.
    /// [env: VOTEMESH_RELAY_HEALTH_INTERVAL_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_interval_ms: Option<u64>,

    /// Leading zero bits of SHA-256(nonce || voter || solution) a
    /// proof-of-work solution needs; each bit doubles a client's work.
    /// [env: VOTEMESH_RELAY_POW_BITS] [default: 18]
    #[arg(long, value_name = "BITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pow_bits: Option<u8>,

    /// Seconds a proof-of-work challenge stays valid.
    /// [env: VOTEMESH_RELAY_CHALLENGE_TTL_SECS] [default: 120]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_ttl_secs: Option<u64>,

    /// Seconds between heartbeats (SSE comments, WebSocket pings) on idle
    /// live streams. [env: VOTEMESH_RELAY_HEARTBEAT_SECS] [default: 15]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u64>,

    /// Seconds to wait for open connections after SIGTERM or SIGINT.
    /// [env: VOTEMESH_RELAY_SHUTDOWN_TIMEOUT_SECS] [default: 5]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,

    /// Most unanswered proof-of-work challenges held at once (each ~100
    /// bytes); more get 429. [env: VOTEMESH_RELAY_MAX_CHALLENGES] [default: 100000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_challenges: Option<usize>,
}

impl Config {
    /// Merges defaults, the config file named by `args`, the process
    /// environment and the flags, in that order of increasing precedence.
    pub fn load(args: &RunArgs) -> Result<Config, ConfigError> {
        let env = Env::prefixed("VOTEMESH_RELAY_");
        let config: Config = Self::figment(args, args.config.as_deref(), env)
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))?;
        config.check()
    }

    /// Refuses settings that would disable a limit or leave nothing to forward to.
    pub fn check(self) -> Result<Config, ConfigError> {
        let fail = |message: String| Err(ConfigError(Box::new(figment::Error::from(message))));
        if self.nodes.is_empty() {
            return fail("nodes: at least one node URL is required (--node URL)".into());
        }
        for node in &self.nodes {
            let usable = reqwest::Url::parse(node)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
            if !usable {
                return fail(format!(
                    "nodes: {node:?} is not a node URL; give it with its scheme, e.g. http://127.0.0.1:7400"
                ));
            }
        }
        let zero = [
            ("request_timeout_ms", self.request_timeout_ms),
            ("ip_rate", u64::from(self.ip_rate)),
            ("ip_burst", u64::from(self.ip_burst)),
            ("poll_rate", u64::from(self.poll_rate)),
            ("poll_burst", u64::from(self.poll_burst)),
            ("health_interval_ms", self.health_interval_ms),
            ("challenge_ttl_secs", self.challenge_ttl_secs),
            ("heartbeat_secs", self.heartbeat_secs),
            ("max_challenges", self.max_challenges as u64),
            ("publish_interval_secs", self.publish_interval_secs),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((key, _)) = zero {
            return fail(format!("{key} must be at least 1"));
        }
        if let Err(reason) = self.pinned_keys() {
            return fail(reason);
        }
        if self.pages.is_some() && self.web_dir.is_none() {
            return fail("pages: --pages needs --web-dir, the directory to render into".into());
        }
        if self.pow_bits > 32 {
            return fail(format!("pow_bits {} is above 32", self.pow_bits));
        }
        Ok(self)
    }

    /// The pinned key of each node, in the order of `nodes`, or none at all.
    pub(crate) fn pinned_keys(&self) -> Result<Vec<PublicKey>, String> {
        if self.node_keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.node_keys.len() != self.nodes.len() {
            return Err(format!(
                "node_keys: {} keys for {} nodes; give one --node-key per --node, in the same order, or none",
                self.node_keys.len(),
                self.nodes.len()
            ));
        }
        self.node_keys
            .iter()
            .map(|key| {
                key.trim().parse::<PublicKey>().map_err(|_| {
                    format!("node_keys: {key:?} is not a public key (64 hex characters)")
                })
            })
            .collect()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
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

    fn no_env() -> Env {
        Env::prefixed("VOTEMESH_RELAY_TEST_NONE_")
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        let toml = "nodes = [\"http://a:1\"]\nip_rate = 7\npow_bits = 3\n";
        std::fs::write(&file, toml).unwrap();
        let args = RunArgs {
            ip_rate: Some(9),
            ..RunArgs::default()
        };

        let config: Config = Config::figment(&args, Some(&file), no_env())
            .extract()
            .unwrap();

        assert_eq!(config.nodes, vec!["http://a:1".to_string()]);
        assert_eq!(config.ip_rate, 9);
        assert_eq!(config.pow_bits, 3);
        assert_eq!(config.listen, Config::default().listen);
    }

    #[test]
    fn a_relay_without_nodes_is_refused() {
        let config: Config = Config::figment(&RunArgs::default(), None, no_env())
            .extract()
            .unwrap();

        let error = config.check().unwrap_err().to_string();

        assert!(error.contains("nodes"), "{error}");
    }

    #[test]
    fn pinned_node_keys_must_be_one_valid_key_per_node() {
        let key = crdt::SecretKey::from_seed(&[4; 32]).public().to_string();
        let config = |keys: Vec<String>| Config {
            nodes: vec!["http://a:1".into(), "http://b:1".into()],
            node_keys: keys,
            ..Config::default()
        };

        assert!(config(Vec::new()).check().is_ok(), "none: learnt");
        assert!(config(vec![key.clone(), key.clone()]).check().is_ok());
        let short = config(vec![key.clone()]).check().unwrap_err().to_string();
        assert!(short.contains("1 keys for 2 nodes"), "{short}");
        let bad = config(vec![key, "zz".into()])
            .check()
            .unwrap_err()
            .to_string();
        assert!(bad.contains("\"zz\" is not a public key"), "{bad}");
    }

    #[test]
    fn the_help_lists_every_config_key() {
        use clap::CommandFactory;
        let command = RunArgs::command();
        let config = command
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .unwrap();
        let help = config.get_help().unwrap().to_string();
        let words: Vec<&str> = help
            .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
            .collect();
        for key in KEYS {
            assert!(
                words.contains(&key),
                "--config help does not name {key}: {help}"
            );
        }
    }

    #[test]
    fn a_node_address_without_its_scheme_is_refused() {
        let config = |node: &str| Config {
            nodes: vec![node.into()],
            ..Config::default()
        };

        let error = config("127.0.0.1:7400").check().unwrap_err().to_string();
        assert!(error.contains("http://127.0.0.1:7400"), "{error}");
        assert!(config("ftp://a:1").check().is_err());
        assert!(config("http://127.0.0.1:7400").check().is_ok());
        assert!(config("https://node.example").check().is_ok());
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "nodez = []\n").unwrap();

        let result: Result<Config, _> =
            Config::figment(&RunArgs::default(), Some(&file), no_env()).extract();

        assert!(result.is_err());
    }
}
