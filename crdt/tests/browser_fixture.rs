//! The signed poll the browser tests create on their node
//! (`tests/browser/fixtures/poll.json`): an open three-option poll, open
//! until 2100, from a fixed organizer seed. Recomputed here, so the fixture
//! stays a valid poll for this encoding. After a deliberate change,
//! regenerate it with `VOTEMESH_BLESS=1 cargo test -p votemesh-crdt --test
//! browser_fixture`.

use std::path::PathBuf;

use crdt::{Eligibility, Poll, PollDraft, SecretKey};

fn fixture_poll() -> Poll {
    let organizer = SecretKey::from_seed(&[0xaa; 32]);
    PollDraft {
        organizer: organizer.public(),
        created_at: 1_000,
        opens_at: 1_000,
        closes_at: 4_102_444_800_000, // 2100-01-01T00:00:00Z
        title: "Lunch on Friday".into(),
        options: vec!["Soup".into(), "Salad".into(), "Pie".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer)
    .expect("the fixture poll is within the limits")
}

#[test]
fn the_browser_test_poll_is_a_valid_signed_poll() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/fixtures/poll.json");
    let expected = fixture_poll();
    let json = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    if std::env::var_os("VOTEMESH_BLESS").is_some() {
        std::fs::write(&path, &json).unwrap();
    }
    let text = std::fs::read_to_string(&path).expect("tests/browser/fixtures/poll.json");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let poll = Poll::from_json(&value).expect("the fixture parses as a poll");
    poll.verify().expect("the fixture's signature verifies");
    assert_eq!(
        poll, expected,
        "the fixture differs from the poll this test makes"
    );
}
