//! The voter's side of votemesh in the browser.
//!
//! A vote is signed with the voter's key and written to IndexedDB as
//! *pending* before any request is made ([`Outbox::cast`]), with the keys of
//! the regional nodes the poll's page trusts. A flush sends every pending
//! vote to the edge relay ([`Outbox::flush`]); only a receipt that names the
//! vote, comes from one of those nodes and verifies makes it *confirmed*
//! ([`check_receipt`]): a receipt signed by any other key, as a hostile proxy
//! would answer, confirms nothing. Only a node's or relay's JSON refusal of
//! the vote itself ([`REFUSAL_CODES`]) makes it *rejected*. Anything else
//! keeps it pending and schedules the next attempt with capped exponential
//! backoff and full jitter ([`retry_delay_ms`]). A vote never expires: it
//! stays pending until one of those two answers.
//!
//! The page and the service worker run the same code on the same database:
//! flushes may overlap freely. [`displayed_counts`] merges live counts with
//! the voter's own vote still in flight.
//!
//! Everything that decides (backoff, reply classification, receipt check,
//! record transitions, counts, proof of work) is plain Rust and tested on
//! the host; the IndexedDB, `fetch` and crypto glue exists only on `wasm32`.
//!
//! ```
//! use crdt::{PollId, SecretKey, VoteBody, VoteId};
//! use outbox::{classify, displayed_counts, Outcome, Record, Reply, State};
//!
//! let node = SecretKey::from_seed(&[5; 32]).public();
//! let voter = SecretKey::from_seed(&[1; 32]);
//! let vote = VoteBody {
//!     poll: PollId([7; 32]),
//!     voter: voter.public(),
//!     choice: 1,
//!     seq: 1,
//!     vote_id: VoteId::from_bytes([1; 16]),
//!     cast_at: 1_000,
//!     credential: None,
//! }
//! .sign(&voter);
//! let mut record = Record::pending(vote, &[node]);
//! assert_eq!(displayed_counts(&[4, 4], &[record.clone()]), vec![4, 5]);
//!
//! // The relay is down: the vote stays pending, to be retried later.
//! let down = Reply { status: 503, retry_after: Some("5"), body: "" };
//! let outcome = classify(&record.vote, &record.trusted, down);
//! assert!(matches!(outcome, Outcome::Retry(_)));
//! record.apply(&outcome, 10_000, 0.5);
//! assert_eq!((record.state, record.attempts), (State::Pending, 1));
//! assert_eq!(record.next_attempt_at, 15_000);
//! ```

mod backoff;
mod counts;
mod error;
mod pow;
mod record;
mod reply;

#[cfg(target_arch = "wasm32")]
mod browser;

pub use backoff::{
    parse_retry_after, retry_delay_ms, BASE_DELAY_MS, MAX_DELAY_MS, MAX_RETRY_AFTER_MS,
    MIN_DELAY_MS,
};
#[cfg(target_arch = "wasm32")]
pub use browser::{FlushReport, Outbox, CHANNEL, DATABASE};
pub use counts::displayed_counts;
pub use error::{CastError, CredentialError, FlushError, OpenError, StoreError};
pub use pow::{accept_credential, check_credential, leading_zero_bits, Challenge, MAX_BITS};
pub use record::{receipts_json, Record, State};
pub use reply::{
    check_receipt, check_trusted, classify, is_refusal_code, network_failure, CheckedReceipt,
    Outcome, ReceiptError, Refusal, Reply, Retry, REFUSAL_CODES,
};
