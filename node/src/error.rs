//! Error types, one per operation, and the HTTP error every handler returns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Why the durable store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled reported an error.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// Opening or fsyncing a file of the store failed.
    #[error("sync {}: {source}", path.display())]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process (another node on the same data dir) has the store open.
    #[error("{} is in use by another process (is another node running on this data dir?)", path.display())]
    InUse {
        /// The store's directory.
        path: PathBuf,
    },
    /// A stored record does not decode: the data on disk is damaged.
    #[error("corrupt record in tree {tree} at key {key}: {reason}")]
    Corrupt {
        /// The sled tree.
        tree: String,
        /// The key, as hex.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, writing or syncing the key file failed.
    #[error("node key {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold 32 bytes of hex.
    #[error("node key {} is not 32 bytes of hex", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
}

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(#[from] pub(crate) Box<figment::Error>);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created.
    #[error("data dir {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store could not be opened or read back.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The replication mesh could not start.
    #[error("p2p: {0}")]
    Mesh(String),
    /// The listen address could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a group commit did not make a request durable. Cloned to every waiter
/// of the group.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// Writing or syncing the group failed; nothing of it was acknowledged.
    #[error("storage: {0}")]
    Storage(Arc<StoreError>),
    /// The storage task panicked.
    #[error("storage task failed: {0}")]
    Panicked(String),
    /// The committer has stopped (the node is shutting down).
    #[error("committer stopped")]
    Stopped,
}

/// An HTTP error: a status and `{"error":{"code":..,"message":..}}`.
///
/// `code` is stable and machine-readable; `message` is lowercase text naming
/// the offending value.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub(crate) fn unknown_poll(poll: &crdt::PollId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_poll",
            format!("no poll {poll} on this node"),
        )
    }

    pub(crate) fn rejected(rejection: &crdt::Rejection) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            rejection.code(),
            rejection.to_string(),
        )
    }

    pub(crate) fn storage(error: &CommitError) -> Self {
        let message = format!("votes could not be made durable, retry later: {error}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            message,
        )
    }

    /// The JSON body, also used for per-item errors of a batch.
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: &self.message,
            },
        }
    }
}

/// `{"error":{"code":..,"message":..}}`, serialized without a `Value` tree.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Debug, serde::Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<CommitError> for ApiError {
    fn from(error: CommitError) -> Self {
        ApiError::storage(&error)
    }
}
