//! Why a sync session failed.

use crate::ids::{EntryHash, PollId};

/// Why a sync session stopped with an error. The session is over after any
/// of these; start a new one to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The message is about another poll than the session's.
    #[error("message is for poll {found}, the session is for {expected}")]
    WrongPoll {
        /// The session's poll.
        expected: PollId,
        /// The poll the message names.
        found: PollId,
    },
    /// The message does not fit the protocol's current step.
    #[error("unexpected `{message}` message while {step}")]
    OutOfOrder {
        /// The step the session was at.
        step: &'static str,
        /// The kind of message received.
        message: &'static str,
    },
    /// Coded symbols do not continue where the previous ones ended.
    #[error("symbols start at index {found}, expected {expected}")]
    SymbolGap {
        /// The next index the session expected.
        expected: u64,
        /// The index the message starts at.
        found: u64,
    },
    /// More symbols arrived than were asked for.
    #[error("symbols up to index {found} arrived, only up to {requested} were asked for")]
    UnrequestedSymbols {
        /// The end of the requested range.
        requested: u64,
        /// The end of what arrived.
        found: u64,
    },
    /// The peer asked for symbols that are already sent or beyond the cap.
    #[error("symbols asked up to {until}, allowed {sent} < until <= {cap}")]
    BadSymbolRequest {
        /// The requested end.
        until: u64,
        /// Symbols sent so far.
        sent: u64,
        /// The most symbols a session sends.
        cap: u64,
    },
    /// The peer's set count or digest changed between its messages.
    #[error("peer's count or digest changed within one session")]
    PeerChanged,
    /// A list of hashes that must ascend across messages does not.
    #[error("hash {hash} does not come after the previous hashes")]
    HashOrder {
        /// The offending hash.
        hash: EntryHash,
    },
    /// An entry sent for this poll names another one.
    #[error("entry {hash} is for poll {found}")]
    EntryForOtherPoll {
        /// The entry.
        hash: EntryHash,
        /// The poll it names.
        found: PollId,
    },
    /// The peer sent nothing for too long.
    #[error("peer silent for {idle_ms} ms")]
    TimedOut {
        /// Time since the last message, ms.
        idle_ms: u64,
    },
    /// A message arrived after the session ended or failed.
    #[error("the session has already ended")]
    Ended,
}
