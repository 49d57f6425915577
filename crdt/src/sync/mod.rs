//! Set reconciliation between two replicas of one poll.
//!
//! Two peers holding [`PollState`](crate::PollState)s of the same poll find
//! and exchange exactly the entries one has and the other lacks. The bytes
//! on the wire grow with the difference, not with the sets: a few coded
//! symbols (about 17 bytes each, 1.35 to 1.7 per differing entry), an 8-byte
//! short id per wanted entry, and the entries themselves.
//!
//! # Protocol
//!
//! The [`Initiator`] sends [`Message::Hello`] with its entry count and digest.
//! The [`Responder`] answers
//!
//! - [`Message::Same`] if the digests are equal: done in one round trip;
//! - bulk, when one side is empty: all its entries, or [`Message::WantAll`];
//! - otherwise [`Message::Symbols`]: the first coded symbols of a rateless
//!   invertible Bloom lookup table over its entries' short ids (the first
//!   eight bytes of the hash; see [`riblt`]). The first range is about 1.5
//!   times the difference of the two counts, at least 32.
//!
//! The initiator subtracts its own symbols and peels. While the difference is
//! not decoded it sends [`Message::More`] for a longer prefix, sized from an
//! estimate of the difference read off the symbols received (at least 1.5
//! times as many). Once decoded it sends [`Message::Want`] with the short ids
//! it lacks, and [`Message::Entries`] with the entries the responder lacks;
//! the responder answers the `Want` with entries. Each side's last `Entries`
//! message says `last`.
//!
//! Everything long goes in pages: whole sets in bulk, wanted and pushed
//! entries, wants, and the fallback's hash list. A side sends at most
//! [`PAGE_BYTES`] (4 MiB), ends the page with [`Message::PageEnd`] and goes on
//! when the peer answers [`Message::NextPage`]. What it still owes is held as
//! a cursor into its set or a list of ids, not as entries, so a transfer of a
//! million entries holds one page at a time, and a transport that carries one
//! flight of messages per request or response never needs more than a page
//! and a few small messages (the node's frames allow 32 MiB). A page that
//! fills exactly at the end of the stream says `last` instead of `PageEnd`.
//!
//! When symbols cannot find the difference, because two different entries
//! share a short id, or because decoding needs more symbols than twice both
//! sets, the initiator falls back to its full list of hashes
//! ([`Message::Hashes`]); the responder sends what the initiator lacks and
//! asks for the rest with [`Message::WantHashes`].
//!
//! The machines do no I/O and read no clock: the caller moves messages
//! ([`Message::encode`] / [`Message::decode`]) and passes the time. They
//! never insert: every entry in [`Output::received`] must go through
//! [`admit_batch`](crate::admit_batch) before it is stored, so a peer can
//! withhold entries but never forge one. A malformed message is a
//! [`DecodeError`](crate::DecodeError) and a misplaced one a [`SyncError`];
//! neither panics.
//!
//! # Example
//!
//! ```
//! use crdt::sync::{Config, Initiator, Message, Responder};
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
//! let vote = |voter: u8| {
//!     let key = SecretKey::from_seed(&[voter; 32]);
//!     let body = VoteBody {
//!         poll: poll.id,
//!         voter: key.public(),
//!         choice: u32::from(voter % 2),
//!         seq: 1,
//!         vote_id: VoteId::from_bytes([voter; 16]),
//!         cast_at: 10,
//!         credential: None,
//!     };
//!     body.sign(&key)
//! };
//!
//! // Two replicas that each saw votes the other did not.
//! let mut a = PollState::new(poll.clone());
//! let mut b = PollState::new(poll.clone());
//! for voter in 10..40 {
//!     a.insert(vote(voter)).unwrap();
//!     b.insert(vote(voter)).unwrap();
//! }
//! a.insert(vote(50)).unwrap();
//! b.insert(vote(60)).unwrap();
//! b.insert(vote(61)).unwrap();
//!
//! // Drive both sides, carrying messages as bytes, until both are done.
//! let now = 0;
//! let (mut initiator, first) = Initiator::start(poll.id, Config::default(), &a, now);
//! let mut responder = Responder::new(poll.id, Config::default(), now);
//! let (mut to_b, mut to_a) = (first.send, Vec::new());
//! while !to_a.is_empty() || !to_b.is_empty() {
//!     for message in std::mem::take(&mut to_b) {
//!         let message = Message::decode(&message.encode()).unwrap();
//!         let out = responder.handle(message, &b, now).unwrap();
//!         // Admit (check signatures) before storing.
//!         for verdict in b.insert_batch(out.received) {
//!             verdict.unwrap();
//!         }
//!         to_a.extend(out.send);
//!     }
//!     for message in std::mem::take(&mut to_a) {
//!         let message = Message::decode(&message.encode()).unwrap();
//!         let out = initiator.handle(message, &a, now).unwrap();
//!         for verdict in a.insert_batch(out.received) {
//!             verdict.unwrap();
//!         }
//!         to_b.extend(out.send);
//!     }
//! }
//!
//! assert!(initiator.is_ended() && responder.is_ended());
//! assert_eq!(a.len(), 33);
//! assert_eq!(a.digest(), b.digest());
//! assert_eq!(a.tally(), b.tally());
//! ```

mod error;
mod initiator;
mod message;
mod outbox;
mod responder;
pub mod riblt;
mod session;
mod view;

pub use error::SyncError;
pub use initiator::Initiator;
pub use message::{
    Message, ENTRIES_SOFT_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_HASHES, MAX_IDS, MAX_SYMBOLS,
    TAG,
};
pub use outbox::PAGE_BYTES;
pub use responder::Responder;
pub use riblt::{Decoder, Encoder, Symbol};
pub use session::{Config, Outcome, Output, Path, Stats};
pub use view::{short_id, SetView};
