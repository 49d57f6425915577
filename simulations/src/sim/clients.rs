//! Clients: vote arrivals, casts, retries, the access path, and a node
//! taking a client's vote (store, make durable, ack).

use super::*;

impl Sim {
    /// Real votes per second at `t`, from the curve and the bursts.
    pub(super) fn real_rate(&self, t: Micros) -> f64 {
        let s = t as f64 / 1e6;
        let curve = &self.scenario.votes.rate;
        let mut rate = curve.last().map_or(0.0, |p| p[1]);
        if let Some(first) = curve.first() {
            if s <= first[0] {
                rate = first[1];
            }
        }
        for pair in curve.windows(2) {
            let ([t0, r0], [t1, r1]) = (pair[0], pair[1]);
            if s >= t0 && s < t1 {
                rate = r0 + (r1 - r0) * (s - t0) / (t1 - t0).max(1e-9);
            }
        }
        for burst in &self.scenario.votes.bursts {
            if s >= burst.at_s && s < burst.at_s + burst.duration_s {
                rate *= burst.multiplier;
            }
        }
        rate
    }

    pub(super) fn next_arrival_gap(&mut self) -> Micros {
        if let Some(count) = self.scenario.votes.count {
            return (self.stop_votes / count.max(1)).max(1);
        }
        let rate = self.real_rate(self.now) / self.scenario.votes.scale as f64;
        if rate <= 1e-9 {
            return 100_000;
        }
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        ((-u.ln() / rate) * 1e6).ceil().max(1.0) as Micros
    }

    pub(super) fn on_arrival(&mut self) {
        if self.now >= self.stop_votes {
            return;
        }
        let gap = self.next_arrival_gap();
        let counted_out = self
            .scenario
            .votes
            .count
            .is_some_and(|count| self.votes.len() as u64 >= count);
        let in_rate = self.scenario.votes.count.is_some() || self.real_rate(self.now) > 0.0;
        if !counted_out && in_rate {
            self.cast();
        }
        self.queue.push(self.now + gap, Event::Arrival);
    }

    pub(super) fn cast(&mut self) {
        let index = self.votes.len() as u32;
        let topology = &self.scenario.topology;
        let poll = self.rng.gen_range(0..topology.polls);
        let relay = self.rng.gen_range(0..topology.relays) as u32;
        let choice = self.rng.gen_range(0..topology.options);
        let clients = &self.scenario.clients;
        let offline_until =
            if clients.offline_share > 0.0 && self.rng.gen_bool(clients.offline_share.min(1.0)) {
                let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
                self.now + secs(-u.ln() * clients.offline_mean_s)
            } else {
                0
            };

        let vote = make_vote(&self.polls[poll], index, choice, self.now / 1000);
        self.index.insert(vote.hash(), index);
        self.votes.push(VoteRec {
            vote,
            poll: poll as u16,
            relay,
            offline_until,
            attempt: 0,
            holders: 0,
            accepted: false,
            times: VoteTimes {
                cast: self.now,
                ..VoteTimes::default()
            },
        });
        self.counters.cast += 1;
        self.record(Kind::Cast, relay, NONE, index, (offline_until > 0) as u64);
        self.on_attempt(index, 0);
    }

    pub(super) fn on_attempt(&mut self, vote: u32, attempt: u32) {
        let rec = &mut self.votes[vote as usize];
        if rec.times.acked.is_some() || attempt < rec.attempt {
            return;
        }
        rec.attempt = attempt;
        let offline = self.now < rec.offline_until || self.clients_offline;
        if offline {
            self.record(Kind::Offline, NONE, NONE, vote, attempt as u64);
            let delay = self.retry_delay(attempt);
            self.queue.push(
                self.now + delay,
                Event::Attempt {
                    vote,
                    attempt: attempt + 1,
                },
            );
            return;
        }

        // The relay forwards to a node of its region; each retry tries the next one.
        let topology = &self.scenario.topology;
        let relay = rec.relay as usize;
        let region = relay % topology.regions;
        let slot = (relay / topology.regions + attempt as usize) % topology.nodes_per_region;
        let node = region * topology.nodes_per_region + slot;
        if attempt > 0 {
            self.counters.retries += 1;
        }
        self.record(Kind::Attempt, node as u32, NONE, vote, attempt as u64);
        let timeout = millis(self.scenario.clients.ack_timeout_ms);
        self.queue
            .push(self.now + timeout, Event::AckTimeout { vote, attempt });
        if let Some(delay) = self.access_hop() {
            self.queue.push(
                self.now + delay,
                Event::Request {
                    vote,
                    node: node as u16,
                },
            );
        } else {
            self.record(Kind::AccessLost, node as u32, NONE, vote, 0);
        }
    }

    /// One trip over the access path (client, relay, node), or `None` if lost.
    pub(super) fn access_hop(&mut self) -> Option<Micros> {
        let access = self.scenario.links.access;
        if access.loss > 0.0 && self.rng.gen_bool(access.loss.min(1.0)) {
            return None;
        }
        let jitter = if access.jitter_ms > 0.0 {
            self.rng.gen_range(0.0..access.jitter_ms)
        } else {
            0.0
        };
        Some(millis(access.latency_ms + jitter))
    }

    pub(super) fn retry_delay(&mut self, attempt: u32) -> Micros {
        match self.scenario.clients.reconnect {
            Reconnect::Immediate { delay_ms } => millis(delay_ms),
            Reconnect::Backoff {
                base_ms,
                max_ms,
                jitter,
            } => {
                let ceiling = (base_ms * 2f64.powi(attempt.min(30) as i32)).min(max_ms);
                let factor = if jitter {
                    self.rng.gen_range(0.0..1.0)
                } else {
                    1.0
                };
                millis(ceiling * factor).max(1_000)
            }
        }
    }

    pub(super) fn on_ack_timeout(&mut self, vote: u32, attempt: u32) {
        let rec = &self.votes[vote as usize];
        if rec.times.acked.is_some() || rec.attempt != attempt {
            return;
        }
        let delay = self.retry_delay(attempt);
        self.queue.push(
            self.now + delay,
            Event::Attempt {
                vote,
                attempt: attempt + 1,
            },
        );
    }

    pub(super) fn on_request(&mut self, vote: u32, node: usize) {
        if !self.nodes[node].up {
            self.record(Kind::NodeDown, node as u32, NONE, vote, 0);
            return;
        }
        let rate = self.scenario.sync.ingest_per_sec;
        let incarnation = self.nodes[node].incarnation;
        if rate <= 0.0 {
            return self.on_accept(vote, node, incarnation);
        }
        // A node takes `rate` votes a second; the rest wait their turn.
        let n = &mut self.nodes[node];
        let start = self.now.max(n.ingest_free_at);
        n.ingest_free_at = start + (1e6 / rate).ceil() as Micros;
        self.queue.push(
            start,
            Event::Accept {
                vote,
                node: node as u16,
                incarnation,
            },
        );
    }

    pub(super) fn on_accept(&mut self, vote: u32, node: usize, incarnation: u32) {
        if !self.nodes[node].up || self.nodes[node].incarnation != incarnation {
            self.record(Kind::NodeDown, node as u32, NONE, vote, 1);
            return;
        }
        if self.inject_loss(vote, node) {
            return self.send_ack(vote, node);
        }

        let rec = &self.votes[vote as usize];
        let poll = rec.poll as usize;
        let inserted = self.nodes[node].replicas[poll].insert(rec.vote.clone());
        // Flush before ack: whatever this node acks is durable here.
        self.nodes[node].durable.insert(vote);
        match inserted {
            Inserted::New => {
                self.record(Kind::Accept, node as u32, NONE, vote, 0);
                self.accept_truth(vote);
                self.on_held(node, vote);
                self.queue_push(node, vote);
                self.doc_accepted(node, vote);
            }
            Inserted::Duplicate => {
                self.counters.duplicate_requests += 1;
                self.record(Kind::Duplicate, node as u32, NONE, vote, 0);
                self.accept_truth(vote);
            }
        }
        self.send_ack(vote, node);
    }

    /// With `--fault-injection lose-acked-vote`: node 0 acks one vote without
    /// storing it.
    pub(super) fn inject_loss(&mut self, vote: u32, node: usize) -> bool {
        let due = self.now >= self.stop_votes / 3;
        if self.injection != Some(Injection::LoseAckedVote) || self.injected || node != 0 || !due {
            return false;
        }
        self.injected = true;
        self.record(Kind::InjectedLoss, node as u32, NONE, vote, 0);
        true
    }

    pub(super) fn accept_truth(&mut self, vote: u32) {
        let rec = &mut self.votes[vote as usize];
        if rec.accepted {
            return;
        }
        rec.accepted = true;
        rec.times.accepted = Some(self.now);
        self.truth[rec.poll as usize].insert_admitted(rec.vote.clone());
        self.accepted += 1;
        self.recount_complete();
    }

    pub(super) fn send_ack(&mut self, vote: u32, node: usize) {
        // Checked as it happens: an ack promises the vote is durable here.
        if !self.nodes[node].durable.contains(&vote) {
            self.check.fail(Violation::AckedNotDurable {
                vote,
                node,
                at: self.now,
            });
        }
        match self.access_hop() {
            Some(delay) => self.queue.push(
                self.now + delay,
                Event::Ack {
                    vote,
                    node: node as u16,
                },
            ),
            None => self.record(Kind::AccessLost, node as u32, NONE, vote, 1),
        }
    }

    pub(super) fn on_ack(&mut self, vote: u32, node: usize) {
        let rec = &mut self.votes[vote as usize];
        if rec.times.acked.is_some() {
            return;
        }
        rec.times.acked = Some(self.now);
        rec.times.acked_by = node as u32;
        self.counters.acked += 1;
        self.record(Kind::Acked, node as u32, NONE, vote, 0);
    }
}
