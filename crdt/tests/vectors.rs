//! Test vectors for the canonical encoding (`docs/encoding.md`).
//!
//! Everything here is recomputed from fixed seeds and compared with
//! `fixtures/encoding-vectors.json`. After a deliberate format change,
//! regenerate the fixture with `VOTEMESH_BLESS=1 cargo test -p votemesh-crdt
//! --test vectors` and review the diff. The signing bytes are also rebuilt
//! here by a separate, minimal encoder written from the document, so the
//! document and the code cannot drift apart unnoticed.

use std::path::PathBuf;

use crdt::{
    digest_sorted, Attestation, Credential, Eligibility, EntryHash, GroupStatement, GroupTree,
    Poll, PollDraft, PollId, PublicKey, Receipt, SecretKey, SignedMessage, SignedTally, Vote,
    VoteBody, VoteId,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const ORGANIZER: [u8; 32] = [0x01; 32];
const VOTER: [u8; 32] = [0x02; 32];
const REGISTRAR: [u8; 32] = [0x03; 32];
const NODE: [u8; 32] = [0x04; 32];

const OPENS_AT: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const CLOSES_AT: u64 = OPENS_AT + 7 * 86_400_000;

/// The encoding, written again from `docs/encoding.md` alone.
struct Doc(Vec<u8>);

impl Doc {
    fn tag(kind: &str) -> Self {
        Self::tag_v(kind, 1)
    }
    fn tag_v(kind: &str, version: u32) -> Self {
        let mut out = format!("votemesh/{kind}/v{version}").into_bytes();
        out.push(0);
        Doc(out)
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn u8(self, v: u8) -> Self {
        self.raw(&[v])
    }
    fn u32(self, v: u32) -> Self {
        self.raw(&v.to_be_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.raw(&v.to_be_bytes())
    }
    fn bytes(self, v: &[u8]) -> Self {
        self.u32(v.len() as u32).raw(v)
    }
}

fn open_draft(organizer: &SecretKey) -> PollDraft {
    PollDraft {
        organizer: organizer.public(),
        created_at: OPENS_AT - 3_600_000,
        opens_at: OPENS_AT,
        closes_at: CLOSES_AT,
        title: "Lunch".into(),
        options: vec!["soup".into(), "salad".into(), "pie".into()],
        eligibility: Eligibility::Open,
    }
}

fn doc_poll(draft: &PollDraft) -> Vec<u8> {
    let mut doc = Doc::tag("poll")
        .raw(&draft.organizer.0)
        .u64(draft.created_at)
        .u64(draft.opens_at)
        .u64(draft.closes_at)
        .bytes(draft.title.as_bytes())
        .u32(draft.options.len() as u32);
    for option in &draft.options {
        doc = doc.bytes(option.as_bytes());
    }
    match &draft.eligibility {
        Eligibility::Open => doc.u8(0),
        Eligibility::Credential { registrar } => doc.u8(1).raw(&registrar.0),
        Eligibility::AllowList { voters } => {
            let mut doc = doc.u8(2).u32(voters.len() as u32);
            for key in voters {
                doc = doc.raw(&key.0);
            }
            doc
        }
    }
    .0
}

fn doc_credential(c: &Credential) -> Vec<u8> {
    Doc::tag("credential")
        .raw(&c.poll.0)
        .raw(&c.voter.0)
        .raw(&c.registrar.0)
        .0
}

fn doc_vote(b: &VoteBody) -> Vec<u8> {
    let doc = Doc::tag("vote")
        .raw(&b.poll.0)
        .raw(&b.voter.0)
        .u32(b.choice)
        .u64(b.seq)
        .raw(b.vote_id.as_bytes())
        .u64(b.cast_at);
    match &b.credential {
        None => doc.u8(0).0,
        Some(c) => doc.u8(1).raw(&doc_credential(c)).raw(&c.signature.0).0,
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_signature(key: &PublicKey, message: &[u8], signature: &crdt::Signature) {
    crdt::verify(&SignedMessage {
        key,
        message,
        signature,
    })
    .unwrap();
}

fn poll_vector(poll: &Poll) -> Value {
    let signing = doc_poll(&poll.draft);
    assert_eq!(poll.encode(), [&signing[..], &poll.signature.0].concat());
    assert_eq!(
        poll.id.to_string(),
        sha256(&signing),
        "poll id is SHA-256 of the signing bytes"
    );
    poll.verify().unwrap();
    json!({
        "signing_bytes": hex::encode(&signing),
        "signature": poll.signature.to_string(),
        "poll_id": poll.id.to_string(),
    })
}

fn vote_vector(vote: &Vote) -> Value {
    let signing = doc_vote(vote.body());
    assert_eq!(vote.signing_bytes(), signing);
    assert_eq!(
        vote.hash().to_string(),
        sha256(vote.encoded()),
        "entry hash is SHA-256 of the encoding"
    );
    check_signature(&vote.body().voter, &signing, vote.signature());
    json!({
        "signing_bytes": hex::encode(&signing),
        "signature": vote.signature().to_string(),
        "encoded": hex::encode(vote.encoded()),
        "entry_hash": vote.hash().to_string(),
    })
}

/// Every vector, recomputed.
fn compute() -> Value {
    let organizer = SecretKey::from_seed(&ORGANIZER);
    let voter = SecretKey::from_seed(&VOTER);
    let registrar = SecretKey::from_seed(&REGISTRAR);
    let node = SecretKey::from_seed(&NODE);

    let open = open_draft(&organizer).sign(&organizer).unwrap();
    let credential_poll = PollDraft {
        title: "Board election".into(),
        options: vec!["yes".into(), "no".into()],
        eligibility: Eligibility::Credential {
            registrar: registrar.public(),
        },
        ..open_draft(&organizer)
    }
    .sign(&organizer)
    .unwrap();

    let vote = VoteBody {
        poll: open.id,
        voter: voter.public(),
        choice: 1,
        seq: 1,
        vote_id: "00112233-4455-6677-8899-aabbccddeeff"
            .parse::<uuid_text::Uuid>()
            .unwrap()
            .into(),
        cast_at: OPENS_AT + 60_000,
        credential: None,
    }
    .sign(&voter);

    let credential = Credential::issue(&registrar, credential_poll.id, voter.public());
    assert_eq!(credential.signing_bytes(), doc_credential(&credential));
    credential.verify().unwrap();
    let credential_vote = VoteBody {
        poll: credential_poll.id,
        voter: voter.public(),
        choice: 0,
        seq: 1,
        vote_id: VoteId::from_bytes([0x42; 16]),
        cast_at: OPENS_AT + 120_000,
        credential: Some(credential.clone()),
    }
    .sign(&voter);
    crdt::admit(&credential_poll, &credential_vote).unwrap();

    let receipt = Receipt::sign_v1(&node, open.id, vote.hash(), OPENS_AT + 60_250);
    let receipt_bytes = Doc::tag("receipt")
        .raw(&node.public().0)
        .raw(&open.id.0)
        .raw(&vote.hash().0)
        .u64(receipt.received_at);
    check_signature(&node.public(), &receipt_bytes.0, &receipt.signature);
    receipt.verify().unwrap();

    // A small fixed set: the voter changes their mind twice.
    let revisions: Vec<Vote> = (1..=3u64)
        .map(|seq| {
            VoteBody {
                seq,
                choice: (seq % 3) as u32,
                vote_id: VoteId::from_bytes([seq as u8; 16]),
                cast_at: OPENS_AT + seq * 60_000,
                ..vote.body().clone()
            }
            .sign(&voter)
        })
        .collect();
    let mut state = crdt::PollState::new(open.clone());
    for v in &revisions {
        state.insert(v.clone()).unwrap();
    }
    let mut hashes: Vec<EntryHash> = revisions.iter().map(Vote::hash).collect();
    hashes.sort();
    let digest = digest_sorted(&hashes).unwrap();
    assert_eq!(state.digest(), digest);

    let batch_receipts = batch_receipt_vector(&node, &open, &vote, &revisions, &voter);

    let attestation = Attestation::sign(&node, open.id, digest, 3, OPENS_AT + 600_000);
    let attestation_bytes = Doc::tag("attestation")
        .raw(&node.public().0)
        .raw(&open.id.0)
        .raw(&digest.0)
        .u64(3)
        .u64(attestation.at);
    assert_eq!(
        attestation.encode(),
        [&attestation_bytes.0[..], &attestation.signature.0].concat()
    );
    attestation.verify().unwrap();

    let counts = state.tally().counts;
    let tally = SignedTally::sign(
        &node,
        open.id,
        digest,
        3,
        counts.clone(),
        OPENS_AT + 600_000,
    );
    let mut tally_bytes = Doc::tag("tally")
        .raw(&node.public().0)
        .raw(&open.id.0)
        .raw(&digest.0)
        .u64(3)
        .u64(tally.at)
        .u32(counts.len() as u32);
    for count in &counts {
        tally_bytes = tally_bytes.u64(*count);
    }
    check_signature(&node.public(), &tally_bytes.0, &tally.signature);

    json!({
        "about": "votemesh canonical encoding test vectors, format v1; see docs/encoding.md. \
                  Regenerate with VOTEMESH_BLESS=1 cargo test -p votemesh-crdt --test vectors.",
        "seeds": {
            "organizer": hex::encode(ORGANIZER),
            "voter": hex::encode(VOTER),
            "registrar": hex::encode(REGISTRAR),
            "node": hex::encode(NODE),
        },
        "public_keys": {
            "organizer": organizer.public().to_string(),
            "voter": voter.public().to_string(),
            "registrar": registrar.public().to_string(),
            "node": node.public().to_string(),
        },
        "open_poll": {
            "poll": serde_json::to_value(&open).unwrap(),
            "vector": poll_vector(&open),
        },
        "credential_poll": {
            "poll": serde_json::to_value(&credential_poll).unwrap(),
            "vector": poll_vector(&credential_poll),
        },
        "credential": {
            "signing_bytes": hex::encode(credential.signing_bytes()),
            "signature": credential.signature.to_string(),
        },
        "vote": {
            "body": serde_json::to_value(vote.body()).unwrap(),
            "vector": vote_vector(&vote),
        },
        "vote_with_credential": {
            "body": serde_json::to_value(credential_vote.body()).unwrap(),
            "vector": vote_vector(&credential_vote),
        },
        "receipt": {
            "received_at": receipt.received_at,
            "signing_bytes": hex::encode(&receipt_bytes.0),
            "signature": receipt.signature.to_string(),
        },
        "batch_receipt": batch_receipts,
        "digest": {
            "entries_ascending": hashes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "digest": digest.to_string(),
            "empty_set_digest": digest_sorted(&[]).unwrap().to_string(),
            "tally_counts": counts,
        },
        "attestation": {
            "at": attestation.at,
            "signing_bytes": hex::encode(&attestation_bytes.0),
            "signature": attestation.signature.to_string(),
            "encoded": hex::encode(attestation.encode()),
        },
        "signed_tally": {
            "signing_bytes": hex::encode(&tally_bytes.0),
            "signature": tally.signature.to_string(),
        },
    })
}

/// RFC 6962's Merkle Tree Hash, written from the document.
fn doc_mth(leaves: &[EntryHash]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest(b"").into(),
        1 => Sha256::digest([&[0u8][..], &leaves[0].0].concat()).into(),
        n => {
            let k = doc_split(n);
            let (left, right) = (doc_mth(&leaves[..k]), doc_mth(&leaves[k..]));
            Sha256::digest([&[1u8][..], &left, &right].concat()).into()
        }
    }
}

/// The largest power of two smaller than `n` (n > 1).
fn doc_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962's audit path PATH(m, D[n]), bottom-up, written from the document.
fn doc_path(m: usize, leaves: &[EntryHash]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = doc_split(leaves.len());
    if m < k {
        let mut path = doc_path(m, &leaves[..k]);
        path.push(doc_mth(&leaves[k..]));
        path
    } else {
        let mut path = doc_path(m - k, &leaves[k..]);
        path.push(doc_mth(&leaves[..k]));
        path
    }
}

/// A commit group of five entries of the open poll: the statement the node
/// signs once, and every entry's receipt.
fn batch_receipt_vector(
    node: &SecretKey,
    open: &Poll,
    vote: &Vote,
    revisions: &[Vote],
    voter: &SecretKey,
) -> Value {
    let fifth = VoteBody {
        seq: 4,
        choice: 0,
        vote_id: VoteId::from_bytes([4; 16]),
        cast_at: OPENS_AT + 240_000,
        ..vote.body().clone()
    }
    .sign(voter);
    let mut entries: Vec<EntryHash> = std::iter::once(vote)
        .chain(revisions)
        .chain([&fifth])
        .map(Vote::hash)
        .collect();
    entries.sort();
    let received_at = OPENS_AT + 250_000;
    let tree = GroupTree::new(&entries).unwrap();
    let statement = GroupStatement::sign(node, open.id, &tree, received_at);
    assert_eq!(tree.root().0, doc_mth(&entries));

    let signing = Doc::tag_v("receipt", 2)
        .raw(&node.public().0)
        .raw(&open.id.0)
        .raw(&tree.root().0)
        .u64(entries.len() as u64)
        .u64(received_at);
    check_signature(&node.public(), &signing.0, &statement.signature);

    let receipts: Vec<Value> = (0..entries.len())
        .map(|i| {
            let receipt = statement.receipt(&tree, i as u64).unwrap();
            receipt.verify().unwrap();
            let group = receipt.group.as_ref().unwrap();
            let path: Vec<[u8; 32]> = group.path.iter().map(|d| d.0).collect();
            assert_eq!(path, doc_path(i, &entries), "path of entry {i}");
            serde_json::to_value(&receipt).unwrap()
        })
        .collect();
    json!({
        "entries_ascending": entries.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "received_at": received_at,
        "root": tree.root().to_string(),
        "signing_bytes": hex::encode(&signing.0),
        "signature": statement.signature.to_string(),
        "receipts": receipts,
    })
}

mod uuid_text {
    //! Parses a UUID's text form without a uuid dependency in the tests.
    pub(crate) struct Uuid([u8; 16]);

    impl std::str::FromStr for Uuid {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let digits: String = s.chars().filter(|c| *c != '-').collect();
            let bytes = hex::decode(&digits).map_err(|e| e.to_string())?;
            Ok(Uuid(
                bytes.try_into().map_err(|_| "not 16 bytes".to_string())?,
            ))
        }
    }

    impl From<Uuid> for crdt::VoteId {
        fn from(u: Uuid) -> Self {
            crdt::VoteId::from_bytes(u.0)
        }
    }
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoding-vectors.json")
}

#[test]
fn encoding_vectors_match_the_fixture() {
    let computed = compute();
    let path = fixture_path();

    if std::env::var("VOTEMESH_BLESS").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }

    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate it with VOTEMESH_BLESS=1)",
            path.display()
        )
    });
    let stored: Value = serde_json::from_str(&text).unwrap();
    for (key, value) in computed.as_object().unwrap() {
        assert_eq!(
            Some(value),
            stored.get(key),
            "vector {key:?} differs from the fixture"
        );
    }
    assert_eq!(
        stored.as_object().unwrap().len(),
        computed.as_object().unwrap().len()
    );
}

#[test]
fn fixture_vote_decodes_and_verifies_on_its_own() {
    // A second implementation starts here: bytes from the fixture, nothing else.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap();
    let vector = &stored["vote"]["vector"];
    let encoded = hex::decode(vector["encoded"].as_str().unwrap()).unwrap();

    let vote = Vote::decode(&encoded).unwrap();

    assert_eq!(
        vote.hash().to_string(),
        vector["entry_hash"].as_str().unwrap()
    );
    crdt::verify(&vote.signed_message()).unwrap();
    let poll = Poll::from_json(&stored["open_poll"]["poll"]).unwrap();
    assert_eq!(poll.id, vote.body().poll);
    assert_eq!(poll.id, vector_poll_id(&stored["open_poll"]));
    crdt::admit(&poll, &vote).unwrap();
}

fn vector_poll_id(v: &Value) -> PollId {
    v["vector"]["poll_id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn fixture_batch_receipts_verify_on_their_own_and_fail_when_altered() {
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap();
    let vector = &stored["batch_receipt"];
    let entries: Vec<EntryHash> = vector["entries_ascending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().parse().unwrap())
        .collect();
    let receipts = vector["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), entries.len());

    for (i, json) in receipts.iter().enumerate() {
        let receipt: Receipt = serde_json::from_value(json.clone()).unwrap();
        receipt.verify().unwrap();
        assert_eq!(receipt.entry, entries[i]);
        assert_eq!(json["version"], 2);
        assert_eq!(json["root"], vector["root"]);
        assert_eq!(json["signature"], vector["signature"]);
        // One statement for the whole group: its signing bytes name the root.
        let signing = hex::decode(vector["signing_bytes"].as_str().unwrap()).unwrap();
        check_signature(&receipt.node, &signing, &receipt.signature);

        let mut other = receipt.clone();
        other.entry = entries[(i + 1) % entries.len()];
        assert!(other.verify().is_err(), "receipt {i} names only its entry");
    }
}
