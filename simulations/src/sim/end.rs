//! Sampling, and the end of a run: the invariants and the outcome.

use super::*;

impl Sim {
    pub(super) fn on_sample(&mut self) {
        let accepted = self.accepted;
        for (index, node) in self.nodes.iter().enumerate() {
            self.samples.push(Sample {
                at: self.now,
                node: index as u32,
                region: node.region as u32,
                up: node.up,
                entries: node.held,
                missing: accepted.saturating_sub(node.held),
                bytes_sent: node.bytes_sent,
                messages_sent: node.messages_sent,
            });
        }
        let next = self.now + secs(self.scenario.sample_interval_s);
        if next <= self.end {
            self.queue.push(next, Event::Sample);
        }
    }

    pub(super) fn finish(mut self) -> Outcome {
        self.doc_final_check();
        self.check_end();
        let memory = self.memory();
        if let Some(vote) = self.check.first_vote() {
            let excerpt = self.trace.excerpt(vote);
            self.check.set_excerpt(excerpt, self.trace.is_kept());
        }
        let quiescent_at = self.complete_since;
        Outcome {
            seed: self.seed,
            trace_hash: self.trace.hash(),
            trace_events: self.trace.len(),
            events: self.events,
            counters: self.counters,
            samples: self.samples,
            votes: self.votes.iter().map(|v| v.times).collect(),
            clearings: self.clearings,
            converged_after: self.converged_after,
            quiescent_at,
            check: self.check,
            memory,
            scenario: self.scenario,
        }
    }

    /// The size of every live node's replicas at the end.
    fn memory(&mut self) -> Memory {
        let strategy = self.scenario.sync.strategy;
        let (mut replicas, mut entries, mut total, mut max) = (0u64, 0u64, 0u64, 0u64);
        for node in self.nodes.iter_mut().filter(|n| n.up) {
            for poll in 0..node.replicas.len() {
                let state = node.replicas[poll].state();
                let size = match node.docs.get_mut(poll) {
                    Some(doc) => doc.doc.serialized_len(),
                    None => state.entries().map(|v| v.encoded().len() as u64).sum(),
                };
                replicas += 1;
                entries += state.len() as u64;
                total += size;
                max = max.max(size);
            }
        }
        let measured = match strategy {
            Strategy::Votemesh | Strategy::Naive => {
                "the entries' encodings, as a crdt::PollState stores them and a restart reloads them"
            }
            Strategy::Automerge => "automerge save(): the whole document, compressed columns",
            Strategy::Yrs => "yrs encode_state_as_update_v1 against an empty state vector: the whole document",
        };
        let mean = |x: u64| {
            if replicas > 0 {
                x as f64 / replicas as f64
            } else {
                0.0
            }
        };
        Memory {
            measured: measured.into(),
            replicas,
            entries_mean: mean(entries),
            serialized_bytes_mean: mean(total),
            serialized_bytes_max: max,
        }
    }

    /// The end-of-run invariants: no acked vote lost, every live replica
    /// holds every acked vote, equal digests, tallies equal to the truth.
    pub(super) fn check_end(&mut self) {
        for (index, rec) in self.votes.iter().enumerate() {
            let index = index as u32;
            if rec.times.acked.is_none() {
                if rec.accepted {
                    self.counters.unacked_at_end += 1;
                } else {
                    self.counters.pending_at_end += 1;
                }
                continue;
            }
            let durable_somewhere = self.nodes.iter().any(|n| n.durable.contains(&index));
            let acked_by = rec.times.acked_by as usize;
            if !self.nodes[acked_by].durable.contains(&index) {
                self.counters.lost += 1;
                self.check.fail(Violation::AckedLost {
                    vote: index,
                    node: acked_by,
                    durable_elsewhere: durable_somewhere,
                });
                continue;
            }
            let hash = rec.vote.hash();
            let poll = rec.poll as usize;
            let missing: Vec<usize> = (0..self.nodes.len())
                .filter(|&n| self.nodes[n].up && !self.nodes[n].replicas[poll].contains(&hash))
                .collect();
            if !missing.is_empty() {
                self.counters.stale += 1;
                self.check.fail(Violation::NotEverywhere {
                    vote: index,
                    missing,
                });
            }
        }

        for poll in 0..self.polls.len() {
            let truth = &self.truth[poll];
            let digest = truth.digest();
            let tally = truth.tally();
            for (index, node) in self.nodes.iter().enumerate() {
                if !node.up {
                    self.check.fail(Violation::Down { node: index });
                    continue;
                }
                let state = node.replicas[poll].state();
                if state.digest() != digest {
                    self.check.fail(Violation::Diverged {
                        node: index,
                        poll,
                        held: state.len() as u64,
                        truth: truth.len() as u64,
                    });
                } else if state.tally() != tally {
                    self.check.fail(Violation::Tally { node: index, poll });
                }
            }
        }
    }
}
