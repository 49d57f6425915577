//! The heal reconciliation, strategy by strategy: two replicas that diverged
//! as the scenario's first partition left them (entries accepted before the
//! cut on both, entries accepted on each side during it on one), reconciled
//! once by `crdt::sync`, by naive full exchange and, with the `baselines`
//! feature, by automerge's sync protocol and by yrs state-vector updates over
//! documents holding the same entries.
//!
//! Bytes, messages and flights are measured on the real encodings; the
//! convergence time is modelled from them and the scenario's WAN link.

use std::time::Instant;

use serde::Serialize;

use crdt::sync::{Config, Initiator, Message, Responder};
use crdt::{PollState, Vote};

use crate::scenario::{Fault, Link};
use crate::sim::{entries_messages, make_polls, make_vote, Outcome};

/// How two replicas differ at the heal.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HealCase {
    /// Entries both hold.
    pub common: usize,
    /// Entries only the first holds.
    pub only_a: usize,
    /// Entries only the second holds.
    pub only_b: usize,
    /// Where the numbers came from.
    pub source: &'static str,
}

impl HealCase {
    /// The case the run's first partition produced: entries accepted before
    /// it are common; entries accepted during it belong to the side whose
    /// node acked them. Without a partition: 95% common, 2.5% on each side.
    pub fn from_outcome(outcome: &Outcome) -> HealCase {
        let faults = &outcome.scenario.faults;
        let partition = faults.iter().find_map(|f| match f {
            Fault::Partition { at_s, groups } => Some((*at_s, groups.clone())),
            _ => None,
        });
        let accepted = outcome
            .votes
            .iter()
            .filter(|v| v.accepted.is_some())
            .count();
        let Some((start_s, groups)) = partition else {
            let side = accepted.div_ceil(40);
            return HealCase {
                common: accepted - 2 * side.min(accepted / 2),
                only_a: side,
                only_b: side,
                source: "no partition in the scenario: 95% common, 2.5% on each side",
            };
        };
        let heal_s = faults
            .iter()
            .filter_map(|f| match f {
                Fault::Heal { at_s } if *at_s >= start_s => Some(*at_s),
                _ => None,
            })
            .fold(outcome.scenario.duration_s, f64::min);
        let (start, heal) = (crate::secs(start_s), crate::secs(heal_s));
        let cut_off: Vec<usize> = groups.iter().flatten().copied().collect();

        let mut case = HealCase {
            common: 0,
            only_a: 0,
            only_b: 0,
            source: "the scenario's first partition: before it common, during it by acking node",
        };
        for v in &outcome.votes {
            let Some(at) = v.accepted else { continue };
            if at < start {
                case.common += 1;
            } else if at < heal && v.acked.is_some() {
                if cut_off.contains(&(v.acked_by as usize)) {
                    case.only_a += 1;
                } else {
                    case.only_b += 1;
                }
            }
        }
        case
    }
}

/// One strategy's cost to reconcile the heal case.
#[derive(Debug, Clone, Serialize)]
pub struct HealResult {
    /// The strategy.
    pub strategy: String,
    /// Messages, both directions.
    pub messages: u64,
    /// Encoded bytes, both directions.
    pub bytes: u64,
    /// Bytes per differing entry.
    pub bytes_per_difference: f64,
    /// One-way flights of messages until both were done.
    pub flights: u64,
    /// Modelled: flights times the WAN's mean one-way latency plus bytes
    /// over its bandwidth, seconds.
    pub convergence_s: f64,
    /// Serialized size of one replica afterwards (entries for votemesh and
    /// naive, `save()` for automerge, the full update for yrs), bytes.
    pub replica_bytes: u64,
    /// Whether both replicas ended equal.
    pub converged: bool,
    /// Wall time to build the two replicas (every entry written, group
    /// commits included), seconds; not part of the reconciliation.
    pub setup_s: f64,
    /// Wall time of the reconciliation itself, in process (encoding,
    /// decoding and applying every message; no network), seconds.
    pub reconcile_s: f64,
}

/// How the baselines store the entries: one automerge change, or one yrs
/// transaction, per `group` entries (a node's group commit).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Grouping {
    /// Entries per change (automerge) or transaction (yrs).
    pub group: usize,
}

/// Reconciles the case with every strategy built in; the baselines write
/// their entries in groups of `grouping.group`.
pub fn heal_comparison(case: HealCase, wan: Link, grouping: Grouping) -> Vec<HealResult> {
    let poll = make_polls(1, 3).remove(0);
    let votes: Vec<Vote> = (0..case.common + case.only_a + case.only_b)
        .map(|i| make_vote(&poll, i as u32, (i % 3) as u32, i as u64))
        .collect();
    let (common, rest) = votes.split_at(case.common);
    let (only_a, only_b) = rest.split_at(case.only_a);
    let sides = Sides {
        common,
        only_a,
        only_b,
    };

    let mut results = vec![votemesh(&poll, &sides, wan), naive(&poll, &sides, wan)];
    #[cfg(feature = "baselines")]
    {
        results.push(automerge_sync(&sides, wan, grouping.group.max(1)));
        results.push(yrs_updates(&sides, wan, grouping.group.max(1)));
    }
    #[cfg(not(feature = "baselines"))]
    let _ = grouping;
    let difference = (case.only_a + case.only_b).max(1) as f64;
    for r in &mut results {
        r.bytes_per_difference = r.bytes as f64 / difference;
    }
    results
}

/// Encoded bytes of one simulated vote (all have the same size).
pub fn simulated_entry_bytes() -> usize {
    let poll = make_polls(1, 3).remove(0);
    make_vote(&poll, 0, 0, 0).encoded().len()
}

struct Sides<'a> {
    common: &'a [Vote],
    only_a: &'a [Vote],
    only_b: &'a [Vote],
}

fn modelled_time(wan: Link, flights: u64, bytes: u64) -> f64 {
    let one_way = (wan.latency_ms + wan.jitter_ms / 2.0) / 1e3;
    let transmit = if wan.bandwidth_mbps > 0.0 {
        bytes as f64 * 8.0 / (wan.bandwidth_mbps * 1e6)
    } else {
        0.0
    };
    flights as f64 * one_way + transmit
}

fn states(poll: &crdt::Poll, sides: &Sides<'_>) -> (PollState, PollState) {
    let mut a = PollState::new(poll.clone());
    let mut b = PollState::new(poll.clone());
    for v in sides.common {
        a.insert_admitted(v.clone());
        b.insert_admitted(v.clone());
    }
    for v in sides.only_a {
        a.insert_admitted(v.clone());
    }
    for v in sides.only_b {
        b.insert_admitted(v.clone());
    }
    (a, b)
}

fn entry_bytes(state: &PollState) -> u64 {
    state.entries().map(|v| v.encoded().len() as u64).sum()
}

fn votemesh(poll: &crdt::Poll, sides: &Sides<'_>, wan: Link) -> HealResult {
    let started = Instant::now();
    let (mut a, mut b) = states(poll, sides);
    let setup_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let config = Config::default();
    let (mut initiator, first) = Initiator::start(poll.id, config, &a, 0);
    let mut responder = Responder::new(poll.id, config, 0);
    let (mut to_b, mut to_a) = (first.send, Vec::new());
    let (mut messages, mut bytes, mut flights) = (0u64, 0u64, 0u64);

    while !to_a.is_empty() || !to_b.is_empty() {
        flights += u64::from(!to_b.is_empty());
        for message in std::mem::take(&mut to_b) {
            let encoded = message.encode();
            (messages, bytes) = (messages + 1, bytes + encoded.len() as u64);
            let Ok(message) = Message::decode(&encoded) else {
                break;
            };
            let Ok(out) = responder.handle(message, &b, 0) else {
                break;
            };
            for v in out.received {
                b.insert_admitted(v);
            }
            to_a.extend(out.send);
        }
        flights += u64::from(!to_a.is_empty());
        for message in std::mem::take(&mut to_a) {
            let encoded = message.encode();
            (messages, bytes) = (messages + 1, bytes + encoded.len() as u64);
            let Ok(message) = Message::decode(&encoded) else {
                break;
            };
            let Ok(out) = initiator.handle(message, &a, 0) else {
                break;
            };
            for v in out.received {
                a.insert_admitted(v);
            }
            to_b.extend(out.send);
        }
    }
    let reconcile_s = started.elapsed().as_secs_f64();
    HealResult {
        strategy: "votemesh".into(),
        messages,
        bytes,
        bytes_per_difference: 0.0,
        flights,
        convergence_s: modelled_time(wan, flights, bytes),
        replica_bytes: entry_bytes(&a),
        converged: a.digest() == b.digest(),
        setup_s,
        reconcile_s,
    }
}

fn naive(poll: &crdt::Poll, sides: &Sides<'_>, wan: Link) -> HealResult {
    let started = Instant::now();
    let (mut a, mut b) = states(poll, sides);
    let setup_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let a_all: Vec<Vote> = a.entries().cloned().collect();
    let b_all: Vec<Vote> = b.entries().cloned().collect();
    let (mut messages, mut bytes) = (0u64, 0u64);
    for (from, to) in [(&a_all, &mut b), (&b_all, &mut a)] {
        for message in entries_messages(poll.id, from.clone(), true) {
            messages += 1;
            bytes += message.encode().len() as u64;
        }
        for v in from {
            to.insert_admitted(v.clone());
        }
    }
    let reconcile_s = started.elapsed().as_secs_f64();
    HealResult {
        strategy: "naive".into(),
        messages,
        bytes,
        bytes_per_difference: 0.0,
        flights: 2,
        convergence_s: modelled_time(wan, 2, bytes),
        replica_bytes: entry_bytes(&a),
        converged: a.digest() == b.digest(),
        setup_s,
        reconcile_s,
    }
}

/// The changes an automerge node with actor `[actor; 16]` makes when it
/// writes `votes` into the root map under their hashes, `group` entries per
/// change (per transaction), after a document whose heads are `deps` and
/// whose last operation is `start_op - 1`: the same actor, sequence numbers,
/// operations and dependencies as `put` and `commit` in a transaction give,
/// with time 0.
///
/// They are built here and applied with `apply_changes` rather than made in
/// local transactions because automerge 0.7 copies the document's whole
/// operation set when a local transaction opens (a rollback checkpoint,
/// `OpSet::save_checkpoint`): writing `N` entries in `N / group` local
/// transactions costs `O(N^2 / group)` (one change per entry: 6 s for 20,000
/// entries, 31 s for 40,000), which is the writer's cost, not the
/// reconciliation's.
#[cfg(feature = "baselines")]
fn group_changes(
    actor: u8,
    votes: &[Vote],
    group: usize,
    mut deps: Vec<automerge::ChangeHash>,
    mut start_op: u64,
) -> Vec<automerge::Change> {
    use automerge::legacy::{Key, ObjectId, Op, OpType, SortedVec};
    use automerge::{ActorId, Change, ExpandedChange, ScalarValue};
    use std::num::NonZeroU64;

    let mut changes = Vec::with_capacity(votes.len().div_ceil(group));
    for (seq, chunk) in votes.chunks(group).enumerate() {
        let operations = chunk
            .iter()
            .map(|vote| Op {
                action: OpType::Put(ScalarValue::Bytes(vote.encoded().to_vec())),
                obj: ObjectId::Root,
                key: Key::Map(vote.hash().to_string().into()),
                pred: SortedVec::new(),
                insert: false,
            })
            .collect();
        let change = Change::from(ExpandedChange {
            operations,
            actor_id: ActorId::from(vec![actor; 16]),
            hash: None,
            seq: seq as u64 + 1,
            start_op: NonZeroU64::new(start_op).expect("operations count from 1"),
            time: 0,
            message: None,
            deps: std::mem::take(&mut deps),
            extra_bytes: Vec::new(),
        });
        deps = vec![change.hash()];
        start_op += chunk.len() as u64;
        changes.push(change);
    }
    changes
}

/// automerge: the entries go into the root map under their hashes, one
/// change per `group` entries (a node's group commit); the replicas share
/// the changes of the common entries, then run the sync protocol until both
/// are quiet.
#[cfg(feature = "baselines")]
fn automerge_sync(sides: &Sides<'_>, wan: Link, group: usize) -> HealResult {
    use automerge::sync::{self, SyncDoc};
    use automerge::{ActorId, AutoCommit, Change, ReadDoc, ROOT};

    let started = Instant::now();
    let base = group_changes(1, sides.common, group, Vec::new(), 1);
    let heads: Vec<_> = base.last().map(Change::hash).into_iter().collect();
    let start_op = sides.common.len() as u64 + 1;
    let load = |changes: Vec<Change>| {
        let mut doc = AutoCommit::new();
        doc.apply_changes(changes).expect("own changes apply");
        doc
    };
    let mut a = load(base.clone()).with_actor(ActorId::from(vec![2u8; 16]));
    a.apply_changes(group_changes(
        2,
        sides.only_a,
        group,
        heads.clone(),
        start_op,
    ))
    .expect("own changes apply");
    let mut b = load(base).with_actor(ActorId::from(vec![3u8; 16]));
    b.apply_changes(group_changes(3, sides.only_b, group, heads, start_op))
        .expect("own changes apply");
    let setup_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (mut state_a, mut state_b) = (sync::State::new(), sync::State::new());
    let (mut messages, mut bytes, mut flights) = (0u64, 0u64, 0u64);
    for _ in 0..100 {
        let from_a = a
            .sync()
            .generate_sync_message(&mut state_a)
            .map(|m| m.encode());
        let from_b = b
            .sync()
            .generate_sync_message(&mut state_b)
            .map(|m| m.encode());
        if from_a.is_none() && from_b.is_none() {
            break;
        }
        flights += 1;
        if let Some(encoded) = from_a {
            (messages, bytes) = (messages + 1, bytes + encoded.len() as u64);
            let message = sync::Message::decode(&encoded).expect("own encoding decodes");
            b.sync()
                .receive_sync_message(&mut state_b, message)
                .expect("valid sync message");
        }
        if let Some(encoded) = from_b {
            (messages, bytes) = (messages + 1, bytes + encoded.len() as u64);
            let message = sync::Message::decode(&encoded).expect("own encoding decodes");
            a.sync()
                .receive_sync_message(&mut state_a, message)
                .expect("valid sync message");
        }
    }
    let reconcile_s = started.elapsed().as_secs_f64();
    let converged = a.length(ROOT) == b.length(ROOT)
        && a.length(ROOT) == sides.common.len() + sides.only_a.len() + sides.only_b.len();
    HealResult {
        strategy: "automerge".into(),
        messages,
        bytes,
        bytes_per_difference: 0.0,
        flights,
        convergence_s: modelled_time(wan, flights, bytes),
        replica_bytes: a.save().len() as u64,
        converged,
        setup_s,
        reconcile_s,
    }
}

/// yrs: the entries go into a map under their hashes, one transaction per
/// `group` entries (a node's group commit); the replicas start from a common
/// update, then exchange state vectors and answer each with the missing
/// update (two messages each way).
#[cfg(feature = "baselines")]
fn yrs_updates(sides: &Sides<'_>, wan: Link, group: usize) -> HealResult {
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{Doc, Map, ReadTxn, StateVector, Transact, Update};

    let write = |doc: &Doc, votes: &[Vote]| {
        let map = doc.get_or_insert_map("votes");
        for chunk in votes.chunks(group) {
            let mut txn = doc.transact_mut();
            for vote in chunk {
                map.insert(&mut txn, vote.hash().to_string(), vote.encoded().to_vec());
            }
        }
    };
    let apply = |doc: &Doc, update: &[u8]| {
        let update = Update::decode_v1(update).expect("own update decodes");
        doc.transact_mut()
            .apply_update(update)
            .expect("update applies");
    };
    let started = Instant::now();
    let base = Doc::with_client_id(1);
    write(&base, sides.common);
    let snapshot = base
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    drop(base);
    let (a, b) = (Doc::with_client_id(2), Doc::with_client_id(3));
    apply(&a, &snapshot);
    apply(&b, &snapshot);
    write(&a, sides.only_a);
    write(&b, sides.only_b);
    let setup_s = started.elapsed().as_secs_f64();

    // Flight 1: state vectors cross. Flight 2: the missing updates cross.
    let started = Instant::now();
    let sv_a = a.transact().state_vector().encode_v1();
    let sv_b = b.transact().state_vector().encode_v1();
    let decode_sv = |bytes: &[u8]| StateVector::decode_v1(bytes).expect("own state vector");
    let for_a = b.transact().encode_diff_v1(&decode_sv(&sv_a));
    let for_b = a.transact().encode_diff_v1(&decode_sv(&sv_b));
    apply(&a, &for_a);
    apply(&b, &for_b);
    let reconcile_s = started.elapsed().as_secs_f64();
    let bytes = (sv_a.len() + sv_b.len() + for_a.len() + for_b.len()) as u64;

    let len = |doc: &Doc| doc.get_or_insert_map("votes").len(&doc.transact());
    let total = (sides.common.len() + sides.only_a.len() + sides.only_b.len()) as u32;
    let converged = len(&a) == total && len(&b) == total;
    let replica_bytes = a
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
        .len();
    HealResult {
        strategy: "yrs".into(),
        messages: 4,
        bytes,
        bytes_per_difference: 0.0,
        flights: 2,
        convergence_s: modelled_time(wan, 2, bytes),
        replica_bytes: replica_bytes as u64,
        converged,
        setup_s,
        reconcile_s,
    }
}

#[cfg(all(test, feature = "baselines"))]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ScalarValue, ROOT};

    use super::*;

    #[test]
    fn built_group_changes_are_the_changes_local_transactions_make() {
        let poll = make_polls(1, 3).remove(0);
        let votes: Vec<Vote> = (0..7).map(|i| make_vote(&poll, i, i % 3, 0)).collect();
        let mut doc = AutoCommit::new().with_actor(ActorId::from(vec![1u8; 16]));
        for chunk in votes.chunks(3) {
            for vote in chunk {
                let value = ScalarValue::Bytes(vote.encoded().to_vec());
                doc.put(ROOT, vote.hash().to_string(), value).unwrap();
            }
            doc.commit();
        }

        let built = group_changes(1, &votes, 3, Vec::new(), 1);

        let made: Vec<_> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        let built: Vec<_> = built.iter().map(|c| c.hash()).collect();
        assert_eq!(made.len(), 3);
        assert_eq!(made, built);
    }
}
