//! Error types, one per operation, and the HTTP error every handler returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(#[from] pub(crate) Box<figment::Error>);

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is incomplete or inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registrar key file could not be read or does not hold 32 bytes of hex.
    #[error("registrar key {}: {reason}", path.display())]
    RegistrarKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The web directory does not exist.
    #[error("web dir {} is not a directory", path.display())]
    WebDir {
        /// The directory.
        path: PathBuf,
    },
    /// `--pages` does not name a browser build.
    #[error("pages {}: {reason}", path.display())]
    Pages {
        /// The build directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The web directory to render into holds files the renderer did not
    /// make; they would be deleted at the first rendering.
    #[error(
        "web dir {} is not empty and was not made by the page renderer (it has no \
         .votemesh-site file): --pages replaces the whole directory at each rendering, \
         so give an empty or new directory",
        path.display()
    )]
    WebDirNotOurs {
        /// The directory.
        path: PathBuf,
    },
    /// The web directory could not be created or read.
    #[error("web dir {}: {source}", path.display())]
    WebDirCreate {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The renderer works and swaps beside the web directory: its parent
    /// must take new files.
    #[error("cannot write in {}, where the pages are rendered before they replace the web dir: {source}", path.display())]
    WebDirParent {
        /// The parent directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client for the nodes could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    /// The listen address could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An HTTP error: a status and `{"error":{"code":..,"message":..}}`, the
/// same shape the nodes answer with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable, machine-readable code.
    pub code: &'static str,
    /// What was wrong, lowercase, naming the offending value.
    pub message: String,
    /// Seconds to send as `Retry-After`, if any.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with no `Retry-After`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub(crate) fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", message)
    }

    pub(crate) fn unknown_poll(id: &crdt::PollId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_poll",
            format!("poll {id} is not known"),
        )
    }

    pub(crate) fn no_upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "no_upstream", message)
    }

    pub(crate) fn rate_limited(scope: &str, wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            retry_after: Some(Duration::from_secs(secs)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests for this {scope}; retry in {secs} s"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let value = axum::http::HeaderValue::from(wait.as_secs());
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// What a command-line failure prints: the error, then each cause whose
/// text the line before it does not already carry ("config: x" caused by
/// "x" is said once).
fn failure_lines(error: &anyhow::Error) -> Vec<String> {
    let mut told = error.to_string();
    let mut lines = vec![format!("Error: {told}")];
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !told.contains(&text) {
            lines.push(format!("  caused by: {text}"));
        }
        told = text;
    }
    lines
}

/// The exit of `votemesh-relay` and `votemesh-node`: success, or the
/// failure and its causes on stderr (see [`failure_lines`]) and status 1.
pub fn report_exit(done: anyhow::Result<()>) -> std::process::ExitCode {
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            for line in failure_lines(&error) {
                eprintln!("{line}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::failure_lines;

    #[test]
    fn a_cause_the_message_already_carries_is_said_once() {
        let inner = anyhow::anyhow!("sync_interval_secs must be at least 1");
        let said = failure_lines(&inner.context("config: sync_interval_secs must be at least 1"));
        assert_eq!(
            said,
            ["Error: config: sync_interval_secs must be at least 1"]
        );

        let other = anyhow::anyhow!("Address already in use").context("serving");
        assert_eq!(
            failure_lines(&other),
            ["Error: serving", "  caused by: Address already in use"]
        );
    }
}
