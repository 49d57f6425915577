//! Bad input gets a clear status and stable code, and changes nothing.

mod common;

use common::{body, data_dir, poll, vote, voter, Node, OPENS};
use crdt::{PublicKey, Signature, Vote};
use serde_json::Value;

/// The ed25519 group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The same signature with S replaced by S + L: valid modulo L, not canonical.
fn malleate(signature: &Signature) -> Signature {
    let mut out = signature.0;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = out[32 + i] as u16 + L[i] as u16 + carry;
        out[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    Signature(out)
}

/// One bad request and what the node must answer.
struct Case<'a> {
    name: &'a str,
    path: &'a str,
    content_type: Option<&'a str>,
    body: Vec<u8>,
    status: u16,
    code: &'a str,
}

fn case<'a>(
    name: &'a str,
    path: &'a str,
    content_type: Option<&'a str>,
    body: Vec<u8>,
    status: u16,
    code: &'a str,
) -> Case<'a> {
    Case {
        name,
        path,
        content_type,
        body,
        status,
        code,
    }
}

fn json(vote: &Vote) -> Vec<u8> {
    serde_json::to_vec(vote).unwrap()
}

#[tokio::test]
async fn bad_input_gets_its_code_and_leaves_the_tally_unchanged() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("strict");
    node.create_poll(&poll).await;
    let (status, _) = node.vote(&vote(&poll, 1, 0, 1)).await;
    assert_eq!(status, 200);
    let before = node.tally(&poll).await;
    let votes = format!("/v1/polls/{}/votes", poll.id);
    let good = vote(&poll, 2, 1, 1);

    let mut flipped = *good.signature();
    flipped.0[32] ^= 1;
    let small_order = {
        let mut b = body(&poll, 3, 0, 1);
        b.voter = PublicKey([
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ]);
        let signature = voter(3).sign(&b.signing_bytes());
        Vote::new(b, signature)
    };
    let mut early = body(&poll, 4, 0, 1);
    early.cast_at = OPENS - 1;
    let unknown_poll = format!("/v1/polls/{}/votes", "ab".repeat(32));
    let json_type = Some("application/json");
    let oversized = {
        let mut bytes = br#"{"pad":""#.to_vec();
        bytes.resize(8 * 1024 * 1024 + 1, b'a');
        bytes.extend_from_slice(br#""}"#);
        bytes
    };

    let cases = vec![
        case(
            "malformed json",
            &votes,
            json_type,
            b"{\"poll\": ".to_vec(),
            400,
            "invalid_json",
        ),
        case(
            "wrong shape",
            &votes,
            json_type,
            br#"{"poll": 5}"#.to_vec(),
            400,
            "invalid_json",
        ),
        case(
            "oversized body",
            &votes,
            json_type,
            oversized,
            413,
            "body_too_large",
        ),
        case(
            "wrong content type",
            &votes,
            Some("text/plain"),
            json(&good),
            415,
            "unsupported_media_type",
        ),
        case(
            "no content type",
            &votes,
            None,
            json(&good),
            415,
            "unsupported_media_type",
        ),
        case(
            "flipped signature bit",
            &votes,
            json_type,
            json(&Vote::new(good.body().clone(), flipped)),
            422,
            "bad_signature",
        ),
        case(
            "s plus l",
            &votes,
            json_type,
            json(&Vote::new(good.body().clone(), malleate(good.signature()))),
            422,
            "non_canonical_signature",
        ),
        case(
            "small order voter key",
            &votes,
            json_type,
            json(&small_order),
            422,
            "bad_voter_key",
        ),
        case(
            "unknown poll",
            &unknown_poll,
            json_type,
            json(&good),
            404,
            "unknown_poll",
        ),
        case(
            "unknown option",
            &votes,
            json_type,
            json(&vote(&poll, 5, 3, 1)),
            422,
            "unknown_option",
        ),
        case(
            "outside the window",
            &votes,
            json_type,
            json(&early.sign(&voter(4))),
            422,
            "outside_window",
        ),
    ];

    for case in cases {
        let (got, reply) = node.post_raw(case.path, case.content_type, case.body).await;

        let name = case.name;
        assert_eq!(
            (got, reply["error"]["code"].as_str()),
            (case.status, Some(case.code)),
            "{name}: {reply}"
        );
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{name}: empty message");
    }
    let after = node.tally(&poll).await;
    assert_eq!(after["digest"], before["digest"]);
    assert_eq!(after["counts"], before["counts"]);
    let (status, _) = node.vote(&good).await;
    assert_eq!(status, 200, "the node still takes good votes");
}

#[tokio::test]
async fn a_vote_for_another_poll_is_refused_as_wrong_poll() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let here = poll("here");
    let there = poll("there");
    node.create_poll(&here).await;
    node.create_poll(&there).await;

    let path = format!("/v1/polls/{}/votes", here.id);
    let (status, reply) = node
        .post(&path, &serde_json::to_value(vote(&there, 1, 0, 1)).unwrap())
        .await;

    assert_eq!(status, 422);
    assert_eq!(reply["error"]["code"], "wrong_poll");
    assert_eq!(node.tally(&here).await["entries"], 0);
}

#[tokio::test]
async fn a_poll_with_a_bad_signature_is_refused() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let mut forged = serde_json::to_value(poll("forged")).unwrap();
    forged["signature"] = Value::String("11".repeat(64));

    let (status, reply) = node.post("/v1/polls", &forged).await;
    let (_, listed) = node.get("/v1/polls").await;

    assert_eq!(status, 422);
    assert_eq!(reply["error"]["code"], "bad_poll_signature");
    assert_eq!(listed, serde_json::json!([]));
}

#[tokio::test]
async fn a_poll_with_an_unknown_field_is_refused_naming_it() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let mut padded = serde_json::to_value(poll("padded")).unwrap();
    padded["extra"] = Value::from(1);

    let (status, reply) = node.post("/v1/polls", &padded).await;
    let (_, listed) = node.get("/v1/polls").await;

    assert_eq!(status, 400);
    assert_eq!(reply["error"]["code"], "invalid_json");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("`extra`"), "{message}");
    assert_eq!(listed, serde_json::json!([]));
}

#[tokio::test]
async fn json_errors_name_the_vote_and_poll_not_internal_types() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let poll = poll("named");
    node.create_poll(&poll).await;
    let votes = format!("/v1/polls/{}/votes", poll.id);

    let (vote_status, vote_reply) = node.post(&votes, &Value::Null).await;
    let (poll_status, poll_reply) = node.post("/v1/polls", &Value::Null).await;

    assert_eq!((vote_status, poll_status), (400, 400));
    let vote_message = vote_reply["error"]["message"].as_str().unwrap();
    let poll_message = poll_reply["error"]["message"].as_str().unwrap();
    assert!(vote_message.contains("struct vote"), "{vote_message}");
    assert!(poll_message.contains("struct poll"), "{poll_message}");
    assert!(!vote_message.contains("Wire") && !poll_message.contains("Wire"));
}

#[tokio::test]
async fn votes_for_an_unknown_poll_are_unknown_poll_whatever_the_body() {
    let (_guard, dir) = data_dir();
    let node = Node::start(&dir, &[]);
    let unknown = "ab".repeat(32);
    let json_type = Some("application/json");

    let (single, single_reply) = node
        .post_raw(
            &format!("/v1/polls/{unknown}/votes"),
            json_type,
            b"{".to_vec(),
        )
        .await;
    let (batch, batch_reply) = node
        .post_raw(
            &format!("/v1/polls/{unknown}/votes/batch"),
            json_type,
            b"[]".to_vec(),
        )
        .await;

    assert_eq!(single, 404);
    assert_eq!(single_reply["error"]["code"], "unknown_poll");
    assert_eq!(batch, 404);
    assert_eq!(batch_reply["error"]["code"], "unknown_poll");
}
