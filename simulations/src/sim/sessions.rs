//! `crdt::sync` sessions (and the naive, automerge and yrs strategies)
//! between nodes: start, carry messages as bytes, finish, abandon.

use super::*;

/// What one session message did on the side that received it.
pub(super) struct Stepped {
    /// Entries it newly holds.
    pub(super) received: Vec<Vote>,
    /// Replies, encoded.
    pub(super) send: Vec<Vec<u8>>,
    /// This side has nothing more to do.
    pub(super) done: bool,
    /// The whole session is over (no reply will come back).
    pub(super) finished: bool,
}

fn encode_all(messages: Vec<Message>) -> Vec<Vec<u8>> {
    messages.iter().map(Message::encode).collect()
}

impl Sim {
    pub(super) fn on_sync_round(&mut self, node: usize) {
        let interval = self.scenario.sync.interval_s;
        let next = secs(interval * self.timer_rng.gen_range(0.9..1.1));
        self.queue
            .push(self.now + next, Event::SyncRound { node: node as u16 });
        if !self.nodes[node].up || self.nodes.len() < 2 {
            return;
        }
        let others = self.nodes.len() - 1;
        let fanout = match self.scenario.sync.fanout {
            0 => others,
            k => k.min(others),
        };
        for _ in 0..fanout {
            let cursor = self.nodes[node].next_peer % others;
            self.nodes[node].next_peer += 1;
            let peer = if cursor >= node { cursor + 1 } else { cursor };
            self.start_sessions(node, peer);
        }
    }

    /// After a heal or restart: `node` syncs with every peer at once.
    pub(super) fn sync_with_all(&mut self, node: usize) {
        if !self.nodes[node].up {
            return;
        }
        for peer in 0..self.nodes.len() {
            if peer != node {
                self.start_sessions(node, peer);
            }
        }
    }

    /// Abandons the sessions `node` takes part in (every session for
    /// `None`), as a reconnect after a fault would.
    pub(super) fn abandon_sessions(&mut self, node: Option<usize>) {
        let stalled: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| node.is_none_or(|n| s.initiator == n || s.responder == n))
            .map(|(&id, _)| id)
            .collect();
        for id in stalled {
            self.abort(id, Kind::SessionTimeout);
        }
    }

    // Without the `baselines` feature the automerge and yrs arm cannot run.
    #[cfg_attr(not(feature = "baselines"), allow(unreachable_code))]
    pub(super) fn start_sessions(&mut self, initiator: usize, responder: usize) {
        for poll in 0..self.polls.len() {
            let pair = (initiator.min(responder), initiator.max(responder), poll);
            if !self.active.insert(pair) {
                continue;
            }
            let id = self.next_session;
            self.next_session += 1;
            self.counters.sessions_started += 1;
            self.record(
                Kind::SessionStart,
                initiator as u32,
                responder as u32,
                NONE,
                id,
            );

            let poll_id = self.polls[poll].id;
            let (machine, first) = match self.scenario.sync.strategy {
                Strategy::Votemesh => {
                    let set = &self.nodes[initiator].replicas[poll];
                    let (init, out) =
                        Initiator::start(poll_id, self.sync_config, set, self.now / 1000);
                    let machine = Machine::Votemesh {
                        initiator: Box::new(init),
                        responder: None,
                    };
                    (machine, encode_all(out.send))
                }
                Strategy::Naive => {
                    let all = all_entries(&self.nodes[initiator].replicas[poll]);
                    let first = entries_messages(poll_id, all, true);
                    (Machine::Naive, encode_all(first))
                }
                Strategy::Automerge | Strategy::Yrs => {
                    let (session, first) = self.open_doc_session(initiator, responder, poll);
                    let machine = Machine::Doc {
                        initiator: session,
                        responder: None,
                    };
                    (machine, first)
                }
            };
            let incarnations = (
                self.nodes[initiator].incarnation,
                self.nodes[responder].incarnation,
            );
            self.sessions.insert(
                id,
                Session {
                    poll,
                    initiator,
                    responder,
                    incarnations,
                    machine,
                    last_activity: self.now,
                    done: (false, false),
                },
            );
            self.send_sync(id, false, first);
            let timeout = millis(self.scenario.sync.session_timeout_ms);
            self.queue
                .push(self.now + timeout, Event::SessionTick { session: id });
        }
    }

    pub(super) fn send_sync(&mut self, id: u64, to_initiator: bool, messages: Vec<Vec<u8>>) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let (from, to) = if to_initiator {
            (session.responder, session.initiator)
        } else {
            (session.initiator, session.responder)
        };
        for bytes in messages {
            self.counters.sync_messages += 1;
            self.counters.sync_bytes += bytes.len() as u64;
            let wire = Wire::Sync {
                session: id,
                to_initiator,
                bytes,
            };
            self.transmit(from, to, wire);
        }
    }

    pub(super) fn on_sync_message(&mut self, id: u64, to_initiator: bool, bytes: &[u8]) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let node = if to_initiator {
            session.initiator
        } else {
            session.responder
        };
        let peer = if to_initiator {
            session.responder
        } else {
            session.initiator
        };
        let expected = if to_initiator {
            session.incarnations.0
        } else {
            session.incarnations.1
        };
        // A node that restarted lost the session with its memory.
        if self.nodes[node].incarnation != expected {
            return self.abort(id, Kind::SessionTimeout);
        }
        let now_ms = self.now / 1000;
        let strategy = self.scenario.sync.strategy;
        let step = if strategy.is_baseline() {
            self.step_doc(id, to_initiator, bytes)
        } else {
            let Ok(message) = Message::decode(bytes) else {
                self.counters.decode_errors += 1;
                return self.abort(id, Kind::SessionTimeout);
            };
            let step = match strategy {
                Strategy::Naive => self.step_naive(id, to_initiator, message),
                _ => self.step_votemesh(id, to_initiator, message, now_ms),
            };
            step.map(|(received, send, done)| Stepped {
                received,
                send: encode_all(send),
                done,
                finished: false,
            })
        };
        let Some(step) = step else {
            self.counters.sync_errors += 1;
            return self.abort(id, Kind::SessionTimeout);
        };
        self.learn(node, peer, step.received, true);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.last_activity = self.now;
            if step.finished {
                session.done = (true, true);
            } else if step.done {
                if to_initiator {
                    session.done.0 = true;
                } else {
                    session.done.1 = true;
                }
            }
        }
        self.send_sync(id, !to_initiator, step.send);
        self.maybe_finish(id);
    }

    /// One step of the real `crdt::sync` machines.
    pub(super) fn step_votemesh(
        &mut self,
        id: u64,
        to_initiator: bool,
        message: Message,
        now_ms: u64,
    ) -> Option<(Vec<Vote>, Vec<Message>, bool)> {
        let session = self.sessions.get_mut(&id)?;
        let Machine::Votemesh {
            initiator,
            responder,
        } = &mut session.machine
        else {
            return None;
        };
        let config = self.sync_config;
        let poll_id = self.polls[session.poll].id;
        let output = if to_initiator {
            let set = &self.nodes[session.initiator].replicas[session.poll];
            initiator.handle(message, set, now_ms)
        } else {
            let set = &self.nodes[session.responder].replicas[session.poll];
            responder
                .get_or_insert_with(|| Box::new(Responder::new(poll_id, config, now_ms)))
                .handle(message, set, now_ms)
        };
        let output = output.ok()?;
        let falls_back = matches!(output.send.first(), Some(Message::Hashes { .. }));
        if to_initiator && falls_back {
            // An omniscient look: were the sets already equal when the
            // initiator gave up on symbols (entries pushed mid-session)?
            let a = &self.nodes[session.initiator].replicas[session.poll];
            let b = &self.nodes[session.responder].replicas[session.poll];
            if a.digest() == b.digest() {
                self.counters.fallback_sets_equal += 1;
            }
        }
        if let (true, Some(outcome)) = (to_initiator, &output.done) {
            self.counters.count_path(outcome.path);
        }
        let done = output.done.is_some();
        Some((output.received, output.send, done))
    }

    /// Naive full-state exchange: the initiator sends everything; once the
    /// responder has it all, it sends everything back.
    pub(super) fn step_naive(
        &mut self,
        id: u64,
        to_initiator: bool,
        message: Message,
    ) -> Option<(Vec<Vote>, Vec<Message>, bool)> {
        let Message::Entries { entries, last, .. } = message else {
            return None;
        };
        let session = self.sessions.get(&id)?;
        if to_initiator {
            if last {
                self.counters.count_path(Path::Bulk);
            }
            return Some((entries, Vec::new(), last));
        }
        let mut reply = Vec::new();
        if last {
            let poll_id = self.polls[session.poll].id;
            let set = &self.nodes[session.responder].replicas[session.poll];
            // The reply is built before this batch is stored, as a real
            // responder streaming its own set would.
            reply = entries_messages(poll_id, all_entries(set), true);
        }
        Some((entries, reply, last))
    }

    pub(super) fn maybe_finish(&mut self, id: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        if session.done == (true, true) {
            self.counters.sessions_done += 1;
            self.end_session(id, Kind::SessionDone);
        }
    }

    pub(super) fn abort(&mut self, id: u64, kind: Kind) {
        self.counters.sessions_abandoned += 1;
        self.end_session(id, kind);
    }

    pub(super) fn end_session(&mut self, id: u64, kind: Kind) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        let (a, b) = (session.initiator, session.responder);
        self.active.remove(&(a.min(b), a.max(b), session.poll));
        self.record(kind, a as u32, b as u32, NONE, id);
    }

    pub(super) fn on_session_tick(&mut self, id: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let timeout = millis(self.scenario.sync.session_timeout_ms);
        let deadline = session.last_activity + timeout;
        if self.now >= deadline {
            return self.abort(id, Kind::SessionTimeout);
        }
        self.queue
            .push(deadline, Event::SessionTick { session: id });
    }
}
