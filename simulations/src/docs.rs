//! Baseline documents for the `automerge` and `yrs` strategies of the event
//! simulation: a node's copy of a poll as an automerge document (entries in
//! the root map under their hashes) or a yrs document (entries in a map
//! under their hashes), with the messages each library offers to replicate
//! it.
//!
//! - **Group commits.** A node writes the entries it accepted since its last
//!   write as one automerge change, one yrs transaction ([`Doc::commit`]),
//!   and pushes that change (the change's bytes) or that transaction's update
//!   to its peers.
//! - **Sessions.** automerge: the library's sync protocol
//!   (`generate_sync_message` / `receive_sync_message`) until one side has
//!   nothing to say; the sync state's shared heads are kept per peer between
//!   sessions, as automerge recommends for reconnections, and forgotten when
//!   either side crashes. yrs: the y-protocols exchange: the initiator sends
//!   its state vector, the responder answers with the update the initiator
//!   lacks and its own state vector, the initiator answers with the update
//!   the responder lacks.
//! - **Visibility.** What a document newly shows after a push or a message
//!   (automerge's incremental diff, a yrs map observer) is reported as entry
//!   hashes so the simulator can mirror it.
//!
//! Without the `baselines` feature [`Doc`] and [`DocSession`] have no
//! variants: no node can hold one, and the strategies are refused earlier.

use std::collections::BTreeMap;

use crdt::{EntryHash, Vote};

use crate::scenario::Strategy;

/// What one session message did to a document.
pub(crate) struct Stepped {
    /// Entries the document newly shows.
    pub(crate) visible: Vec<EntryHash>,
    /// The answer, if this side has one (none: the session is over).
    pub(crate) reply: Option<Vec<u8>>,
    /// This side expects nothing more.
    pub(crate) done: bool,
}

/// A node's document of one poll, the entries waiting for its next group
/// commit, the group commits waiting for the next push, and the sync state
/// it keeps per peer.
#[derive(Debug)]
pub(crate) struct DocReplica {
    pub(crate) doc: Doc,
    /// Accepted client entries not yet written.
    pub(crate) unwritten: Vec<Vote>,
    /// Group commits since the last push flush.
    pub(crate) outbox: Vec<Vec<u8>>,
    /// automerge: the encoded sync state per peer (its shared heads).
    peers: BTreeMap<usize, Vec<u8>>,
}

impl DocReplica {
    /// One document per poll for `node` in its `incarnation` (empty for
    /// votemesh and naive). Each incarnation writes under its own actor or
    /// client id: a restarted node must not reuse a yrs client id whose
    /// clock its peers have already seen.
    pub(crate) fn for_polls(
        strategy: Strategy,
        polls: usize,
        node: usize,
        incarnation: u32,
    ) -> Vec<DocReplica> {
        let actor = ((node as u64) << 24 | u64::from(incarnation & 0xff_ffff)) + 1;
        (0..polls)
            .filter_map(|_| Doc::new(strategy, actor))
            .map(|doc| DocReplica {
                doc,
                unwritten: Vec::new(),
                outbox: Vec::new(),
                peers: BTreeMap::new(),
            })
            .collect()
    }

    /// A session with `peer`, from the state kept for it.
    pub(crate) fn open_session(&mut self, peer: usize) -> DocSession {
        self.doc
            .open_session(self.peers.get(&peer).map(Vec::as_slice))
    }

    /// Keeps what a finished session with `peer` lets the next one start from.
    pub(crate) fn keep_session(&mut self, peer: usize, saved: Option<Vec<u8>>) {
        if let Some(saved) = saved {
            self.peers.insert(peer, saved);
        }
    }

    /// `peer` lost its memory: start from scratch with it.
    pub(crate) fn forget_peer(&mut self, peer: usize) {
        self.peers.remove(&peer);
    }
}

/// One poll's baseline document.
#[derive(Debug)]
pub(crate) enum Doc {
    /// automerge.
    #[cfg(feature = "baselines")]
    Automerge(Box<am::AmDoc>),
    /// yrs.
    #[cfg(feature = "baselines")]
    Yrs(Box<y::YDoc>),
}

/// One side of a session between two documents.
#[derive(Debug)]
pub(crate) enum DocSession {
    /// automerge's sync state for this connection.
    #[cfg(feature = "baselines")]
    Automerge(Box<automerge::sync::State>),
    /// Where the yrs exchange stands.
    #[cfg(feature = "baselines")]
    Yrs(y::Phase),
}

impl DocSession {
    /// What the next session with the same peer may start from.
    pub(crate) fn saved(&self) -> Option<Vec<u8>> {
        match *self {
            #[cfg(feature = "baselines")]
            DocSession::Automerge(ref state) => Some(state.encode()),
            #[cfg(feature = "baselines")]
            DocSession::Yrs(_) => None,
        }
    }
}

#[cfg(not(feature = "baselines"))]
impl Doc {
    fn new(_strategy: Strategy, _actor: u64) -> Option<Doc> {
        None
    }

    fn open_session(&mut self, _saved: Option<&[u8]>) -> DocSession {
        match *self {}
    }

    pub(crate) fn commit(&mut self, _entries: &[Vote], _now_ms: u64) -> Vec<u8> {
        match *self {}
    }

    pub(crate) fn merge(&self, _payloads: Vec<Vec<u8>>) -> Vec<u8> {
        match *self {}
    }

    pub(crate) fn apply(&mut self, _bytes: &[u8]) -> Result<Vec<EntryHash>, String> {
        match *self {}
    }

    pub(crate) fn first_message(&mut self, _session: &mut DocSession) -> Option<Vec<u8>> {
        match *self {}
    }

    pub(crate) fn step(
        &mut self,
        _session: &mut DocSession,
        _bytes: &[u8],
    ) -> Result<Stepped, String> {
        match *self {}
    }

    pub(crate) fn len(&mut self) -> u64 {
        match *self {}
    }

    pub(crate) fn serialized_len(&mut self) -> u64 {
        match *self {}
    }
}

#[cfg(feature = "baselines")]
impl Doc {
    fn new(strategy: Strategy, actor: u64) -> Option<Doc> {
        match strategy {
            Strategy::Automerge => Some(Doc::Automerge(Box::new(am::AmDoc::new(actor)))),
            Strategy::Yrs => Some(Doc::Yrs(Box::new(y::YDoc::new(actor)))),
            Strategy::Votemesh | Strategy::Naive => None,
        }
    }

    fn open_session(&mut self, saved: Option<&[u8]>) -> DocSession {
        match self {
            Doc::Automerge(_) => DocSession::Automerge(Box::new(am::session(saved))),
            Doc::Yrs(_) => DocSession::Yrs(y::Phase::Start),
        }
    }

    /// Writes `entries` as one change or transaction; returns what a push
    /// of it carries.
    pub(crate) fn commit(&mut self, entries: &[Vote], now_ms: u64) -> Vec<u8> {
        match self {
            Doc::Automerge(d) => d.commit(entries, now_ms),
            Doc::Yrs(d) => d.commit(entries),
        }
    }

    /// Group commits as one push message.
    pub(crate) fn merge(&self, payloads: Vec<Vec<u8>>) -> Vec<u8> {
        match self {
            // automerge loads concatenated changes.
            Doc::Automerge(_) => payloads.concat(),
            Doc::Yrs(_) if payloads.len() == 1 => payloads.into_iter().flatten().collect(),
            Doc::Yrs(_) => yrs::merge_updates_v1(&payloads).expect("own updates merge"),
        }
    }

    /// Applies a peer's push.
    pub(crate) fn apply(&mut self, bytes: &[u8]) -> Result<Vec<EntryHash>, String> {
        match self {
            Doc::Automerge(d) => d.apply(bytes),
            Doc::Yrs(d) => d.apply(bytes),
        }
    }

    /// The initiator's first session message.
    pub(crate) fn first_message(&mut self, session: &mut DocSession) -> Option<Vec<u8>> {
        match (self, session) {
            (Doc::Automerge(d), DocSession::Automerge(state)) => d.generate(state),
            (Doc::Yrs(d), DocSession::Yrs(phase)) => Some(d.first(phase)),
            _ => None,
        }
    }

    /// Handles a session message and answers it.
    pub(crate) fn step(
        &mut self,
        session: &mut DocSession,
        bytes: &[u8],
    ) -> Result<Stepped, String> {
        match (self, session) {
            (Doc::Automerge(d), DocSession::Automerge(state)) => d.step(state, bytes),
            (Doc::Yrs(d), DocSession::Yrs(phase)) => d.step(phase, bytes),
            _ => Err("session of another strategy".into()),
        }
    }

    /// Entries the document shows.
    pub(crate) fn len(&mut self) -> u64 {
        match self {
            Doc::Automerge(d) => d.len(),
            Doc::Yrs(d) => d.len(),
        }
    }

    /// The document serialized whole: automerge `save()` (compressed
    /// columns), yrs `encode_state_as_update_v1` against an empty state.
    pub(crate) fn serialized_len(&mut self) -> u64 {
        match self {
            Doc::Automerge(d) => d.serialized_len(),
            Doc::Yrs(d) => d.serialized_len(),
        }
    }
}

/// Parses a map key back into the entry hash it names.
#[cfg(feature = "baselines")]
fn key_hash(key: &str) -> Option<EntryHash> {
    key.parse().ok()
}

#[cfg(feature = "baselines")]
mod am {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{ActorId, AutoCommit, ObjId, PatchAction, ReadDoc, ScalarValue, ROOT};
    use crdt::{EntryHash, Vote};

    use super::{key_hash, Stepped};

    /// An automerge document whose incremental diff reports new keys.
    pub(crate) struct AmDoc {
        doc: AutoCommit,
    }

    impl std::fmt::Debug for AmDoc {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AmDoc").finish_non_exhaustive()
        }
    }

    /// A sync state for a new connection: the shared heads of the last
    /// finished session with this peer, nothing in flight.
    pub(super) fn session(saved: Option<&[u8]>) -> sync::State {
        saved
            .and_then(|bytes| sync::State::decode(bytes).ok())
            .unwrap_or_default()
    }

    impl AmDoc {
        pub(super) fn new(actor: u64) -> AmDoc {
            let actor = ActorId::from(actor.to_be_bytes().to_vec());
            AmDoc {
                doc: AutoCommit::new().with_actor(actor),
            }
        }

        /// Keys the document shows since the last call.
        fn visible(&mut self) -> Vec<EntryHash> {
            self.doc
                .diff_incremental()
                .into_iter()
                .filter(|p| p.obj == ObjId::Root)
                .filter_map(|p| match p.action {
                    PatchAction::PutMap { key, .. } => key_hash(&key),
                    _ => None,
                })
                .collect()
        }

        pub(super) fn commit(&mut self, entries: &[Vote], now_ms: u64) -> Vec<u8> {
            for vote in entries {
                let value = ScalarValue::Bytes(vote.encoded().to_vec());
                self.doc
                    .put(ROOT, vote.hash().to_string(), value)
                    .expect("put into the root map");
            }
            let options = CommitOptions::default().with_time(now_ms as i64);
            self.doc.commit_with(options);
            // Our own entries: the node already holds them.
            let _ = self.visible();
            let change = self
                .doc
                .get_last_local_change()
                .expect("a change was just made");
            change.raw_bytes().to_vec()
        }

        pub(super) fn apply(&mut self, bytes: &[u8]) -> Result<Vec<EntryHash>, String> {
            self.doc
                .load_incremental(bytes)
                .map_err(|e| e.to_string())?;
            Ok(self.visible())
        }

        pub(super) fn generate(&mut self, state: &mut sync::State) -> Option<Vec<u8>> {
            self.doc
                .sync()
                .generate_sync_message(state)
                .map(sync::Message::encode)
        }

        pub(super) fn step(
            &mut self,
            state: &mut sync::State,
            bytes: &[u8],
        ) -> Result<Stepped, String> {
            let message = sync::Message::decode(bytes).map_err(|e| e.to_string())?;
            self.doc
                .sync()
                .receive_sync_message(state, message)
                .map_err(|e| e.to_string())?;
            let visible = self.visible();
            let reply = self.generate(state);
            Ok(Stepped {
                visible,
                done: reply.is_none(),
                reply,
            })
        }

        pub(super) fn len(&mut self) -> u64 {
            self.doc.length(ROOT) as u64
        }

        pub(super) fn serialized_len(&mut self) -> u64 {
            self.doc.save().len() as u64
        }
    }
}

#[cfg(feature = "baselines")]
mod y {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use crdt::{EntryHash, Vote};
    use yrs::types::EntryChange;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{Doc, Map, MapRef, Observable, ReadTxn, StateVector, Transact, Update};

    use super::{key_hash, Stepped};

    const STATE_VECTOR: u8 = 0;
    const UPDATE: u8 = 1;
    const UPDATE_AND_STATE_VECTOR: u8 = 2;

    /// Where a yrs session stands on one side.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Phase {
        /// Nothing sent or received yet.
        Start,
        /// The initiator sent its state vector.
        SentStateVector,
    }

    /// A yrs document whose map observer collects new keys.
    pub(crate) struct YDoc {
        doc: Doc,
        map: MapRef,
        seen: Rc<RefCell<Vec<Arc<str>>>>,
    }

    impl std::fmt::Debug for YDoc {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("YDoc").finish_non_exhaustive()
        }
    }

    impl YDoc {
        pub(super) fn new(client: u64) -> YDoc {
            let doc = Doc::with_client_id(client);
            let map = doc.get_or_insert_map("votes");
            let seen: Rc<RefCell<Vec<Arc<str>>>> = Rc::default();
            let sink = seen.clone();
            map.observe("sim", move |txn, event| {
                let mut sink = sink.borrow_mut();
                for (key, change) in event.keys(txn) {
                    if matches!(change, EntryChange::Inserted(_)) {
                        sink.push(key.clone());
                    }
                }
            });
            YDoc { doc, map, seen }
        }

        fn visible(&mut self) -> Vec<EntryHash> {
            self.seen
                .borrow_mut()
                .drain(..)
                .filter_map(|key| key_hash(&key))
                .collect()
        }

        pub(super) fn commit(&mut self, entries: &[Vote]) -> Vec<u8> {
            let update = {
                let mut txn = self.doc.transact_mut();
                for vote in entries {
                    self.map
                        .insert(&mut txn, vote.hash().to_string(), vote.encoded().to_vec());
                }
                txn.encode_update_v1()
            };
            // Our own entries: the node already holds them.
            let _ = self.visible();
            update
        }

        pub(super) fn apply(&mut self, bytes: &[u8]) -> Result<Vec<EntryHash>, String> {
            let update = Update::decode_v1(bytes).map_err(|e| e.to_string())?;
            self.doc
                .transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())?;
            Ok(self.visible())
        }

        fn state_vector(&self) -> Vec<u8> {
            self.doc.transact().state_vector().encode_v1()
        }

        fn diff_for(&self, state_vector: &[u8]) -> Result<Vec<u8>, String> {
            let sv = StateVector::decode_v1(state_vector).map_err(|e| e.to_string())?;
            Ok(self.doc.transact().encode_diff_v1(&sv))
        }

        pub(super) fn first(&mut self, phase: &mut Phase) -> Vec<u8> {
            *phase = Phase::SentStateVector;
            let mut message = vec![STATE_VECTOR];
            message.extend(self.state_vector());
            message
        }

        pub(super) fn step(&mut self, phase: &mut Phase, bytes: &[u8]) -> Result<Stepped, String> {
            let (&tag, body) = bytes.split_first().ok_or("empty message")?;
            match (tag, *phase) {
                // Responder: answer with what the initiator lacks and ask
                // for what it lacks.
                (STATE_VECTOR, Phase::Start) => {
                    let update = self.diff_for(body)?;
                    let mut reply = vec![UPDATE_AND_STATE_VECTOR];
                    reply.extend((update.len() as u32).to_be_bytes());
                    reply.extend(update);
                    reply.extend(self.state_vector());
                    *phase = Phase::SentStateVector;
                    Ok(Stepped {
                        visible: Vec::new(),
                        reply: Some(reply),
                        done: false,
                    })
                }
                // Initiator: apply, answer with what the responder lacks.
                (UPDATE_AND_STATE_VECTOR, Phase::SentStateVector) => {
                    let (len, rest) = body.split_at_checked(4).ok_or("short message")?;
                    let len = u32::from_be_bytes(len.try_into().map_err(|_| "bad length")?);
                    let (update, state_vector) =
                        rest.split_at_checked(len as usize).ok_or("short message")?;
                    let visible = self.apply(update)?;
                    let mut reply = vec![UPDATE];
                    reply.extend(self.diff_for(state_vector)?);
                    Ok(Stepped {
                        visible,
                        reply: Some(reply),
                        done: true,
                    })
                }
                // Responder: apply; the exchange is over.
                (UPDATE, Phase::SentStateVector) => Ok(Stepped {
                    visible: self.apply(body)?,
                    reply: None,
                    done: true,
                }),
                _ => Err(format!("unexpected message {tag} in phase {phase:?}")),
            }
        }

        pub(super) fn len(&mut self) -> u64 {
            u64::from(self.map.len(&self.doc.transact()))
        }

        pub(super) fn serialized_len(&mut self) -> u64 {
            self.doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default())
                .len() as u64
        }
    }
}
