//! One error enum per operation. Browser failures (IndexedDB, `fetch`, the
//! crypto API) arrive as JavaScript values and are kept as their text.

use crdt::{PollId, PublicKey};

/// Why the outbox's IndexedDB store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// IndexedDB refused an operation (unavailable, quota, blocked upgrade...).
    #[error("indexeddb {op} failed: {message}")]
    Idb {
        /// What was being done (`open`, `read records`, ...).
        op: &'static str,
        /// The browser's message.
        message: String,
    },
    /// A stored value does not parse: the store was written by something else.
    #[error("stored {what} {key:?} is corrupt: {reason}")]
    Corrupt {
        /// Which kind of value (`record`, `voter key`, `credential`).
        what: &'static str,
        /// Its key in the store.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Why the voter key could not be loaded or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `crypto.getRandomValues` is missing or failed.
    #[error("no secure random source: {0}")]
    Random(String),
}

/// Why a vote was not cast (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// The choice is not an option of the poll.
    #[error("choice {choice} is not an option of poll {poll} ({options} options)")]
    UnknownOption {
        /// The poll.
        poll: PollId,
        /// The choice given.
        choice: u32,
        /// How many options the poll has.
        options: usize,
    },
    /// The poll needs a credential and none is held: call `credential` first.
    #[error("poll {poll} needs a credential and none is held")]
    NeedsCredential {
        /// The poll.
        poll: PollId,
    },
    /// The poll has an allow list without this voter's key.
    #[error("voter {voter} is not on the allow list of poll {poll}")]
    NotAllowed {
        /// The poll.
        poll: PollId,
        /// This voter's key.
        voter: PublicKey,
    },
    /// No node is trusted to confirm the vote: no receipt could ever
    /// confirm it, so it is not cast.
    #[error("no regional node is trusted to confirm a vote on poll {poll}")]
    NoTrustedNode {
        /// The poll.
        poll: PollId,
    },
    /// The voter's pending record could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fresh vote id could not be drawn.
    #[error("no secure random source: {0}")]
    Random(String),
}

/// Why a flush stopped. Network failures and refusals are not errors: they
/// are recorded on the vote's record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The outbox could not be read or updated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request could not even be built (a malformed origin).
    #[error("cannot build a request for {url}: {message}")]
    BadUrl {
        /// The URL tried.
        url: String,
        /// The browser's message.
        message: String,
    },
}

/// Why no credential was obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The poll's eligibility is not `credential`.
    #[error("poll {poll} does not take credentials")]
    NotNeeded {
        /// The poll.
        poll: PollId,
    },
    /// The request did not reach the relay or got no answer.
    #[error("{step} request failed: {message}")]
    Network {
        /// `challenge` or `credential`.
        step: &'static str,
        /// The browser's message.
        message: String,
    },
    /// The relay answered with an error.
    #[error("{step} refused with {status} {code}: {message}")]
    Refused {
        /// `challenge` or `credential`.
        step: &'static str,
        /// HTTP status.
        status: u16,
        /// The error code of the body, or `http_<status>`.
        code: String,
        /// The error message of the body.
        message: String,
    },
    /// The relay's answer is not the expected JSON.
    #[error("{step} reply is malformed: {reason}")]
    Malformed {
        /// `challenge` or `credential`.
        step: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The challenge asks for more work than a browser should do.
    #[error("challenge asks for {bits} zero bits, more than the {max} this client solves")]
    TooHard {
        /// Bits asked.
        bits: u8,
        /// Most bits solved.
        max: u8,
    },
    /// The credential received is not valid for this poll and voter.
    #[error("credential refused: {0}")]
    Invalid(String),
    /// The credential could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}
