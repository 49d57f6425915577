//! Who holds what: per-vote and per-node bookkeeping, pushes to peers,
//! and the node-to-node network.

use super::*;

impl Sim {
    /// Bookkeeping after `node` gained `vote` in memory.
    pub(super) fn on_held(&mut self, node: usize, vote: u32) {
        let n = self.nodes.len() as u32;
        self.nodes[node].held += 1;
        let rec = &mut self.votes[vote as usize];
        rec.holders += 1;
        if rec.holders == n {
            rec.times.everywhere = Some(self.now);
            rec.times.first_everywhere.get_or_insert(self.now);
            self.everywhere(vote);
        }
        if self.nodes[node].held == self.accepted {
            self.complete += 1;
            self.note_complete();
        }
    }

    /// A fault cleared: from now on, measure how long until every vote
    /// accepted so far has been on every node.
    pub(super) fn cleared(&mut self) {
        let n = self.nodes.len() as u32;
        let which = self.clearings.len();
        self.clearings.push(self.now);
        let pending: BTreeSet<u32> = (0..self.votes.len() as u32)
            .filter(|&v| {
                let rec = &self.votes[v as usize];
                rec.accepted && rec.holders < n
            })
            .collect();
        if pending.is_empty() {
            self.converged_after.push(Some(self.now));
        } else {
            self.converged_after.push(None);
            self.open_clearings.push((which, pending));
        }
    }

    pub(super) fn everywhere(&mut self, vote: u32) {
        if self.open_clearings.is_empty() {
            return;
        }
        let now = self.now;
        for (which, pending) in &mut self.open_clearings {
            if pending.remove(&vote) && pending.is_empty() {
                self.converged_after[*which] = Some(now);
            }
        }
        self.open_clearings
            .retain(|(_, pending)| !pending.is_empty());
    }

    pub(super) fn recount_complete(&mut self) {
        let accepted = self.accepted;
        self.complete = self
            .nodes
            .iter()
            .filter(|n| n.up && n.held == accepted)
            .count();
        self.note_complete();
    }

    pub(super) fn note_complete(&mut self) {
        if self.complete == self.nodes.len() {
            self.complete_since.get_or_insert(self.now);
        } else {
            self.complete_since = None;
        }
    }

    pub(super) fn learn(&mut self, node: usize, from: usize, entries: Vec<Vote>, via_sync: bool) {
        for vote in entries {
            let Some(&index) = self.index.get(&vote.hash()) else {
                continue;
            };
            let poll = self.votes[index as usize].poll as usize;
            match self.nodes[node].replicas[poll].insert(vote) {
                Inserted::New => {
                    self.record(
                        Kind::Learned,
                        node as u32,
                        from as u32,
                        index,
                        via_sync as u64,
                    );
                    self.on_held(node, index);
                }
                Inserted::Duplicate => self.counters.redundant_entries += 1,
            }
        }
    }

    pub(super) fn queue_push(&mut self, node: usize, vote: u32) {
        let interval = self.scenario.sync.push_interval_ms;
        if interval <= 0.0 {
            return;
        }
        let n = &mut self.nodes[node];
        n.push_buf.push(vote);
        if !n.push_scheduled {
            n.push_scheduled = true;
            self.queue.push(
                self.now + millis(interval),
                Event::PushFlush { node: node as u16 },
            );
        }
    }

    pub(super) fn on_push_flush(&mut self, node: usize) {
        let buf = std::mem::take(&mut self.nodes[node].push_buf);
        self.nodes[node].push_scheduled = false;
        if !self.nodes[node].up {
            return;
        }
        if self.scenario.sync.strategy.is_baseline() {
            return self.doc_push_flush(node);
        }
        for poll in 0..self.polls.len() {
            let entries: Vec<Vote> = buf
                .iter()
                .filter(|&&v| self.votes[v as usize].poll as usize == poll)
                .map(|&v| self.votes[v as usize].vote.clone())
                .collect();
            if entries.is_empty() {
                continue;
            }
            for message in entries_messages(self.polls[poll].id, entries, false) {
                let bytes = Rc::new(message.encode());
                for peer in 0..self.nodes.len() {
                    if peer != node {
                        self.counters.push_messages += 1;
                        self.counters.push_bytes += bytes.len() as u64;
                        self.transmit(node, peer, Wire::Push(bytes.clone()));
                    }
                }
            }
        }
    }

    pub(super) fn transmit(&mut self, from: usize, to: usize, wire: Wire) {
        let len = wire.len();
        self.nodes[from].bytes_sent += len as u64;
        self.nodes[from].messages_sent += 1;
        self.counters.messages += 1;
        self.counters.bytes += len as u64;
        self.record(Kind::Send, from as u32, to as u32, NONE, len as u64);
        match self.net.send(&mut self.net_rng, self.now, from, to, len) {
            Sent::Arrives(at, epoch) => self.queue.push(
                at,
                Event::Deliver {
                    from: from as u16,
                    to: to as u16,
                    epoch,
                    wire,
                },
            ),
            Sent::Held => self.held.push((from, to, wire)),
            Sent::Dropped(reason) => self.dropped(from, to, reason),
        }
    }

    pub(super) fn dropped(&mut self, from: usize, to: usize, reason: Dropped) {
        self.counters.dropped += 1;
        self.record(Kind::Drop, from as u32, to as u32, NONE, reason as u64);
    }

    pub(super) fn on_deliver(&mut self, from: usize, to: usize, epoch: u32, wire: Wire) {
        if let Err(reason) = self.net.admits(from, to, epoch) {
            return self.dropped(from, to, reason);
        }
        if !self.nodes[to].up {
            return self.dropped(from, to, Dropped::Down);
        }
        match wire {
            Wire::Push(bytes) => {
                let Ok(Message::Entries { entries, .. }) = Message::decode(&bytes) else {
                    self.counters.decode_errors += 1;
                    return;
                };
                self.learn(to, from, entries, false);
            }
            Wire::DocPush { poll, bytes } => self.on_doc_push(to, from, poll as usize, &bytes),
            Wire::Sync {
                session,
                to_initiator,
                bytes,
            } => self.on_sync_message(session, to_initiator, &bytes),
        }
    }
}
