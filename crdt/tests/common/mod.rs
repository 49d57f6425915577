//! Shared by the sync tests: a poll, cheap unsigned votes, and the loop that
//! carries messages between two sessions.

#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use crdt::sync::{Config, Initiator, Message, Outcome, Responder, SetView};
use crdt::{
    Eligibility, Poll, PollDraft, PollState, PublicKey, SecretKey, Signature, Vote, VoteBody,
    VoteId,
};

pub fn poll() -> &'static Poll {
    static POLL: OnceLock<Poll> = OnceLock::new();
    POLL.get_or_init(|| {
        let organizer = SecretKey::from_seed(&[1; 32]);
        PollDraft {
            organizer: organizer.public(),
            created_at: 0,
            opens_at: 0,
            closes_at: 1_000_000,
            title: "Sync".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            eligibility: Eligibility::Open,
        }
        .sign(&organizer)
        .unwrap()
    })
}

/// Vote number `i`: a distinct voter key, not signed (the states here take
/// entries through `insert_admitted`).
pub fn vote(i: u64) -> Vote {
    let mut voter = [0u8; 32];
    voter[..8].copy_from_slice(&i.to_be_bytes());
    let body = VoteBody {
        poll: poll().id,
        voter: PublicKey(voter),
        choice: (i % 3) as u32,
        seq: 1,
        vote_id: VoteId::from_bytes([(i % 251) as u8; 16]),
        cast_at: 10,
        credential: None,
    };
    Vote::new(body, Signature([0; 64]))
}

pub fn state<'a>(votes: impl IntoIterator<Item = &'a Vote>) -> PollState {
    let mut state = PollState::new(poll().clone());
    for v in votes {
        state.insert_admitted(v.clone());
    }
    state
}

/// A local set a session reads and the caller stores into.
pub trait Replica: SetView {
    fn store(&mut self, votes: &[Vote]);
}

impl Replica for PollState {
    fn store(&mut self, votes: &[Vote]) {
        for v in votes {
            self.insert_admitted(v.clone());
        }
    }
}

/// One finished session.
#[derive(Debug)]
pub struct Run {
    pub initiator: Outcome,
    pub responder: Outcome,
    /// What the initiator received, in arrival order.
    pub to_initiator: Vec<Vote>,
    /// What the responder received.
    pub to_responder: Vec<Vote>,
    /// Batches of messages in one direction, alternating.
    pub flights: u64,
    /// Encoded bytes of the largest batch: what one request or response of
    /// a transport would carry.
    pub largest_flight: usize,
}

impl Run {
    pub fn round_trips(&self) -> u64 {
        self.flights.div_ceil(2)
    }

    pub fn bytes(&self) -> u64 {
        self.initiator.stats.bytes_sent + self.responder.stats.bytes_sent
    }

    pub fn messages(&self) -> u64 {
        self.initiator.stats.messages_sent + self.responder.stats.messages_sent
    }
}

/// Runs a session between `a` (initiator) and `b`, carrying every message as
/// bytes, storing what arrives, until both sides are done.
pub fn sync(a: &mut impl Replica, b: &mut impl Replica) -> Run {
    let id = poll().id;
    let config = Config::default();
    let (mut initiator, first) = Initiator::start(id, config, a, 0);
    let mut responder = Responder::new(id, config, 0);
    let (mut to_b, mut to_a) = (first.send, Vec::new());
    let (mut done_a, mut done_b) = (first.done, None);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let mut flights = 0;
    let mut largest_flight = 0;
    let flight_bytes = |messages: &[Message]| messages.iter().map(Message::encoded_len).sum();

    while !to_a.is_empty() || !to_b.is_empty() {
        assert!(flights < 200, "sync does not terminate");
        flights += u64::from(!to_b.is_empty());
        largest_flight = largest_flight.max(flight_bytes(&to_b));
        for message in std::mem::take(&mut to_b) {
            let message = Message::decode(&message.encode()).unwrap();
            let out = responder.handle(message, b, 0).unwrap();
            b.store(&out.received);
            got_b.extend(out.received);
            to_a.extend(out.send);
            done_b = done_b.or(out.done);
        }
        flights += u64::from(!to_a.is_empty());
        largest_flight = largest_flight.max(flight_bytes(&to_a));
        for message in std::mem::take(&mut to_a) {
            let message = Message::decode(&message.encode()).unwrap();
            let out = initiator.handle(message, a, 0).unwrap();
            a.store(&out.received);
            got_a.extend(out.received);
            to_b.extend(out.send);
            done_a = done_a.or(out.done);
        }
    }

    Run {
        initiator: done_a.expect("initiator finished"),
        responder: done_b.expect("responder finished"),
        to_initiator: got_a,
        to_responder: got_b,
        flights,
        largest_flight,
    }
}
