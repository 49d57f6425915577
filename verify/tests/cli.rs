//! Runs the real `votemesh-verify` binary on exports built here with `crdt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crdt::export::{Header, Record};
use crdt::{
    Attestation, Eligibility, Poll, PollDraft, PollState, SecretKey, Vote, VoteBody, VoteId,
};
use serde_json::Value;

const OPENS_AT: u64 = 1_000;

fn organizer() -> SecretKey {
    SecretKey::from_seed(&[1; 32])
}

fn node(n: u8) -> SecretKey {
    SecretKey::from_seed(&[40 + n; 32])
}

fn poll() -> Poll {
    PollDraft {
        organizer: organizer().public(),
        created_at: 0,
        opens_at: OPENS_AT,
        closes_at: 100_000,
        title: "Lunch".into(),
        options: vec!["soup".into(), "salad".into(), "pie".into()],
        eligibility: Eligibility::Open,
    }
    .sign(&organizer())
    .unwrap()
}

/// Voter `n` votes for `choice`.
fn vote(poll: &Poll, n: u8, choice: u32) -> Vote {
    let mut seed = [100; 32];
    seed[0] = n;
    let voter = SecretKey::from_seed(&seed);
    VoteBody {
        poll: poll.id,
        voter: voter.public(),
        choice,
        seq: 1,
        vote_id: VoteId::from_bytes([n; 16]),
        cast_at: OPENS_AT + u64::from(n),
        credential: None,
    }
    .sign(&voter)
}

/// The lines of one node's export: header, poll, entries, attestation.
fn export_lines(poll: &Poll, node: &SecretKey, votes: &[Vote]) -> Vec<String> {
    let mut state = PollState::new(poll.clone());
    for v in votes {
        state.insert(v.clone()).unwrap();
    }
    let attestation = Attestation::sign(node, poll.id, state.digest(), state.len() as u64, 50_000);

    let mut lines = vec![
        Record::Header(Header::new(poll.id, node.public(), 50_001)).to_line(),
        Record::Poll(poll.clone()).to_line(),
    ];
    lines.extend(state.entries().map(|v| Record::Entry(v.clone()).to_line()));
    lines.push(Record::Attestation(attestation).to_line());
    lines
}

/// Votes for soup, salad, salad, pie, soup, soup: counts [3, 2, 1].
fn cast(poll: &Poll) -> Vec<Vote> {
    [0, 1, 1, 2, 0, 0]
        .iter()
        .enumerate()
        .map(|(n, &c)| vote(poll, n as u8, c))
        .collect()
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }
}

fn verify(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_votemesh-verify"))
        .args(args)
        .output()
        .unwrap()
}

fn verify_json(files: &[&Path]) -> (i32, Value) {
    let mut args: Vec<&Path> = vec![Path::new("--json")];
    args.extend(files);
    let out = verify(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), report)
}

fn text(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `(check, line)` of every failure in a JSON report.
fn failures(report: &Value) -> Vec<(u64, Option<u64>)> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_u64().unwrap(), f["line"].as_u64()))
        .collect()
}

fn counts(report: &Value) -> Vec<u64> {
    report["tally"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect()
}

#[test]
fn good_export_verifies_and_recounts_what_was_cast() {
    let poll = poll();
    let dir = Dir::new();
    let file = dir.write("a.jsonl", &export_lines(&poll, &node(1), &cast(&poll)));

    let (code, report) = verify_json(&[&file]);
    let human = verify(&[&file]);

    assert_eq!(code, 0);
    assert_eq!(report["verified"], true);
    assert_eq!(counts(&report), vec![3, 2, 1]);
    assert_eq!(report["tally"]["voters"], 6);
    assert!(failures(&report).is_empty());

    assert_eq!(human.status.code(), Some(0));
    let human = text(&human);
    assert!(human.contains("\"Lunch\""), "{human}");
    assert!(human.contains(&poll.id.to_string()), "{human}");
    assert!(human.contains("50.0%"), "{human}");
    assert!(human.ends_with("verified: yes\n"), "{human}");
}

#[test]
fn tampered_choice_fails_the_signature_and_the_attestation() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    // Line 3 is the first entry. The choice is the u32 after the 17-byte tag,
    // the poll id and the voter key: its last byte is byte 84 of the encoding.
    let mut record: Value = serde_json::from_str(&lines[2]).unwrap();
    let mut data = record["data"].as_str().unwrap().to_string();
    let at = 2 * 84;
    let flipped = if &data[at..at + 2] == "00" {
        "01"
    } else {
        "00"
    };
    data.replace_range(at..at + 2, flipped);
    let tampered_hash = Vote::decode(&hex::decode(&data).unwrap()).unwrap().hash();
    record["data"] = data.into();
    lines[2] = record.to_string();
    let file = dir.write("tampered.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);
    let human = text(&verify(&[&file]));

    assert_eq!(code, 1);
    assert_eq!(report["verified"], false);
    let found = failures(&report);
    assert!(found.contains(&(6, Some(3))), "{found:?}");
    assert!(found.iter().any(|(check, _)| *check == 9), "{found:?}");
    let entry_failure = &report["failures"].as_array().unwrap()[0];
    assert_eq!(entry_failure["entry"], tampered_hash.to_string());
    assert!(
        human.contains(&format!(
            "check 6 [{}:3] entry {}",
            file.display(),
            tampered_hash.short()
        )),
        "{human}"
    );
    assert!(human.contains("verified: NO (2 failures)"), "{human}");
    assert_eq!(counts(&report).iter().sum::<u64>(), 5);
}

#[test]
fn dropped_entry_fails_the_attestation() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    lines.remove(4);
    let file = dir.write("dropped.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);

    assert_eq!(code, 1);
    let attestation_line = lines.len() as u64;
    assert_eq!(failures(&report), vec![(9, Some(attestation_line))]);
    assert_eq!(report["failures"][0]["code"], "attestation_mismatch");
    assert_eq!(report["tally"]["voters"], 5);
}

#[test]
fn two_nodes_with_overlapping_entries_are_recounted_as_their_union() {
    let poll = poll();
    let dir = Dir::new();
    let votes = cast(&poll);
    let a = dir.write("a.jsonl", &export_lines(&poll, &node(1), &votes[..4]));
    let b = dir.write("b.jsonl", &export_lines(&poll, &node(2), &votes[2..]));

    let (code, report) = verify_json(&[&a, &b]);
    let human = text(&verify(&[&a, &b]));

    assert_eq!(code, 0, "{report}");
    assert_eq!(counts(&report), vec![3, 2, 1]);
    assert_eq!(report["tally"]["entries"], 6);
    assert_eq!(report["files"][0]["entries"], 4);
    assert_eq!(report["files"][1]["entries"], 4);
    assert!(
        human.contains(&format!("node {}", node(2).public().short())),
        "{human}"
    );
}

#[test]
fn repeated_entry_lines_fail_check_4_at_each_repeat_in_line_order() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    // Entries are lines 3 to 8. Repeat line 5 twice and line 3 once, all
    // after line 8 (before the attestation): lines 9, 10 and 11.
    let attestation = lines.pop().unwrap();
    lines.extend([lines[4].clone(), lines[2].clone(), lines[4].clone()]);
    lines.push(attestation);
    let file = dir.write("repeated.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);

    assert_eq!(code, 1);
    assert_eq!(
        failures(&report),
        vec![(4, Some(9)), (4, Some(10)), (4, Some(11))]
    );
    assert_eq!(report["failures"][0]["code"], "duplicate_entry");
    let repeated: Record = Record::from_line(&lines[4]).unwrap();
    let Record::Entry(vote) = repeated else {
        panic!("line 5 is an entry")
    };
    assert_eq!(report["failures"][0]["entry"], vote.hash().to_string());
    // Each entry counts once: the attestation still matches the file.
    assert_eq!(report["files"][0]["entries"], 6);
    assert_eq!(counts(&report), vec![3, 2, 1]);
    let check_4 = &report["checks"][3];
    assert_eq!(
        (check_4["passed"].as_u64(), check_4["failed"].as_u64()),
        (Some(6), Some(3))
    );
}

#[test]
fn a_file_holding_a_part_of_the_union_is_checked_against_its_own_digest() {
    let poll = poll();
    let dir = Dir::new();
    let votes = cast(&poll);
    let all = dir.write("all.jsonl", &export_lines(&poll, &node(1), &votes));
    let part = dir.write("part.jsonl", &export_lines(&poll, &node(2), &votes[1..3]));

    let (code, report) = verify_json(&[&part, &all]);

    assert_eq!(code, 0, "{report}");
    assert_eq!(report["files"][0]["entries"], 2);
    assert_eq!(report["files"][1]["entries"], 6);
    assert_ne!(report["files"][0]["digest"], report["files"][1]["digest"]);
    assert_eq!(report["files"][1]["digest"], report["digest"]);
    assert_eq!(counts(&report), vec![3, 2, 1]);
}

#[test]
fn many_votes_are_checked_in_parallel_chunks_in_order() {
    let poll = poll();
    let dir = Dir::new();
    let mut votes: Vec<Vote> = (0..=200u8)
        .map(|n| vote(&poll, n, u32::from(n % 3)))
        .collect();
    votes.extend((0..=200u8).map(|n| vote(&poll, n, u32::from(n % 2)))); // equivocations
    let mut lines = export_lines(&poll, &node(1), &votes);
    let forged_line = 300;
    let mut record: Value = serde_json::from_str(&lines[forged_line - 1]).unwrap();
    let mut data = record["data"].as_str().unwrap().to_string();
    let end = data.len();
    let last = if data.ends_with('0') { "1" } else { "0" };
    data.replace_range(end - 1..end, last);
    record["data"] = data.into();
    lines[forged_line - 1] = record.to_string();
    let file = dir.write("big.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);
    let one_thread = verify(&[Path::new("--json"), Path::new("--threads=1"), &file]);
    let one_thread: Value = serde_json::from_slice(&one_thread.stdout).unwrap();

    assert_eq!(code, 1);
    let found = failures(&report);
    assert!(found.contains(&(6, Some(forged_line as u64))), "{found:?}");
    assert_eq!(report, one_thread);
    assert!(!report["equivocations"].as_array().unwrap().is_empty());
}

#[test]
fn garbage_line_fails_check_3_at_its_line() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    lines.insert(4, "this is not json".into());
    lines.insert(5, r#"{"type":"entry","data":"zz"}"#.into());
    let file = dir.write("garbage.jsonl", &lines);
    std::fs::write(
        &file,
        [std::fs::read(&file).unwrap(), b"\xff\xfe\n".to_vec()].concat(),
    )
    .unwrap();

    let (code, report) = verify_json(&[&file]);

    assert_eq!(code, 1);
    let last = lines.len() as u64 + 1;
    assert_eq!(
        failures(&report),
        vec![(3, Some(5)), (3, Some(6)), (3, Some(last))]
    );
    assert_eq!(counts(&report), vec![3, 2, 1]);
}

#[test]
fn missing_header_fails_check_1_at_line_1() {
    let poll = poll();
    let dir = Dir::new();
    let lines = export_lines(&poll, &node(1), &cast(&poll));
    let file = dir.write("headless.jsonl", &lines[1..]);

    let (code, report) = verify_json(&[&file]);

    assert_eq!(code, 1);
    assert_eq!(failures(&report), vec![(1, Some(1))]);
    assert_eq!(report["failures"][0]["code"], "missing_header");
}

#[test]
fn wrong_version_fails_check_1_at_line_1() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    let mut header: Value = serde_json::from_str(&lines[0]).unwrap();
    header["version"] = 2.into();
    lines[0] = header.to_string();
    let file = dir.write("v2.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);
    let human = text(&verify(&[&file]));

    assert_eq!(code, 1);
    assert_eq!(failures(&report), vec![(1, Some(1))]);
    assert!(
        human.contains(&format!("check 1 [{}:1]", file.display())),
        "{human}"
    );
}

#[test]
fn garbage_first_line_and_empty_file_fail_check_1() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    lines[0] = "garbage".into();
    let garbled = dir.write("garbled.jsonl", &lines);
    let blank = dir.write("blank.jsonl", &[]);
    let empty = dir.0.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();

    let (code, report) = verify_json(&[&garbled]);
    let (empty_code, empty_report) = verify_json(&[&blank]);
    let (_, zero_bytes_report) = verify_json(&[&empty]);

    assert_eq!(code, 1);
    assert_eq!(failures(&report), vec![(1, Some(1)), (3, Some(1))]);
    assert_eq!(empty_code, 1);
    assert!(
        failures(&empty_report).contains(&(1, Some(1))),
        "{empty_report}"
    );
    assert_eq!(empty_report["verified"], false);
    assert!(
        failures(&zero_bytes_report).contains(&(1, None)),
        "{zero_bytes_report}"
    );
}

#[test]
fn missing_attestation_fails_check_7() {
    let poll = poll();
    let dir = Dir::new();
    let mut lines = export_lines(&poll, &node(1), &cast(&poll));
    lines.pop();
    let file = dir.write("unattested.jsonl", &lines);

    let (code, report) = verify_json(&[&file]);

    assert_eq!(code, 1);
    assert_eq!(failures(&report), vec![(7, None)]);
}

#[test]
fn stdin_is_read_with_a_dash() {
    let poll = poll();
    let input = export_lines(&poll, &node(1), &cast(&poll)).join("\n");

    let mut child = Command::new(env!("CARGO_BIN_EXE_votemesh-verify"))
        .args(["--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["files"][0]["name"], "<stdin>");
    assert_eq!(counts(&report), vec![3, 2, 1]);
}

#[test]
fn unreadable_file_and_usage_errors_exit_2() {
    let dir = Dir::new();
    let missing = dir.0.path().join("missing.jsonl");

    let out = verify(&[&missing]);
    let no_args = verify(&[]);
    let directory = verify(&[dir.0.path()]);

    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8(out.stderr).unwrap();
    assert!(
        message.contains("cannot open") && message.contains("missing.jsonl"),
        "{message}"
    );
    assert_eq!(no_args.status.code(), Some(2));
    assert_eq!(directory.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn help_explains_checks_output_and_exit_codes() {
    let out = verify(&[Path::new("--help")]);
    let help = text(&out);

    assert_eq!(out.status.code(), Some(0));
    for needle in [
        "--json",
        "FILE",
        "check N [file:line]",
        "Exit status",
        "ballot secrecy",
        "  9  ",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}
