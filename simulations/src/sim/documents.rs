//! The automerge and yrs strategies inside the simulation. Every node keeps
//! one baseline document per poll ([`DocReplica`]) and writes the client
//! entries it accepts into it as group commits: one automerge change (one
//! yrs transaction) holding every entry accepted since the last one, made at
//! each push flush and before each session step. Pushes carry the group
//! commits since the last flush; sessions run automerge's sync protocol or
//! the yrs state-vector exchange over the documents. The node's
//! `PollState` replica mirrors what its document holds (entries become
//! visible there when the document shows them), so the checks, the
//! convergence times and the divergence samples read the same structure for
//! every strategy.

// Without the `baselines` feature documents cannot exist, so what follows a
// call on one is unreachable there.
#![cfg_attr(
    not(feature = "baselines"),
    allow(unreachable_code, unused_mut, unused_variables)
)]

use super::*;
use crate::docs::Stepped as DocStep;
use crate::sim::sessions::Stepped;

impl Sim {
    /// `node` accepted a client entry: it goes into the next group commit.
    pub(super) fn doc_accepted(&mut self, node: usize, vote: u32) {
        let rec = &self.votes[vote as usize];
        if let Some(doc) = self.nodes[node].docs.get_mut(rec.poll as usize) {
            doc.unwritten.push(rec.vote.clone());
        }
    }

    /// Writes the entries `node` accepted and has not written yet into its
    /// document of `poll` as one group commit; with `push`, the commit waits
    /// in the outbox for the next push flush.
    pub(super) fn doc_commit(&mut self, node: usize, poll: usize, push: bool) {
        let now_ms = self.now / 1000;
        let pushing = push && self.scenario.sync.push_interval_ms > 0.0;
        let Some(doc) = self.nodes[node].docs.get_mut(poll) else {
            return;
        };
        if doc.unwritten.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut doc.unwritten);
        let payload = doc.doc.commit(&entries, now_ms);
        if pushing {
            doc.outbox.push(payload);
        }
        self.counters.group_commits += 1;
    }

    /// The push flush of a baseline strategy: commit, then send every group
    /// commit since the last flush to every peer, as one message per poll.
    pub(super) fn doc_push_flush(&mut self, node: usize) {
        for poll in 0..self.polls.len() {
            self.doc_commit(node, poll, true);
            let doc = &mut self.nodes[node].docs[poll];
            let payloads = std::mem::take(&mut doc.outbox);
            if payloads.is_empty() {
                continue;
            }
            let bytes = Rc::new(doc.doc.merge(payloads));
            for peer in 0..self.nodes.len() {
                if peer != node {
                    self.counters.push_messages += 1;
                    self.counters.push_bytes += bytes.len() as u64;
                    let wire = Wire::DocPush {
                        poll: poll as u16,
                        bytes: bytes.clone(),
                    };
                    self.transmit(node, peer, wire);
                }
            }
        }
    }

    /// A peer's group commits arrived.
    pub(super) fn on_doc_push(&mut self, node: usize, from: usize, poll: usize, bytes: &[u8]) {
        match self.nodes[node].docs[poll].doc.apply(bytes) {
            Ok(visible) => {
                let votes = self.votes_of(visible);
                self.learn(node, from, votes, false);
            }
            Err(_) => self.counters.decode_errors += 1,
        }
    }

    /// The initiator's side of a new session and its first messages.
    pub(super) fn open_doc_session(
        &mut self,
        initiator: usize,
        responder: usize,
        poll: usize,
    ) -> (DocSession, Vec<Vec<u8>>) {
        self.doc_commit(initiator, poll, true);
        let doc = &mut self.nodes[initiator].docs[poll];
        let mut session = doc.open_session(responder);
        let first = doc.doc.first_message(&mut session);
        (session, first.into_iter().collect())
    }

    /// One session message of a baseline strategy.
    pub(super) fn step_doc(
        &mut self,
        id: u64,
        to_initiator: bool,
        bytes: &[u8],
    ) -> Option<Stepped> {
        let session = self.sessions.get(&id)?;
        let (node, peer, poll) = if to_initiator {
            (session.initiator, session.responder, session.poll)
        } else {
            (session.responder, session.initiator, session.poll)
        };
        // The session carries what the node accepted until now.
        self.doc_commit(node, poll, true);

        let session = self.sessions.get_mut(&id)?;
        let Machine::Doc {
            initiator,
            responder,
        } = &mut session.machine
        else {
            return None;
        };
        let doc = &mut self.nodes[node].docs[poll];
        let state = if to_initiator {
            initiator
        } else {
            responder.get_or_insert_with(|| doc.open_session(peer))
        };
        let DocStep {
            visible,
            reply,
            done,
        } = doc.doc.step(state, bytes).ok()?;
        let finished = reply.is_none();
        if finished {
            // Both sides keep what the protocol lets them carry to the next
            // session with this peer (automerge: the shared heads).
            let (initiator_node, responder_node) = (session.initiator, session.responder);
            if let Machine::Doc {
                initiator,
                responder: Some(responder),
            } = &session.machine
            {
                let (a, b) = (initiator.saved(), responder.saved());
                self.nodes[initiator_node].docs[poll].keep_session(responder_node, a);
                self.nodes[responder_node].docs[poll].keep_session(initiator_node, b);
            }
        }
        Some(Stepped {
            received: self.votes_of(visible),
            send: reply.into_iter().collect(),
            done,
            finished,
        })
    }

    /// The simulated votes with these hashes, in hash order.
    fn votes_of(&self, mut hashes: Vec<EntryHash>) -> Vec<Vote> {
        // Documents report new keys in their own (hash-map) order: sort so
        // the trace does not depend on it.
        hashes.sort_unstable();
        hashes.dedup();
        hashes
            .iter()
            .filter_map(|h| self.index.get(h))
            .map(|&i| self.votes[i as usize].vote.clone())
            .collect()
    }

    /// `node` crashed: its documents are gone (a fresh one, under a new
    /// actor or client id, takes their place) and its peers forget the sync
    /// state they kept for it.
    pub(super) fn doc_crash(&mut self, node: usize) {
        if self.nodes[node].docs.is_empty() {
            return;
        }
        let strategy = self.scenario.sync.strategy;
        let incarnation = self.nodes[node].incarnation;
        self.nodes[node].docs =
            DocReplica::for_polls(strategy, self.polls.len(), node, incarnation);
        for other in &mut self.nodes {
            for doc in &mut other.docs {
                doc.forget_peer(node);
            }
        }
    }

    /// `node` restarted: it writes its durable entries into its fresh
    /// documents as one group commit (not pushed: its peers sync with it).
    pub(super) fn doc_restart(&mut self, node: usize, durable: &[u32]) {
        if self.nodes[node].docs.is_empty() {
            return;
        }
        for &vote in durable {
            self.doc_accepted(node, vote);
        }
        for poll in 0..self.polls.len() {
            self.doc_commit(node, poll, false);
        }
    }

    /// At the end: every node writes what it has not written yet, and its
    /// document must hold exactly what its mirror holds.
    pub(super) fn doc_final_check(&mut self) {
        for node in 0..self.nodes.len() {
            for poll in 0..self.nodes[node].docs.len() {
                self.doc_commit(node, poll, false);
                let n = &mut self.nodes[node];
                let in_doc = n.docs[poll].doc.len();
                let mirrored = n.replicas[poll].state().len() as u64;
                if n.up && in_doc != mirrored {
                    self.check.fail(Violation::DocumentMismatch {
                        node,
                        poll,
                        in_doc,
                        mirrored,
                    });
                }
            }
        }
    }
}
