//! The fault schedule: partitions, holds, cuts, crashes, restarts,
//! in-flight drops, offline clients.

use super::*;

impl Sim {
    pub(super) fn on_fault(&mut self, action: Action) {
        match action {
            Action::Partition(groups) => {
                self.net.partition(&groups);
                self.record(Kind::Partition, NONE, NONE, NONE, groups.len() as u64);
            }
            Action::Heal => {
                self.net.heal();
                self.record(Kind::Heal, NONE, NONE, NONE, 0);
                self.cleared();
                self.abandon_sessions(None);
                for node in 0..self.nodes.len() {
                    self.sync_with_all(node);
                }
            }
            Action::Hold(a, b) => {
                self.net.set_held(a, b, true);
                self.record(Kind::Hold, a as u32, b as u32, NONE, 0);
            }
            Action::Release(a, b) => self.release(a, b),
            Action::Cut(a, b) => {
                self.net.set_cut(a, b, true);
                self.record(Kind::Cut, a as u32, b as u32, NONE, 0);
            }
            Action::Restore(a, b) => {
                self.net.set_cut(a, b, false);
                self.record(Kind::Restore, a as u32, b as u32, NONE, 0);
                self.cleared();
                self.start_sessions(a, b);
            }
            Action::Crash(node) => self.crash(node),
            Action::Restart(node) => self.restart(node),
            Action::DropInFlight => {
                self.net.drop_in_flight();
                self.record(Kind::DropInFlight, NONE, NONE, NONE, 0);
            }
            Action::ClientsOffline => {
                self.clients_offline = true;
                self.record(Kind::ClientsOffline, NONE, NONE, NONE, 0);
            }
            Action::ClientsOnline => {
                self.clients_offline = false;
                self.record(Kind::ClientsOnline, NONE, NONE, NONE, 0);
                self.cleared();
            }
        }
    }

    pub(super) fn release(&mut self, a: usize, b: usize) {
        self.net.set_held(a, b, false);
        self.record(Kind::Release, a as u32, b as u32, NONE, 0);
        self.cleared();
        let held = std::mem::take(&mut self.held);
        for (from, to, wire) in held {
            if (from, to) != (a, b) && (from, to) != (b, a) {
                self.held.push((from, to, wire));
                continue;
            }
            let at = self
                .net
                .schedule(&mut self.net_rng, self.now, from, to, wire.len());
            let epoch = self.net.epoch();
            self.queue.push(
                at,
                Event::Deliver {
                    from: from as u16,
                    to: to as u16,
                    epoch,
                    wire,
                },
            );
        }
    }

    pub(super) fn crash(&mut self, node: usize) {
        self.record(Kind::Crash, node as u32, NONE, NONE, self.nodes[node].held);
        let fresh: Vec<Replica> = self.polls.iter().cloned().map(Replica::new).collect();
        let lost = std::mem::replace(&mut self.nodes[node].replicas, fresh);
        for replica in &lost {
            for vote in replica.state().entries() {
                if let Some(&index) = self.index.get(&vote.hash()) {
                    self.votes[index as usize].holders -= 1;
                }
            }
        }
        let n = &mut self.nodes[node];
        n.up = false;
        n.incarnation += 1;
        n.held = 0;
        n.push_buf.clear();
        self.doc_crash(node);
        self.recount_complete();
    }

    pub(super) fn restart(&mut self, node: usize) {
        if self.nodes[node].up {
            return;
        }
        self.nodes[node].up = true;
        let durable: Vec<u32> = self.nodes[node].durable.iter().copied().collect();
        for &index in &durable {
            let rec = &self.votes[index as usize];
            let vote = rec.vote.clone();
            let poll = rec.poll as usize;
            if self.nodes[node].replicas[poll].insert(vote) == Inserted::New {
                self.nodes[node].held += 1;
                let rec = &mut self.votes[index as usize];
                rec.holders += 1;
                if rec.holders == self.nodes.len() as u32 {
                    rec.times.everywhere = Some(self.now);
                    rec.times.first_everywhere.get_or_insert(self.now);
                    self.everywhere(index);
                }
            }
        }
        self.doc_restart(node, &durable);
        self.record(Kind::Restart, node as u32, NONE, NONE, durable.len() as u64);
        self.cleared();
        self.recount_complete();
        self.abandon_sessions(Some(node));
        self.sync_with_all(node);
    }
}
