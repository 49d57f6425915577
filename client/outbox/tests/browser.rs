//! The outbox in a real browser (headless Chromium through
//! wasm-bindgen-test-runner): real IndexedDB, real `fetch`, real sockets.
//! Run by `client/outbox/browser-tests.sh`, which also starts the stub relay
//! (`examples/stub_relay.rs`) and passes its address in
//! `VOTEMESH_STUB_RELAY` at compile time.

#![cfg(target_arch = "wasm32")]

use crdt::{Eligibility, Poll, PollDraft, PublicKey, Receipt, SecretKey};
use outbox::{displayed_counts, CastError, Outbox, State};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens there: connections are refused at once.
const UNREACHABLE: &str = "http://127.0.0.1:9";
const NODE_SEED: [u8; 32] = [5; 32];
/// The key the stub's `/stranger` mode signs receipts with.
const STRANGER_SEED: [u8; 32] = [6; 32];
const REGISTRAR_SEED: [u8; 32] = [9; 32];

/// The node keys a poll page would name: the stub's node only.
fn trusted() -> Vec<PublicKey> {
    vec![SecretKey::from_seed(&NODE_SEED).public()]
}

fn stub(mode: &str) -> String {
    match option_env!("VOTEMESH_STUB_RELAY") {
        Some(base) => format!("{base}/{mode}"),
        None => panic!("VOTEMESH_STUB_RELAY unset: run client/outbox/browser-tests.sh"),
    }
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// A database of its own for each test.
fn fresh_db(test: &str) -> String {
    format!("votemesh-test-{test}-{}", js_sys::Math::random())
}

fn poll(eligibility: Eligibility) -> Poll {
    let organizer = SecretKey::from_seed(&[1; 32]);
    PollDraft {
        organizer: organizer.public(),
        created_at: now(),
        opens_at: 0,
        closes_at: u64::MAX / 2,
        title: format!("test {}", js_sys::Math::random()),
        options: vec!["tea".into(), "coffee".into(), "water".into()],
        eligibility,
    }
    .sign(&organizer)
    .expect("valid poll")
}

fn open_poll() -> Poll {
    poll(Eligibility::Open)
}

async fn open(db: &str) -> Outbox {
    Outbox::open_named(db).await.expect("outbox opens")
}

#[wasm_bindgen_test]
async fn cast_writes_a_pending_record_before_any_request() {
    let db = fresh_db("cast");
    let poll = open_poll();
    let outbox = open(&db).await;

    let record = outbox
        .cast(&poll, 1, now(), &trusted())
        .await
        .expect("cast");
    outbox.close();

    let reopened = open(&db).await;
    let records = reopened.records(poll.id).await.expect("records");
    assert_eq!(records, vec![record.clone()]);
    assert_eq!(record.state, State::Pending);
    assert_eq!((record.seq, record.choice, record.attempts), (1, 1, 0));
    assert_eq!(record.entry, record.vote.hash());
    assert_eq!(record.vote.body().voter, reopened.voter());
}

#[wasm_bindgen_test]
async fn flush_against_an_unreachable_origin_keeps_the_vote_pending() {
    let outbox = open(&fresh_db("offline")).await;
    let poll = open_poll();
    outbox
        .cast(&poll, 0, now(), &trusted())
        .await
        .expect("cast");
    let before = now();

    let report = outbox.flush(UNREACHABLE).await.expect("flush");

    assert_eq!((report.sent, report.retrying, report.pending), (1, 1, 1));
    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!(record.state, State::Pending);
    assert_eq!(record.attempts, 1);
    assert!(
        record.next_attempt_at > before,
        "next attempt is in the future"
    );
    assert_eq!(report.next_attempt_at, Some(record.next_attempt_at));
    assert!(record
        .last_failure
        .as_deref()
        .unwrap_or("")
        .starts_with("network error"));

    let again = outbox.flush(UNREACHABLE).await.expect("second flush");

    assert_eq!(again.sent, 0, "backoff holds the vote back");
}

#[wasm_bindgen_test]
async fn changing_the_vote_raises_seq() {
    let outbox = open(&fresh_db("change")).await;
    let poll = open_poll();

    let first = outbox
        .cast(&poll, 0, now(), &trusted())
        .await
        .expect("first cast");
    let second = outbox
        .cast(&poll, 2, now(), &trusted())
        .await
        .expect("second cast");

    assert_eq!((first.seq, second.seq), (1, 2));
    assert_ne!(first.vote.body().vote_id, second.vote.body().vote_id);
    let records = outbox.records(poll.id).await.expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(displayed_counts(&[5, 5, 5], &records), vec![5, 5, 6]);
}

#[wasm_bindgen_test]
async fn a_choice_outside_the_poll_is_not_cast() {
    let outbox = open(&fresh_db("choice")).await;
    let poll = open_poll();

    let refused = outbox.cast(&poll, 3, now(), &trusted()).await;

    assert!(matches!(refused, Err(CastError::UnknownOption { .. })));
    assert!(outbox.records(poll.id).await.expect("records").is_empty());
}

#[wasm_bindgen_test]
async fn the_voter_key_persists_across_reopening() {
    let db = fresh_db("key");
    let first = open(&db).await;
    let voter = first.voter();
    first.close();

    let again = open(&db).await;
    let other = open(&fresh_db("key-other")).await;

    assert_eq!(again.voter(), voter);
    assert_ne!(other.voter(), voter);
}

#[wasm_bindgen_test]
async fn a_verified_receipt_confirms_the_vote() {
    let outbox = open(&fresh_db("ok")).await;
    let poll = open_poll();
    let cast = outbox
        .cast(&poll, 2, now(), &trusted())
        .await
        .expect("cast");

    let report = outbox.flush(&stub("ok")).await.expect("flush");

    assert_eq!((report.sent, report.confirmed, report.pending), (1, 1, 0));
    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!(record.state, State::Confirmed);
    let receipt = record.receipt.as_ref().expect("receipt kept");
    assert_eq!(receipt.entry, cast.entry);
    assert_eq!(receipt.node, SecretKey::from_seed(&NODE_SEED).public());
    assert!(receipt.verify().is_ok());
    assert_eq!(
        displayed_counts(&[0, 0, 1], std::slice::from_ref(record)),
        vec![0, 0, 1]
    );

    let exported = outbox.receipts_json(Some(poll.id)).await.expect("export");
    let exported: Vec<serde_json::Value> = serde_json::from_str(&exported).expect("json");
    let receipt_back: Receipt =
        serde_json::from_value(exported[0]["receipt"].clone()).expect("receipt json");
    assert_eq!(&receipt_back, receipt);

    let again = outbox.flush(&stub("ok")).await.expect("second flush");
    assert_eq!(again.sent, 0, "a confirmed vote is not sent again");
}

#[wasm_bindgen_test]
async fn a_forged_or_mismatched_receipt_is_not_accepted() {
    for mode in ["forged", "mismatch"] {
        let outbox = open(&fresh_db(mode)).await;
        let poll = open_poll();
        outbox
            .cast(&poll, 0, now(), &trusted())
            .await
            .expect("cast");

        let report = outbox.flush(&stub(mode)).await.expect("flush");

        assert_eq!((report.confirmed, report.retrying), (0, 1), "{mode}");
        let record = &outbox.records(poll.id).await.expect("records")[0];
        assert_eq!(record.state, State::Pending, "{mode}");
        assert_eq!(record.attempts, 1, "{mode}");
        assert_eq!(record.receipt, None, "{mode}");
    }
}

#[wasm_bindgen_test]
async fn a_definitive_refusal_marks_the_vote_rejected_for_good() {
    let outbox = open(&fresh_db("reject")).await;
    let poll = open_poll();
    outbox
        .cast(&poll, 1, now(), &trusted())
        .await
        .expect("cast");

    let report = outbox.flush(&stub("reject")).await.expect("flush");

    assert_eq!((report.rejected, report.pending), (1, 0));
    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!(record.state, State::Rejected);
    let refusal = record.refusal.as_ref().expect("refusal kept");
    assert_eq!(refusal.code, "bad_signature");

    let again = outbox.flush(&stub("ok")).await.expect("second flush");
    assert_eq!(again.sent, 0, "a rejected vote is never retried");
}

#[wasm_bindgen_test]
async fn rate_limits_and_outages_keep_the_vote_pending() {
    let outbox = open(&fresh_db("busy")).await;
    let poll = open_poll();
    outbox
        .cast(&poll, 1, now(), &trusted())
        .await
        .expect("cast");
    let before = now();

    outbox.flush(&stub("busy")).await.expect("flush");

    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!((record.state, record.attempts), (State::Pending, 1));
    assert!(
        record.next_attempt_at >= before + 120_000,
        "Retry-After: 120 is honoured"
    );

    let down = open(&fresh_db("down")).await;
    down.cast(&poll, 1, now(), &trusted()).await.expect("cast");
    let report = down.flush(&stub("down")).await.expect("flush");
    assert_eq!((report.retrying, report.pending), (1, 1));
}

#[wasm_bindgen_test]
async fn concurrent_flushes_never_undo_a_confirmation() {
    let db = fresh_db("race");
    let page = open(&db).await;
    let worker = open(&db).await;
    let poll = open_poll();
    page.cast(&poll, 0, now(), &trusted()).await.expect("cast");

    let (a, b) =
        futures_util::future::join(page.flush(&stub("ok")), worker.flush(&stub("down"))).await;
    a.expect("page flush");
    b.expect("worker flush");

    let records = worker.records(poll.id).await.expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, State::Confirmed);
}

#[wasm_bindgen_test]
async fn concurrent_casts_get_distinct_seqs() {
    let db = fresh_db("seq");
    let tab_a = open(&db).await;
    let tab_b = open(&db).await;
    let poll = open_poll();

    let (a, b) = futures_util::future::join(
        tab_a.cast(&poll, 0, now(), &trusted()),
        tab_b.cast(&poll, 1, now(), &trusted()),
    )
    .await;

    let mut seqs = [a.expect("cast a").seq, b.expect("cast b").seq];
    seqs.sort();
    assert_eq!(seqs, [1, 2]);
}

#[wasm_bindgen_test]
async fn a_credential_is_earned_checked_stored_and_attached() {
    let outbox = open(&fresh_db("credential")).await;
    let registrar = SecretKey::from_seed(&REGISTRAR_SEED).public();
    let poll = poll(Eligibility::Credential { registrar });

    let early = outbox.cast(&poll, 0, now(), &trusted()).await;
    assert!(matches!(early, Err(CastError::NeedsCredential { .. })));

    let credential = outbox
        .credential(&stub("ok"), &poll)
        .await
        .expect("credential");

    assert_eq!(credential.voter, outbox.voter());
    assert_eq!(credential.registrar, registrar);
    let held = outbox
        .held_credential(poll.id)
        .await
        .expect("read credential");
    assert_eq!(held.as_ref(), Some(&credential));
    let record = outbox
        .cast(&poll, 0, now(), &trusted())
        .await
        .expect("cast");
    assert_eq!(record.vote.body().credential.as_ref(), Some(&credential));
}

#[wasm_bindgen_test]
async fn a_credential_from_another_registrar_is_refused() {
    let outbox = open(&fresh_db("credential-other")).await;
    let someone_else = SecretKey::from_seed(&[42; 32]).public();
    let poll = poll(Eligibility::Credential {
        registrar: someone_else,
    });

    let refused = outbox.credential(&stub("ok"), &poll).await;

    assert!(matches!(refused, Err(outbox::CredentialError::Invalid(_))));
    assert_eq!(outbox.held_credential(poll.id).await.expect("read"), None);
}

#[wasm_bindgen_test]
async fn a_receipt_signed_by_a_stranger_key_is_not_a_confirmation() {
    let outbox = open(&fresh_db("stranger")).await;
    let poll = open_poll();
    let cast = outbox
        .cast(&poll, 1, now(), &trusted())
        .await
        .expect("cast");

    let report = outbox.flush(&stub("stranger")).await.expect("flush");

    assert_eq!(
        (
            report.sent,
            report.confirmed,
            report.untrusted,
            report.pending
        ),
        (1, 0, 1, 1)
    );
    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!((record.state, record.attempts), (State::Pending, 1));
    assert_eq!(record.untrusted_receipts, 1);
    assert_eq!(record.receipt, None);
    assert!(record
        .last_failure
        .as_deref()
        .unwrap_or("")
        .contains("not a trusted node"));
    assert_eq!(
        displayed_counts(&[0, 0, 0], std::slice::from_ref(record)),
        vec![0, 1, 0],
        "still shown as the voter's pending vote"
    );

    let report = outbox
        .flush_now(&stub("ok"))
        .await
        .expect("flush to the real node");

    assert_eq!((report.confirmed, report.pending), (1, 0));
    let record = &outbox.records(poll.id).await.expect("records")[0];
    assert_eq!(record.state, State::Confirmed);
    let receipt = record.receipt.as_ref().expect("receipt");
    assert_eq!((receipt.entry, receipt.node), (cast.entry, trusted()[0]));
}

#[wasm_bindgen_test]
async fn a_vote_is_cast_only_with_a_trusted_node_and_trust_can_grow() {
    let outbox = open(&fresh_db("trust")).await;
    let poll = open_poll();

    let refused = outbox.cast(&poll, 0, now(), &[]).await;
    assert!(matches!(refused, Err(CastError::NoTrustedNode { .. })));
    assert!(outbox.records(poll.id).await.expect("records").is_empty());

    outbox
        .cast(&poll, 0, now(), &trusted())
        .await
        .expect("cast");
    let stranger = SecretKey::from_seed(&STRANGER_SEED).public();
    assert_eq!(outbox.trust(poll.id, &[stranger]).await.expect("trust"), 1);
    assert_eq!(outbox.trust(poll.id, &[stranger]).await.expect("again"), 0);

    let report = outbox.flush(&stub("stranger")).await.expect("flush");

    assert_eq!((report.confirmed, report.untrusted), (1, 0));
}

#[wasm_bindgen_test]
async fn a_4xx_that_is_not_a_refusal_of_the_vote_keeps_it_pending() {
    for mode in ["html403", "html413", "unknown", "early"] {
        let outbox = open(&fresh_db(mode)).await;
        let poll = open_poll();
        outbox
            .cast(&poll, 2, now(), &trusted())
            .await
            .expect("cast");
        let before = now();

        let report = outbox.flush(&stub(mode)).await.expect("flush");

        assert_eq!(
            (report.rejected, report.retrying, report.pending),
            (0, 1, 1),
            "{mode}"
        );
        let record = &outbox.records(poll.id).await.expect("records")[0];
        assert_eq!(
            (record.state, record.attempts),
            (State::Pending, 1),
            "{mode}"
        );
        assert_eq!(record.refusal, None, "{mode}");
        if mode == "early" {
            assert!(
                record.hold_until >= before + 30_000,
                "Retry-After of a 425 is honoured"
            );
        }

        let report = outbox.flush_now(&stub("ok")).await.expect("flush again");
        if mode == "early" {
            assert_eq!(report.sent, 0, "held back until Retry-After");
        } else {
            assert_eq!(report.confirmed, 1, "{mode}: retried and delivered");
        }
    }
}
