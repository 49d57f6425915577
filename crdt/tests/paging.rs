//! Long transfers go in pages: each side sends at most `PAGE_BYTES` before
//! its peer asks for more, whatever the path, so no request or response of a
//! transport grows with the set.

mod common;

use std::sync::OnceLock;

use common::{state, sync, vote, Run};
use crdt::sync::{Path, PAGE_BYTES};
use crdt::{PollState, Vote};

/// What one flight may carry on top of a page: the small messages around it.
const SLACK: usize = 64 * 1024;

/// Votes 0..120_000 (about 22 MB of entries), built once.
fn pool() -> &'static [Vote] {
    static POOL: OnceLock<Vec<Vote>> = OnceLock::new();
    POOL.get_or_init(|| (0..120_000).map(vote).collect())
}

/// Bytes one entry takes of a page.
fn entry_page_bytes() -> usize {
    4 + vote(0).encoded().len()
}

fn assert_converged(a: &PollState, b: &PollState, run: &Run) {
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.len(), b.len());
    assert!(
        run.largest_flight <= PAGE_BYTES + SLACK,
        "a flight of {} bytes",
        run.largest_flight
    );
}

#[test]
fn an_empty_initiator_gets_everything_in_many_bounded_pages() {
    let mut a = state([]);
    let mut b = state(pool());

    let run = sync(&mut a, &mut b);

    assert_converged(&a, &b, &run);
    assert_eq!(run.initiator.path, Path::Bulk);
    assert_eq!(run.to_initiator.len(), pool().len());
    let pages = (pool().len() * entry_page_bytes()).div_ceil(PAGE_BYTES) as u64;
    assert!(pages >= 5);
    // Hello, then one next-page request per page after the first.
    assert_eq!(run.initiator.stats.round_trips, pages);
}

#[test]
fn an_empty_responder_gets_everything_in_many_bounded_pages() {
    let mut a = state(pool());
    let mut b = state([]);

    let run = sync(&mut a, &mut b);

    assert_converged(&a, &b, &run);
    assert_eq!(run.responder.path, Path::Bulk);
    assert_eq!(run.to_responder.len(), pool().len());
    assert!(run.responder.stats.round_trips >= 5);
}

#[test]
fn wanted_and_pushed_entries_come_in_bounded_pages() {
    // Each side lacks about 50,000 of the other's entries.
    let mut a = state(&pool()[..70_000]);
    let mut b = state(&pool()[50_000..]);

    let run = sync(&mut a, &mut b);

    assert_converged(&a, &b, &run);
    assert_eq!(run.initiator.path, Path::Symbols);
    assert_eq!(run.to_initiator.len(), 50_000);
    assert_eq!(run.to_responder.len(), 50_000);
    assert!(run.initiator.stats.round_trips >= 3);
}

#[test]
fn a_page_that_fills_exactly_at_the_end_needs_no_next_page() {
    let n = PAGE_BYTES.div_ceil(entry_page_bytes());
    let mut a = state([]);
    let mut b = state(&pool()[..n]);

    let run = sync(&mut a, &mut b);

    assert_converged(&a, &b, &run);
    assert_eq!(run.to_initiator.len(), n);
    assert_eq!(run.initiator.stats.round_trips, 1, "hello only");
}

#[test]
fn one_entry_past_a_full_page_takes_one_next_page() {
    let n = PAGE_BYTES.div_ceil(entry_page_bytes()) + 1;
    let mut a = state([]);
    let mut b = state(&pool()[..n]);

    let run = sync(&mut a, &mut b);

    assert_converged(&a, &b, &run);
    assert_eq!(run.to_initiator.len(), n);
    assert_eq!(
        run.initiator.stats.round_trips, 2,
        "hello and one next page"
    );
}

#[test]
fn empty_sets_agree_and_an_empty_side_of_a_small_set_takes_one_page() {
    let mut a = state([]);
    let mut b = state([]);
    let same = sync(&mut a, &mut b);
    assert_eq!(same.initiator.path, Path::Same);

    let mut b = state(&pool()[..10]);
    let small = sync(&mut a, &mut b);

    assert_converged(&a, &b, &small);
    assert_eq!(small.initiator.path, Path::Bulk);
    assert_eq!(small.round_trips(), 1);
}
