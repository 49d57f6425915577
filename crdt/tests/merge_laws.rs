//! The grow-only set's merge laws, the tally as a function of the set, the
//! encode/decode round trips, and that rejected entries never move a count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crdt::export::{Header, Record};
use crdt::{
    Attestation, Credential, Digest, Eligibility, EntryHash, Equivocation, PollDraft, PollId,
    PollState, PublicKey, Rejection, SecretKey, Signature, Tally, Vote, VoteBody, VoteId,
};
use proptest::prelude::*;

const OPENS_AT: u64 = 1_000;
const CLOSES_AT: u64 = 10_000;

fn poll() -> &'static crdt::Poll {
    static POLL: OnceLock<crdt::Poll> = OnceLock::new();
    POLL.get_or_init(|| {
        let organizer = SecretKey::from_seed(&[1; 32]);
        PollDraft {
            organizer: organizer.public(),
            created_at: 0,
            opens_at: OPENS_AT,
            closes_at: CLOSES_AT,
            title: "Merge laws".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            eligibility: Eligibility::Open,
        }
        .sign(&organizer)
        .unwrap()
    })
}

fn body(voter: &SecretKey, choice: u32, seq: u64, variant: u8) -> VoteBody {
    VoteBody {
        poll: poll().id,
        voter: voter.public(),
        choice,
        seq,
        vote_id: VoteId::from_bytes([variant; 16]),
        cast_at: OPENS_AT + u64::from(variant),
        credential: None,
    }
}

/// Every admissible vote the generators pick from: 3 voters, 3 seqs, 3
/// choices, 2 variants. Same voter and seq with another choice or variant is
/// an equivocation.
fn pool() -> &'static [Vote] {
    static POOL: OnceLock<Vec<Vote>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut votes = Vec::new();
        for voter in 0..3u8 {
            let key = SecretKey::from_seed(&[10 + voter; 32]);
            for seq in 0..3 {
                for choice in 0..3 {
                    for variant in 0..2 {
                        votes.push(body(&key, choice, seq, variant).sign(&key));
                    }
                }
            }
        }
        votes
    })
}

/// Votes the poll must reject, each with the rejection code it must get.
fn rejected_pool() -> &'static [(Vote, &'static str)] {
    static POOL: OnceLock<Vec<(Vote, &'static str)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let voter = SecretKey::from_seed(&[10; 32]);
        let mut out = Vec::new();
        for choice in [3, 4, u32::MAX] {
            out.push((body(&voter, choice, 1, 0).sign(&voter), "unknown_option"));
        }
        for cast_at in [0, OPENS_AT - 1, CLOSES_AT, u64::MAX] {
            let late = VoteBody {
                cast_at,
                ..body(&voter, 0, 1, 0)
            };
            out.push((late.sign(&voter), "outside_window"));
        }
        for (i, good) in pool().iter().enumerate().step_by(7) {
            let mut signature = *good.signature();
            signature.0[(i * 5) % 64] ^= 1 << (i % 8);
            let forged = Vote::new(good.body().clone(), signature);
            let code = forged_code(&forged);
            out.push((forged, code));
        }
        for poll in [PollId([0; 32]), PollId([0xff; 32])] {
            let other = VoteBody {
                poll,
                ..body(&voter, 0, 1, 0)
            };
            out.push((other.sign(&voter), "wrong_poll"));
        }
        let registrar = SecretKey::from_seed(&[30; 32]);
        let credential = Credential::issue(&registrar, poll().id, voter.public());
        let unexpected = VoteBody {
            credential: Some(credential),
            ..body(&voter, 0, 1, 0)
        };
        out.push((unexpected.sign(&voter), "unexpected_credential"));
        out
    })
}

/// A flipped signature bit may break `S` or `R` rather than the equation.
fn forged_code(vote: &Vote) -> &'static str {
    match crdt::admit(poll(), vote) {
        Err(rejection) => rejection.code(),
        Ok(()) => panic!("a forged signature was admitted"),
    }
}

/// Everything a replica shows the outside world.
#[derive(Debug, PartialEq, Eq)]
struct View {
    tally: Tally,
    digest: Digest,
    hashes: Vec<EntryHash>,
    equivocations: Vec<Equivocation>,
}

fn view(state: &PollState) -> View {
    View {
        tally: state.tally(),
        digest: state.digest(),
        hashes: state.entries().map(Vote::hash).collect(),
        equivocations: state.equivocations(),
    }
}

fn replica(picks: &[usize]) -> PollState {
    let mut state = PollState::new(poll().clone());
    for &i in picks {
        state.insert(pool()[i].clone()).unwrap();
    }
    state
}

/// The tally rule written out directly: per voter, the entry with the
/// highest `(seq, hash)` counts.
fn model_counts(picks: &[usize]) -> Vec<u64> {
    let mut best: BTreeMap<PublicKey, (u64, EntryHash, u32)> = BTreeMap::new();
    for &i in picks {
        let vote = &pool()[i];
        let key = (vote.body().seq, vote.hash(), vote.body().choice);
        let slot = best.entry(vote.body().voter).or_insert(key);
        *slot = (*slot).max(key);
    }
    let mut counts = vec![0; 3];
    for (_, _, choice) in best.values() {
        counts[*choice as usize] += 1;
    }
    counts
}

fn picks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..pool().len(), 0..14)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_commutative(a in picks(), b in picks()) {
        let (mut ab, mut ba) = (replica(&a), replica(&b));
        ab.merge(&replica(&b));
        ba.merge(&replica(&a));

        prop_assert_eq!(view(&ab), view(&ba));
    }

    #[test]
    fn merge_is_associative(a in picks(), b in picks(), c in picks()) {
        let mut left = replica(&a);
        left.merge(&replica(&b));
        left.merge(&replica(&c));

        let mut right_tail = replica(&b);
        right_tail.merge(&replica(&c));
        let mut right = replica(&a);
        right.merge(&right_tail);

        prop_assert_eq!(view(&left), view(&right));
    }

    #[test]
    fn merge_is_idempotent(a in picks(), b in picks()) {
        let mut once = replica(&a);
        once.merge(&replica(&b));
        let mut twice = once.clone();
        twice.merge(&once.clone());
        twice.merge(&replica(&b));

        prop_assert_eq!(view(&twice), view(&once));
    }

    #[test]
    fn tally_and_digest_ignore_order_and_duplicates(
        shuffled in picks().prop_flat_map(|p| {
            let doubled: Vec<usize> = p.iter().chain(p.iter().step_by(2)).copied().collect();
            (Just(p), Just(doubled).prop_shuffle())
        })
    ) {
        let (picks, reordered) = shuffled;
        let canonical: Vec<usize> = picks.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();

        let by_insert = replica(&reordered);
        let mut by_batch = PollState::new(poll().clone());
        by_batch.insert_batch(reordered.iter().map(|&i| pool()[i].clone()).collect());

        prop_assert_eq!(view(&by_insert), view(&replica(&canonical)));
        prop_assert_eq!(view(&by_batch), view(&by_insert));
        prop_assert_eq!(by_insert.tally().counts, model_counts(&picks));
        prop_assert_eq!(by_insert.len(), canonical.iter().map(|&i| pool()[i].hash()).collect::<BTreeSet<_>>().len());
    }

    #[test]
    fn rejected_entries_never_change_tally_or_digest(
        a in picks(),
        bad in prop::collection::vec(0..rejected_pool().len(), 1..6),
    ) {
        let mut state = replica(&a);
        let before = view(&state);

        for &i in &bad {
            let (vote, code) = &rejected_pool()[i];
            let rejection: Rejection = state.insert(vote.clone()).unwrap_err();
            prop_assert_eq!(rejection.code(), *code);
        }
        let batch = bad.iter().map(|&i| rejected_pool()[i].0.clone()).collect();
        prop_assert!(state.insert_batch(batch).iter().all(Result::is_err));

        prop_assert_eq!(view(&state), before);
    }
}

// Round trips.

fn key_bytes() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn eligibility() -> impl Strategy<Value = Eligibility> {
    prop_oneof![
        Just(Eligibility::Open),
        key_bytes().prop_map(|k| Eligibility::Credential {
            registrar: PublicKey(k)
        }),
        prop::collection::btree_set(key_bytes(), 1..5).prop_map(|keys| Eligibility::AllowList {
            voters: keys.into_iter().map(PublicKey).collect()
        }),
    ]
}

fn draft() -> impl Strategy<Value = PollDraft> {
    (
        (any::<u64>(), 0..u64::MAX / 2, 1..u64::MAX / 2),
        "\\PC{1,40}",
        prop::collection::btree_set("\\PC{1,20}", 1..6),
        eligibility(),
    )
        .prop_map(
            |((created_at, opens_at, length), title, options, eligibility)| PollDraft {
                organizer: PublicKey([0; 32]),
                created_at,
                opens_at,
                closes_at: opens_at + length,
                title,
                options: options.into_iter().collect(),
                eligibility,
            },
        )
}

fn vote() -> impl Strategy<Value = Vote> {
    (
        (any::<u8>(), key_bytes(), any::<u32>(), any::<u64>()),
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            proptest::option::of((key_bytes(), any::<u8>())),
        ),
    )
        .prop_map(
            |((seed, poll, choice, seq), (vote_id, cast_at, credential))| {
                let voter = SecretKey::from_seed(&[seed; 32]);
                let credential = credential.map(|(cpoll, registrar)| {
                    Credential::issue(
                        &SecretKey::from_seed(&[registrar; 32]),
                        PollId(cpoll),
                        voter.public(),
                    )
                });
                VoteBody {
                    poll: PollId(poll),
                    voter: voter.public(),
                    choice,
                    seq,
                    vote_id: VoteId::from_bytes(vote_id),
                    cast_at,
                    credential,
                }
                .sign(&voter)
            },
        )
}

fn attestation() -> impl Strategy<Value = Attestation> {
    (
        any::<u8>(),
        key_bytes(),
        key_bytes(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(seed, poll, digest, entries, at)| {
            let node = SecretKey::from_seed(&[seed; 32]);
            Attestation::sign(&node, PollId(poll), Digest(digest), entries, at)
        })
}

fn assert_line_round_trip(record: Record) -> Result<(), TestCaseError> {
    let line = record.to_line();
    prop_assert!(!line.contains('\n'));
    prop_assert_eq!(Record::from_line(&line).unwrap(), record);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn poll_round_trips_through_bytes_json_and_export_line(draft in draft(), seed in any::<u8>()) {
        let poll = draft.sign(&SecretKey::from_seed(&[seed; 32])).unwrap();

        let decoded = crdt::Poll::decode(&poll.encode()).unwrap();
        prop_assert_eq!(&decoded, &poll);
        prop_assert_eq!(decoded.id, poll.id);
        prop_assert!(decoded.verify().is_ok());
        prop_assert_eq!(&crdt::Poll::from_json(&serde_json::to_value(&poll).unwrap()).unwrap(), &poll);
        assert_line_round_trip(Record::Poll(poll))?;
    }

    #[test]
    fn vote_round_trips_through_bytes_json_and_export_line(vote in vote()) {
        let decoded = Vote::decode(vote.encoded()).unwrap();
        prop_assert_eq!(&decoded, &vote);
        prop_assert_eq!(decoded.hash(), vote.hash());
        prop_assert!(crdt::verify(&decoded.signed_message()).is_ok());
        if let Some(credential) = &decoded.body().credential {
            prop_assert!(credential.verify().is_ok());
        }

        let json = serde_json::to_value(&vote).unwrap();
        prop_assert_eq!(&serde_json::from_value::<Vote>(json).unwrap(), &vote);
        assert_line_round_trip(Record::Entry(vote))?;
    }

    #[test]
    fn attestation_round_trips_through_bytes_and_export_line(attestation in attestation()) {
        let decoded = Attestation::decode(&attestation.encode()).unwrap();
        prop_assert_eq!(&decoded, &attestation);
        prop_assert!(decoded.verify().is_ok());
        assert_line_round_trip(Record::Attestation(attestation))?;
    }

    #[test]
    fn header_round_trips_through_an_export_line(
        poll in key_bytes(),
        node in key_bytes(),
        exported_at in any::<u64>(),
    ) {
        let header = Header::new(PollId(poll), PublicKey(node), exported_at);
        assert_line_round_trip(Record::Header(header))?;
    }

    #[test]
    fn truncated_vote_encodings_never_decode(vote in vote(), cut in any::<prop::sample::Index>()) {
        let bytes = vote.encoded();
        let cut = cut.index(bytes.len());
        prop_assert!(Vote::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn signatures_differ_between_pool_votes() {
    // Guards the generators: a pool of identical entries would make every law trivial.
    let hashes: BTreeSet<EntryHash> = pool().iter().map(Vote::hash).collect();
    let signatures: BTreeSet<Signature> = pool().iter().map(|v| *v.signature()).collect();

    assert_eq!(hashes.len(), pool().len());
    assert_eq!(signatures.len(), pool().len());
}
