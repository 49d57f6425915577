//! Invariant violations and the trace excerpt that explains the first one.

use std::fmt;

use crate::queue::Micros;
use crate::trace::Record;

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A node acked a vote that is not in its durable set.
    AckedNotDurable {
        /// The vote.
        vote: u32,
        /// The node that acked it.
        node: usize,
        /// When.
        at: Micros,
    },
    /// An acked vote is gone from the node that acked it.
    AckedLost {
        /// The vote.
        vote: u32,
        /// The node that acked it.
        node: usize,
        /// Whether some other node still has it durably.
        durable_elsewhere: bool,
    },
    /// After settling, an acked vote is missing from live nodes.
    NotEverywhere {
        /// The vote.
        vote: u32,
        /// The nodes without it.
        missing: Vec<usize>,
    },
    /// A node's digest differs from the truth's at the end.
    Diverged {
        /// The node.
        node: usize,
        /// The poll.
        poll: usize,
        /// Entries it holds.
        held: u64,
        /// Entries accepted anywhere.
        truth: u64,
    },
    /// Equal digests but a different tally (never expected).
    Tally {
        /// The node.
        node: usize,
        /// The poll.
        poll: usize,
    },
    /// A node is down at the end, so it cannot have converged.
    Down {
        /// The node.
        node: usize,
    },
    /// automerge and yrs strategies: a node's document shows a different
    /// number of entries than the replica that mirrors it.
    DocumentMismatch {
        /// The node.
        node: usize,
        /// The poll.
        poll: usize,
        /// Entries the document shows.
        in_doc: u64,
        /// Entries the mirror holds.
        mirrored: u64,
    },
}

impl Violation {
    /// The vote the violation is about, if one.
    pub fn vote(&self) -> Option<u32> {
        match self {
            Violation::AckedNotDurable { vote, .. }
            | Violation::AckedLost { vote, .. }
            | Violation::NotEverywhere { vote, .. } => Some(*vote),
            _ => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AckedNotDurable { vote, node, at } => write!(
                f,
                "node {node} acked vote {vote} at t={:.6}s without storing it durably",
                *at as f64 / 1e6
            ),
            Violation::AckedLost {
                vote,
                node,
                durable_elsewhere,
            } => write!(
                f,
                "acked vote {vote} lost: not durable on node {node} that acked it \
                 (durable elsewhere: {durable_elsewhere})"
            ),
            Violation::NotEverywhere { vote, missing } => {
                write!(
                    f,
                    "acked vote {vote} missing after settling on nodes {missing:?}"
                )
            }
            Violation::Diverged {
                node,
                poll,
                held,
                truth,
            } => write!(
                f,
                "node {node} diverged on poll {poll}: holds {held} of {truth} accepted entries"
            ),
            Violation::Tally { node, poll } => {
                write!(f, "node {node} tally differs from the truth on poll {poll}")
            }
            Violation::Down { node } => write!(f, "node {node} is down at the end of the run"),
            Violation::DocumentMismatch {
                node,
                poll,
                in_doc,
                mirrored,
            } => write!(
                f,
                "node {node} poll {poll}: its document shows {in_doc} entries, its replica {mirrored}"
            ),
        }
    }
}

/// Most violations kept; the rest are counted.
const KEEP: usize = 100;

/// What the checker found.
#[derive(Debug, Default)]
pub struct Check {
    violations: Vec<Violation>,
    total: u64,
    excerpt: Vec<Record>,
    trace_kept: bool,
}

impl Check {
    pub(crate) fn fail(&mut self, violation: Violation) {
        self.total += 1;
        if self.violations.len() < KEEP {
            self.violations.push(violation);
        }
    }

    pub(crate) fn first_vote(&self) -> Option<u32> {
        self.violations.iter().find_map(Violation::vote)
    }

    pub(crate) fn set_excerpt(&mut self, excerpt: Vec<Record>, kept: bool) {
        self.excerpt = excerpt;
        self.trace_kept = kept;
    }

    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.total == 0
    }

    /// The violations kept (the first 100).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many violations there were.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The trace records about the first violated vote, and every fault.
    pub fn excerpt(&self) -> &[Record] {
        &self.excerpt
    }

    /// Whether the trace was kept (otherwise the excerpt is empty; rerun
    /// with `keep_trace = true`).
    pub fn trace_kept(&self) -> bool {
        self.trace_kept
    }
}
