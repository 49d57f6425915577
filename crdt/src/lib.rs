//! The votemesh vote model.
//!
//! A [`Poll`] is a definition signed by its organizer. A [`Vote`] is an entry
//! signed by a voter: poll, choice, a per-voter revision number `seq`, a
//! client idempotency key and the time it was cast. Entries are identified by
//! the hash of their signed bytes ([`EntryHash`]) and collected in a
//! grow-only set ([`PollState`]) whose merge is set union, so every replica
//! that has seen the same entries computes the same [`Tally`] and the same
//! [`Digest`].
//!
//! [`sync`] reconciles two replicas of a poll over any transport, sending
//! bytes in proportion to their difference.
//!
//! This crate does no I/O, keeps no clock and draws no randomness: times and
//! key seeds come in as arguments. It builds for `wasm32-unknown-unknown`, so
//! the browser, the nodes, the simulator and the verifier run the same code.
//!
//! The byte encodings, the signature acceptance rule and the export format are
//! specified in `docs/encoding.md` and `docs/export-format.md`.
//!
//! ```
//! use crdt::{Eligibility, PollDraft, PollState, SecretKey, VoteBody, VoteId};
//!
//! let organizer = SecretKey::from_seed(&[1; 32]);
//! let poll = PollDraft {
//!     organizer: organizer.public(),
//!     created_at: 0,
//!     opens_at: 0,
//!     closes_at: 1_000,
//!     title: "Lunch".into(),
//!     options: vec!["soup".into(), "salad".into()],
//!     eligibility: Eligibility::Open,
//! }
//! .sign(&organizer)
//! .unwrap();
//!
//! let voter = SecretKey::from_seed(&[2; 32]);
//! let poll_id = poll.id;
//! let vote = |choice, seq| {
//!     VoteBody {
//!         poll: poll_id,
//!         voter: voter.public(),
//!         choice,
//!         seq,
//!         vote_id: VoteId::from_bytes([seq as u8; 16]),
//!         cast_at: 10,
//!         credential: None,
//!     }
//!     .sign(&voter)
//! };
//!
//! // Two replicas see the voter's change of mind in opposite orders.
//! let mut a = PollState::new(poll.clone());
//! let mut b = PollState::new(poll);
//! a.insert(vote(0, 1)).unwrap();
//! a.insert(vote(1, 2)).unwrap();
//! b.insert(vote(1, 2)).unwrap();
//! b.merge(&a);
//!
//! assert_eq!(a.tally().counts, vec![0, 1]);
//! assert_eq!(a.tally(), b.tally());
//! assert_eq!(a.digest(), b.digest());
//! ```

#![warn(missing_docs)]

mod admit;
pub mod audit;
mod digest;
mod encoding;
mod error;
pub mod export;
mod ids;
mod parallel;
mod poll;
mod signature;
mod state;
mod statement;
pub mod sync;
mod tally;
mod vote;

pub use admit::{admit, admit_batch, check_form};
pub use digest::{
    digest_sorted, root_from_path, DigestBuilder, GroupTree, GroupTreeError, OrderError,
};
pub use error::{DecodeError, Rejection, SignatureError, SignedByError};
pub use ids::{Digest, EntryHash, PollId, PublicKey, Signature, VoteId};
pub use parallel::{admit_parallel, admit_parallel_with, decode_lines};
pub use poll::{
    Eligibility, Poll, PollDraft, PollJsonError, MAX_ALLOW_LIST, MAX_OPTIONS, MAX_OPTION_BYTES,
    MAX_TITLE_BYTES,
};
pub use signature::{verify, verify_batch, SecretKey, SignedMessage};
pub use state::{Inserted, PollState};
pub use statement::{
    Attestation, GroupStatement, Inclusion, Receipt, ReceiptError, SignedTally, MAX_PATH,
};
pub use tally::{Equivocation, Tally, TallyState};
pub use vote::{Credential, Vote, VoteBody};
