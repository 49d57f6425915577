//! The signed polls the browser tests create on their node, recomputed here
//! so the fixtures stay valid polls for this encoding:
//! `tests/browser/fixtures/poll.json`, an open three-option poll, open until
//! 2100, from a fixed organizer seed; and `hostile-poll.json`, the same with
//! markup and script in its title and options, which the pages must show as
//! text; and `credential-poll.json`, which needs a credential from the
//! registrar whose seed is 32 bytes of 0xbb (the tests' relay holds that
//! key); and `closed-poll.json`, which closed in November 2023, for the
//! page of a poll that takes no more votes. After a deliberate change, regenerate them with `VOTEMESH_BLESS=1
//! cargo test -p votemesh-crdt --test browser_fixture`.

use std::path::PathBuf;

use crdt::{Eligibility, Poll, PollDraft, SecretKey};

fn fixture_poll(title: &str, options: [&str; 3]) -> Poll {
    fixture_poll_with(title, options, Eligibility::Open)
}

fn fixture_poll_with(title: &str, options: [&str; 3], eligibility: Eligibility) -> Poll {
    fixture_poll_closing(title, options, eligibility, 4_102_444_800_000) // 2100-01-01T00:00:00Z
}

fn fixture_poll_closing(
    title: &str,
    options: [&str; 3],
    eligibility: Eligibility,
    closes_at: u64,
) -> Poll {
    let organizer = SecretKey::from_seed(&[0xaa; 32]);
    PollDraft {
        organizer: organizer.public(),
        created_at: 1_000,
        opens_at: 1_000,
        closes_at,
        title: title.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
        eligibility,
    }
    .sign(&organizer)
    .expect("the fixture poll is within the limits")
}

fn check_fixture(name: &str, expected: Poll) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/browser/fixtures")
        .join(name);
    let json = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    if std::env::var_os("VOTEMESH_BLESS").is_some() {
        std::fs::write(&path, &json).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let poll = Poll::from_json(&value).expect("the fixture parses as a poll");
    poll.verify().expect("the fixture's signature verifies");
    assert_eq!(
        poll, expected,
        "{name} differs from the poll this test makes"
    );
}

#[test]
fn the_browser_test_poll_is_a_valid_signed_poll() {
    check_fixture(
        "poll.json",
        fixture_poll("Lunch on Friday", ["Soup", "Salad", "Pie"]),
    );
}

#[test]
fn the_hostile_browser_test_poll_is_a_valid_signed_poll() {
    let poll = fixture_poll(
        // A marker of Perseus' inline state in the title, with one backtick:
        // a reader of the page that takes the text for a state reads on to
        // the real state's opening backtick and leaves the state unescaped.
        "window.__PERSEUS_INITIAL_STATE = `x </script><script>window.pwned = 1</script> ${window.pwned} \\ & <b>bold</b>",
        [
            "<img src=x onerror=\"window.pwned = 2\">",
            "Salad </SCRIPT><!--<script>",
            "Pie `${1 + 1}` \u{2028}",
        ],
    );
    check_fixture("hostile-poll.json", poll);
}

#[test]
fn the_credential_browser_test_poll_is_a_valid_signed_poll() {
    let registrar = SecretKey::from_seed(&[0xbb; 32]).public();
    let poll = fixture_poll_with(
        "Members' lunch",
        ["Soup", "Salad", "Pie"],
        Eligibility::Credential { registrar },
    );
    check_fixture("credential-poll.json", poll);
}

#[test]
fn the_closed_browser_test_poll_is_a_valid_signed_poll() {
    let poll = fixture_poll_closing(
        "Lunch in 2023",
        ["Soup", "Salad", "Pie"],
        Eligibility::Open,
        1_700_000_000_000, // 2023-11-14T22:13:20Z
    );
    check_fixture("closed-poll.json", poll);
}
