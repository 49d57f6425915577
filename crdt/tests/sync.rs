//! Two replicas reconcile through `crdt::sync`: they converge, each receives
//! exactly what it lacked, and a peer's garbage or misplaced message becomes
//! an error, never a panic.

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::OnceLock;

use common::{poll, state, sync, vote, Replica, Run};
use crdt::sync::{
    short_id, Config, Initiator, Message, Path, Responder, SetView, SyncError, MAX_ENTRIES,
};
use crdt::{DecodeError, Digest, EntryHash, PollId, PollState, Vote};
use proptest::prelude::*;

/// Votes 0..12_000, built once.
fn pool() -> &'static [Vote] {
    static POOL: OnceLock<Vec<Vote>> = OnceLock::new();
    POOL.get_or_init(|| (0..12_000).map(vote).collect())
}

fn hashes<'a>(votes: impl IntoIterator<Item = &'a Vote>) -> BTreeSet<EntryHash> {
    votes.into_iter().map(Vote::hash).collect()
}

/// Syncs `a` and `b` and checks the story's ending: equal digests and
/// tallies, and each side received exactly what it lacked.
fn sync_and_check(a: &mut PollState, b: &mut PollState) -> Run {
    let a_before = hashes(a.entries());
    let b_before = hashes(b.entries());

    let run = sync(a, b);

    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.tally(), b.tally());
    assert_eq!(hashes(&run.to_initiator), &b_before - &a_before);
    assert_eq!(hashes(&run.to_responder), &a_before - &b_before);
    assert_eq!(run.to_initiator.len(), (&b_before - &a_before).len());
    assert_eq!(run.to_responder.len(), (&a_before - &b_before).len());
    run
}

#[test]
fn identical_sets_agree_in_one_round_trip() {
    let mut a = state(&pool()[..1_000]);
    let mut b = state(&pool()[..1_000]);

    let run = sync_and_check(&mut a, &mut b);

    assert_eq!(run.initiator.path, Path::Same);
    assert_eq!(run.responder.path, Path::Same);
    assert_eq!(run.round_trips(), 1);
    assert_eq!(run.messages(), 2);
}

#[test]
fn an_empty_side_gets_everything_in_bulk() {
    let mut full = state(&pool()[..2_500]);
    let mut empty = state([]);

    let run = sync_and_check(&mut empty, &mut full);
    assert_eq!(run.initiator.path, Path::Bulk);
    assert_eq!(run.initiator.stats.entries_received, 2_500);
    assert_eq!(run.round_trips(), 1);

    let mut empty = state([]);
    let run = sync_and_check(&mut full, &mut empty);
    assert_eq!(run.responder.path, Path::Bulk);
    assert_eq!(run.responder.stats.entries_received, 2_500);
    assert!(
        run.initiator.stats.messages_sent >= 3,
        "entries are chunked"
    );
}

#[test]
fn one_and_two_sided_differences_converge_on_10k_sets() {
    let base = &pool()[..10_000];
    let extra = &pool()[10_000..];

    for d in [1, 10, 1_000] {
        // The initiator lacks d entries.
        let mut a = state(&base[d..]);
        let mut b = state(base);
        let run = sync_and_check(&mut a, &mut b);
        assert_eq!(run.initiator.path, Path::Symbols, "d = {d}");
        assert!(run.round_trips() <= 3, "d = {d}: {run:?}");

        // The responder lacks d entries.
        let mut a = state(base);
        let mut b = state(&base[d..]);
        let run = sync_and_check(&mut a, &mut b);
        assert_eq!(run.responder.path, Path::Symbols, "d = {d}");
        assert!(run.round_trips() <= 3, "d = {d}: {run:?}");

        // Each lacks d of the other's.
        let mut a = state(base.iter().chain(&extra[..d]));
        let mut b = state(base[d..].iter());
        let run = sync_and_check(&mut a, &mut b);
        assert_eq!(run.initiator.path, Path::Symbols, "d = {d}");
        assert!(run.round_trips() <= 5, "d = {d}: {run:?}");
    }
}

#[test]
fn large_difference_costs_few_symbols_per_entry() {
    let mut a = state(&pool()[..10_000]);
    let mut b = state(&pool()[2_000..12_000]);

    let run = sync_and_check(&mut a, &mut b);

    let symbols = run.initiator.stats.symbols_received;
    assert!(
        symbols < 4_000 * 2,
        "{symbols} symbols for 4000 differing entries"
    );
    assert!(run.round_trips() <= 4, "{run:?}");
}

/// A view whose short ids keep only 4 bits, so distinct entries collide.
struct Colliding(PollState);

fn fake(hash: &EntryHash) -> u64 {
    short_id(hash) & 0xf
}

impl SetView for Colliding {
    fn count(&self) -> u64 {
        self.0.len() as u64
    }

    fn digest(&self) -> Digest {
        self.0.digest()
    }

    fn short_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.entries().map(|v| fake(&v.hash()))
    }

    fn with_short_id(&self, id: u64) -> impl Iterator<Item = &Vote> + '_ {
        self.0.entries().filter(move |v| fake(&v.hash()) == id)
    }

    fn get(&self, hash: &EntryHash) -> Option<&Vote> {
        self.0.get(hash)
    }

    fn hashes(
        &self,
        range: (Bound<EntryHash>, Bound<EntryHash>),
    ) -> impl Iterator<Item = EntryHash> + '_ {
        SetView::hashes(&self.0, range)
    }
}

impl Replica for Colliding {
    fn store(&mut self, votes: &[Vote]) {
        self.0.store(votes);
    }
}

/// Two votes outside `common` whose fake short ids are equal.
fn colliding_pair(common: &[Vote]) -> (Vote, Vote) {
    let rest = &pool()[common.len()..];
    for (i, x) in rest.iter().enumerate() {
        if let Some(y) = rest[i + 1..]
            .iter()
            .find(|y| fake(&y.hash()) == fake(&x.hash()))
        {
            return (x.clone(), y.clone());
        }
    }
    unreachable!("16 short ids among thousands of votes collide")
}

#[test]
fn colliding_short_ids_that_hide_the_difference_fall_back_to_hashes() {
    let common = &pool()[..300];
    let (x, y) = colliding_pair(common);
    let mut a = Colliding(state(common.iter().chain([&x])));
    let mut b = Colliding(state(common.iter().chain([&y])));

    let run = sync(&mut a, &mut b);

    assert_eq!(run.initiator.path, Path::Fallback);
    assert_eq!(run.responder.path, Path::Fallback);
    assert_eq!(a.0.digest(), b.0.digest());
    assert_eq!(hashes(&run.to_initiator), hashes([&y]));
    assert_eq!(hashes(&run.to_responder), hashes([&x]));
}

#[test]
fn colliding_short_ids_that_never_decode_fall_back_at_the_cap() {
    let common = &pool()[..300];
    let (x, y) = colliding_pair(common);
    let mut a = Colliding(state(common));
    let mut b = Colliding(state(common.iter().chain([&x, &y])));

    let run = sync(&mut a, &mut b);

    assert_eq!(run.initiator.path, Path::Fallback);
    assert_eq!(a.0.digest(), b.0.digest());
    assert_eq!(hashes(&run.to_initiator), hashes([&x, &y]));
    assert!(run.initiator.stats.symbols_received <= 2 * (300 + 302) + 64);
}

#[test]
fn fallback_streams_many_hash_chunks() {
    // Over 32768 hashes: the list spans two Hashes messages.
    let votes: Vec<Vote> = (100_000..135_000).map(vote).collect();
    let (x, y) = colliding_pair(&[]);
    let mut a = Colliding(state(votes.iter().chain([&x])));
    let mut b = Colliding(state(votes.iter().chain([&y]).skip(7)));

    let run = sync(&mut a, &mut b);

    assert_eq!(run.initiator.path, Path::Fallback);
    assert_eq!(a.0.digest(), b.0.digest());
    assert_eq!(run.to_initiator.len(), 1);
    assert_eq!(run.to_responder.len(), 8);
}

#[test]
fn fallback_pages_a_hash_list_longer_than_a_page() {
    // Over 131,072 hashes (4 MiB): the list itself takes two pages.
    let votes: Vec<Vote> = (200_000..340_000).map(vote).collect();
    let (x, y) = colliding_pair(&[]);
    let mut a = Colliding(state(votes.iter().chain([&x])));
    let mut b = Colliding(state(votes.iter().chain([&y])));

    let run = sync(&mut a, &mut b);

    assert_eq!(run.initiator.path, Path::Fallback);
    assert_eq!(a.0.digest(), b.0.digest());
    assert_eq!(hashes(&run.to_initiator), hashes([&y]));
    assert_eq!(hashes(&run.to_responder), hashes([&x]));
    assert!(run.largest_flight <= crdt::sync::PAGE_BYTES + 64 * 1024);
    assert!(
        run.responder.stats.round_trips >= 2,
        "a next page for the hashes"
    );
}

#[test]
fn garbage_truncated_and_oversized_messages_are_decode_errors() {
    let hello = Message::Hello {
        poll: poll().id,
        count: 1,
        digest: Digest([0; 32]),
    }
    .encode();
    for cut in 0..hello.len() {
        assert!(Message::decode(&hello[..cut]).is_err());
    }
    assert!(matches!(
        Message::decode(b"GET / HTTP/1.1\r\n\r\n"),
        Err(DecodeError::WrongTag { .. })
    ));

    let too_many = Message::Entries {
        poll: poll().id,
        entries: vec![vote(1); MAX_ENTRIES + 1],
        last: true,
    };
    assert!(matches!(
        Message::decode(&too_many.encode()),
        Err(DecodeError::Length { .. })
    ));

    let mut bad_entry = Message::Entries {
        poll: poll().id,
        entries: vec![vote(1)],
        last: true,
    }
    .encode();
    // A flipped signature byte keeps the form valid; flip the vote's tag.
    let tag_at = crdt::sync::TAG.len() + 1 + 1 + 32 + 4 + 4;
    bad_entry[tag_at] ^= 0xff;
    assert!(matches!(
        Message::decode(&bad_entry),
        Err(DecodeError::WrongTag { .. })
    ));
}

#[test]
fn a_message_for_another_poll_is_an_error() {
    let a = state(&pool()[..10]);
    let mut responder = Responder::new(poll().id, Config::default(), 0);
    let hello = Message::Hello {
        poll: PollId([9; 32]),
        count: 10,
        digest: a.digest(),
    };

    let err = responder.handle(hello, &a, 0).unwrap_err();

    assert!(matches!(err, SyncError::WrongPoll { .. }));
    assert!(responder.is_ended());
}

#[test]
fn an_entry_for_another_poll_is_an_error() {
    let a = state(&pool()[..10]);
    let (mut initiator, _) = Initiator::start(poll().id, Config::default(), &state([]), 0);
    let mut stray = vote(1).body().clone();
    stray.poll = PollId([9; 32]);
    let stray = Vote::new(stray, crdt::Signature([0; 64]));
    let entries = Message::Entries {
        poll: poll().id,
        entries: vec![stray],
        last: true,
    };

    let err = initiator.handle(entries, &a, 0).unwrap_err();

    assert!(matches!(err, SyncError::EntryForOtherPoll { .. }));
}

#[test]
fn messages_out_of_order_are_errors() {
    let id = poll().id;
    let a = state(&pool()[..100]);
    let b = state(&pool()[50..150]);

    // A responder that has not seen hello.
    let mut responder = Responder::new(id, Config::default(), 0);
    let err = responder.handle(
        Message::More {
            poll: id,
            until: 64,
        },
        &b,
        0,
    );
    assert!(matches!(err, Err(SyncError::OutOfOrder { .. })));
    assert!(matches!(
        responder.handle(Message::Same { poll: id }, &b, 0),
        Err(SyncError::Ended)
    ));

    // An initiator that gets hello, symbols with a gap, symbols beyond the request.
    let (mut initiator, out) = Initiator::start(id, Config::default(), &a, 0);
    let err = initiator.handle(out.send[0].clone(), &a, 0);
    assert!(matches!(err, Err(SyncError::OutOfOrder { .. })));

    let mut responder = Responder::new(id, Config::default(), 0);
    let (_, out) = Initiator::start(id, Config::default(), &a, 0);
    let symbols = responder.handle(out.send[0].clone(), &b, 0).unwrap().send;
    let Message::Symbols { count, digest, .. } = symbols[0].clone() else {
        panic!("expected symbols, got {:?}", symbols[0].kind());
    };
    for (start, n, expect_gap) in [(5, 1, true), (0, 10_000, false)] {
        let (mut initiator, _) = Initiator::start(id, Config::default(), &a, 0);
        let message = Message::Symbols {
            poll: id,
            count,
            digest,
            start,
            symbols: vec![Default::default(); n],
        };
        let err = initiator.handle(message, &a, 0).unwrap_err();
        match err {
            SyncError::SymbolGap { .. } => assert!(expect_gap),
            SyncError::UnrequestedSymbols { .. } => assert!(!expect_gap),
            other => panic!("unexpected {other}"),
        }
    }

    // A request past the cap.
    let err = responder.handle(
        Message::More {
            poll: id,
            until: u64::MAX,
        },
        &b,
        0,
    );
    assert!(matches!(err, Err(SyncError::BadSymbolRequest { .. })));
}

#[test]
fn a_silent_peer_times_out() {
    let a = state(&pool()[..10]);
    let (mut initiator, _) = Initiator::start(poll().id, Config::default(), &a, 1_000);

    assert!(initiator.tick(20_000).is_ok());
    assert!(matches!(
        initiator.tick(40_000),
        Err(SyncError::TimedOut { .. })
    ));
    assert!(initiator.is_ended());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_small_set_pairs_converge(a_mask in any::<u64>(), b_mask in any::<u64>(), offset in 0usize..1_000) {
        let pick = |mask: u64| -> Vec<&Vote> {
            (0..64).filter(|i| mask >> i & 1 == 1).map(|i| &pool()[offset + i]).collect()
        };
        let mut a = state(pick(a_mask));
        let mut b = state(pick(b_mask));

        sync_and_check(&mut a, &mut b);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200), kind in 0u8..12) {
        let mut input = crdt::sync::TAG.as_bytes().to_vec();
        input.push(0);
        input.push(kind);
        input.extend(bytes);
        let _ = Message::decode(&input);
    }
}
