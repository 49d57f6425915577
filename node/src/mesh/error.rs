//! What can be wrong with input from a peer, or with a session.

use crdt::sync::SyncError;
use crdt::DecodeError;

/// Why a peer's message was refused. Never a panic: logged at warn with the
/// peer, counted, and after repeats the peer is disconnected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// A gossip batch or frame does not have the expected layout.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// An entry, poll or sync message does not decode.
    #[error("undecodable {what}: {source}")]
    Decode {
        what: &'static str,
        source: DecodeError,
    },
    /// A poll definition's signature does not verify.
    #[error("poll {poll} does not verify: {reason}")]
    BadPoll { poll: String, reason: String },
    /// Entries failed admission: a peer may withhold, never forge.
    #[error("{count} entries failed admission, first: {code}")]
    Rejected { count: usize, code: &'static str },
    /// The sync message does not fit the session.
    #[error("sync: {0}")]
    Sync(#[from] SyncError),
}

impl InputError {
    /// The metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            InputError::Malformed { .. } => "malformed",
            InputError::Decode { .. } => "undecodable",
            InputError::BadPoll { .. } => "bad_poll",
            InputError::Rejected { .. } => "rejected_entries",
            InputError::Sync(_) => "sync_protocol",
        }
    }
}

/// Why one sync session or poll exchange did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The request failed on the way (refused, timed out, connection closed).
    #[error("request failed: {0}")]
    Request(String),
    /// The peer's answer was invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Storing what arrived failed.
    #[error("commit: {0}")]
    Commit(#[from] crate::error::CommitError),
    /// The session took longer than its deadline.
    #[error("timed out")]
    TimedOut,
    /// The node is stopping.
    #[error("mesh stopped")]
    Stopped,
}
