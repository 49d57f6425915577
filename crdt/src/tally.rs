//! The tally: a pure function of the set of admitted entries.
//!
//! For each voter the effective vote is the entry with the highest `seq`, ties
//! broken by the highest entry hash; the counts are taken over effective votes.
//! "Highest (seq, hash)" is a maximum, so adding entries in any order, or the
//! same entry twice, ends in the same tally. Two entries with the same voter
//! and `seq` are an equivocation: both are kept, the rule above still picks
//! one, and [`Tally::equivocations`] reports them.

use std::collections::HashMap;

use serde::Serialize;

use crate::ids::{EntryHash, PublicKey};
use crate::vote::Vote;

/// One voter's admitted entries as `(seq, hash, choice)`, ascending.
#[derive(Debug, Clone, Default)]
struct VoterEntries(Vec<(u64, EntryHash, u32)>);

/// The tally, maintained incrementally as admitted entries arrive.
#[derive(Debug, Clone)]
pub struct TallyState {
    voters: HashMap<PublicKey, VoterEntries>,
    counts: Vec<u64>,
    entries: u64,
}

/// Same voter and `seq`, different entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Equivocation {
    /// The voter.
    pub voter: PublicKey,
    /// The contested revision number.
    pub seq: u64,
    /// The entries, ascending; the last one is the one that counts if `seq` is
    /// the voter's highest.
    pub entries: Vec<EntryHash>,
}

/// A snapshot of the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Effective votes per option, indexed like the poll's options.
    pub counts: Vec<u64>,
    /// Voters with an effective vote (the sum of `counts`).
    pub voters: u64,
    /// Admitted entries, including superseded revisions.
    pub entries: u64,
}

impl TallyState {
    /// An empty tally for a poll with `options` options.
    pub fn new(options: usize) -> Self {
        Self {
            voters: HashMap::new(),
            counts: vec![0; options],
            entries: 0,
        }
    }

    /// Adds an entry that has passed the admission rule. Returns false if the
    /// entry was already counted (adding it again changes nothing).
    ///
    /// # Panics
    /// If the choice is not an option: admission rules that out.
    pub fn add(&mut self, vote: &Vote) -> bool {
        let body = vote.body();
        let key = (body.seq, vote.hash(), body.choice);
        let entries = &mut self.voters.entry(body.voter).or_default().0;

        let position = match entries.binary_search(&key) {
            Ok(_) => return false,
            Err(p) => p,
        };
        let previous_best = entries.last().map(|e| e.2);
        entries.insert(position, key);
        self.entries += 1;

        if position == entries.len() - 1 {
            if let Some(old) = previous_best {
                self.counts[old as usize] -= 1;
            }
            self.counts[body.choice as usize] += 1;
        }
        true
    }

    /// The current counts.
    pub fn tally(&self) -> Tally {
        Tally {
            counts: self.counts.clone(),
            voters: self.voters.len() as u64,
            entries: self.entries,
        }
    }

    /// The effective choice of one voter, if they have voted.
    pub fn choice_of(&self, voter: &PublicKey) -> Option<u32> {
        self.voters.get(voter).and_then(|e| e.0.last()).map(|e| e.2)
    }

    /// Every equivocation, ordered by voter then `seq`.
    pub fn equivocations(&self) -> Vec<Equivocation> {
        let mut found = Vec::new();
        for (voter, entries) in &self.voters {
            for group in entries.0.chunk_by(|a, b| a.0 == b.0) {
                if group.len() > 1 {
                    found.push(Equivocation {
                        voter: *voter,
                        seq: group[0].0,
                        entries: group.iter().map(|e| e.1).collect(),
                    });
                }
            }
        }
        found.sort_by_key(|e| (e.voter, e.seq));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PollId;
    use crate::signature::SecretKey;
    use crate::vote::tests::body;

    #[test]
    fn a_higher_seq_replaces_the_voters_earlier_choice() {
        let voter = SecretKey::from_seed(&[1; 32]);
        let first = body(PollId([0; 32]), 0, 1).sign(&voter);
        let second = body(PollId([0; 32]), 2, 2).sign(&voter);
        let mut late = TallyState::new(3);
        let mut early = TallyState::new(3);

        late.add(&second);
        late.add(&first);
        early.add(&first);
        early.add(&second);

        assert_eq!(late.tally().counts, vec![0, 0, 1]);
        assert_eq!(late.tally(), early.tally());
        assert_eq!(late.tally().entries, 2);
    }

    #[test]
    fn same_seq_twice_is_reported_and_resolved_by_hash() {
        let voter = SecretKey::from_seed(&[1; 32]);
        let a = body(PollId([0; 32]), 0, 5).sign(&voter);
        let b = body(PollId([0; 32]), 1, 5).sign(&voter);
        let winner = if a.hash() > b.hash() { &a } else { &b };
        let mut state = TallyState::new(2);

        assert!(state.add(&a));
        assert!(state.add(&b));
        assert!(!state.add(&a));

        assert_eq!(state.choice_of(&voter.public()), Some(winner.body().choice));
        let report = state.equivocations();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].seq, 5);
        assert_eq!(report[0].entries.len(), 2);
    }
}
