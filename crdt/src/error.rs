//! Error types, one per operation.

use crate::ids::{PollId, PublicKey};

/// Why bytes or text could not be decoded into a signed object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the named field was complete.
    #[error("input ends inside field `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes were left over after a complete object.
    #[error("{extra} trailing bytes after a complete object")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The domain-separation tag does not name this kind of object or version.
    #[error("expected tag {expected:?}, found a different tag")]
    WrongTag {
        /// The tag that was expected.
        expected: &'static str,
    },
    /// A length or count is outside the limits of the format.
    #[error("field `{field}` has length {len}, allowed {min}..={max}")]
    Length {
        /// The field.
        field: &'static str,
        /// The length found.
        len: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A text field is not valid UTF-8.
    #[error("field `{field}` is not valid utf-8")]
    Utf8 {
        /// The field.
        field: &'static str,
    },
    /// A tag byte (option presence, eligibility kind) has an unknown value.
    #[error("field `{field}` has unknown tag byte {value}")]
    UnknownTag {
        /// The field.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A list that must be sorted and free of duplicates is not.
    #[error("field `{field}` must be strictly increasing / unique")]
    NotCanonical {
        /// The field.
        field: &'static str,
    },
    /// A hex string has the wrong length or a non-hex character.
    #[error("`{field}` is not {expected} bytes of hex")]
    Hex {
        /// The field.
        field: &'static str,
        /// Bytes expected.
        expected: usize,
    },
    /// The poll's time window is empty or reversed.
    #[error("poll window is empty: opens_at {opens_at} >= closes_at {closes_at}")]
    EmptyWindow {
        /// Opening time, unix ms.
        opens_at: u64,
        /// Closing time, unix ms.
        closes_at: u64,
    },
}

/// Why a signature does not pass the acceptance rule (see `docs/encoding.md`,
/// "Signature acceptance rule"). The variants follow the rule's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Step 1: `S` is not below the group order.
    #[error("signature scalar is not canonical (S >= L)")]
    NonCanonicalScalar,
    /// Step 2: the public key is not a canonical point encoding.
    #[error("public key is not a canonical point encoding")]
    NonCanonicalKey,
    /// Step 2: `R` is not a canonical point encoding.
    #[error("signature R is not a canonical point encoding")]
    NonCanonicalR,
    /// Step 3: the public key is a small-order point.
    #[error("public key has small order")]
    SmallOrderKey,
    /// Step 3: `R` is a small-order point.
    #[error("signature R has small order")]
    SmallOrderR,
    /// Step 4: the verification equation does not hold.
    #[error("signature does not verify")]
    Equation,
}

/// Why a vote is not admitted to a poll's count. A rejected vote is never
/// stored by a node and never counted by the tally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The vote names a different poll.
    #[error("vote is for poll {found}, not {expected}")]
    WrongPoll {
        /// The poll being counted.
        expected: PollId,
        /// The poll the vote names.
        found: PollId,
    },
    /// The choice is not an index into the poll's options.
    #[error("choice {choice} is not an option (the poll has {options})")]
    UnknownOption {
        /// The choice in the vote.
        choice: u32,
        /// Number of options.
        options: usize,
    },
    /// The vote was cast outside `[opens_at, closes_at)`.
    #[error("cast_at {cast_at} is outside the poll window [{opens_at}, {closes_at})")]
    OutsideWindow {
        /// When the voter cast it, unix ms.
        cast_at: u64,
        /// Opening time.
        opens_at: u64,
        /// Closing time.
        closes_at: u64,
    },
    /// The poll requires a credential and the vote has none.
    #[error("poll requires a credential and the vote carries none")]
    MissingCredential,
    /// The poll takes no credential and the vote carries one.
    #[error("poll takes no credential but the vote carries one")]
    UnexpectedCredential,
    /// The credential is for another poll, voter or registrar.
    #[error("credential does not match: {0}")]
    CredentialMismatch(&'static str),
    /// The credential's registrar signature fails.
    #[error("credential signature: {0}")]
    CredentialSignature(SignatureError),
    /// The voter is not on the poll's allow-list.
    #[error("voter {0} is not on the poll's allow-list")]
    NotAllowed(PublicKey),
    /// The voter's signature fails.
    #[error("vote signature: {0}")]
    Signature(SignatureError),
}

impl Rejection {
    /// A stable machine-readable code, used by the node's HTTP errors and the
    /// verifier's JSON report.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::WrongPoll { .. } => "wrong_poll",
            Rejection::UnknownOption { .. } => "unknown_option",
            Rejection::OutsideWindow { .. } => "outside_window",
            Rejection::MissingCredential => "missing_credential",
            Rejection::UnexpectedCredential => "unexpected_credential",
            Rejection::CredentialMismatch(_) => "credential_mismatch",
            Rejection::CredentialSignature(_) => "bad_credential_signature",
            Rejection::NotAllowed(_) => "not_allowed",
            Rejection::Signature(SignatureError::NonCanonicalScalar) => "non_canonical_signature",
            Rejection::Signature(
                SignatureError::NonCanonicalKey | SignatureError::SmallOrderKey,
            ) => "bad_voter_key",
            Rejection::Signature(_) => "bad_signature",
        }
    }
}

/// A signed object whose signature fails, naming what it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} signed by {signer}: {source}")]
pub struct SignedByError {
    /// What kind of object (poll, receipt, attestation, tally).
    pub what: &'static str,
    /// The key it claims to be signed by.
    pub signer: PublicKey,
    /// The failure.
    pub source: SignatureError,
}
