//! What a page is rendered from: the published state of a poll.

use perseus::prelude::*;
use serde::{Deserialize, Serialize};

/// One poll as its pages show it before the browser takes over.
///
/// Filled from the signed poll and the node's tally when the poll is
/// published; the browser then replaces `counts` with the live counts.
#[derive(Serialize, Deserialize, Clone, UnreactiveState)]
pub(crate) struct PollPage {
    /// The poll id (hex).
    pub(crate) id: String,
    /// The signed poll as the node serves it: the browser signs votes for it.
    pub(crate) poll: serde_json::Value,
    /// The poll's title.
    pub(crate) title: String,
    /// The options, in ballot order.
    pub(crate) options: Vec<String>,
    /// Effective votes per option when the page was published.
    pub(crate) counts: Vec<u64>,
    /// Entries the node held when the page was published.
    pub(crate) entries: u64,
    /// The node's state digest then (hex).
    pub(crate) digest: String,
    /// Voting opens, unix ms.
    pub(crate) opens_at: u64,
    /// Voting closes, unix ms.
    pub(crate) closes_at: u64,
    /// Whether a vote needs a registrar's credential.
    pub(crate) needs_credential: bool,
    /// When the page was published, unix ms.
    pub(crate) published_at: u64,
    /// The keys (hex) of the regional nodes behind the relay: a vote is
    /// confirmed only by a receipt one of them signed. Kept with each vote
    /// in the outbox, so the service worker applies the same rule.
    #[serde(default)]
    pub(crate) trusted_nodes: Vec<String>,
}

/// The site's front page: every published poll.
#[derive(Serialize, Deserialize, Clone, UnreactiveState)]
pub(crate) struct Index {
    /// `(id, title)` of each poll.
    pub(crate) polls: Vec<(String, String)>,
}
