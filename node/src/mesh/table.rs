//! What the node knows about each peer: addresses, links, blocks, the last
//! reconciliation round and when to dial next. Shared by the swarm task,
//! the round tasks and the operator API.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use rand::Rng;
use serde::Serialize;

/// The first redial waits about this long; each failure doubles it.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Redials wait at most this long.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What the last round with a peer moved, summed over its polls.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RoundStats {
    pub(crate) polls: u64,
    pub(crate) sessions_failed: u64,
    pub(crate) entries_sent: u64,
    pub(crate) entries_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

/// One peer.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) addresses: Vec<Multiaddr>,
    /// Named in `peers`: dialed, and redialed with backoff.
    pub(crate) configured: bool,
    pub(crate) connections: u32,
    pub(crate) blocked: bool,
    pub(crate) last_sync_ms: Option<u64>,
    pub(crate) last: Option<RoundStats>,
    /// Entries the last round found missing here.
    pub(crate) lag: u64,
    pub(crate) round_running: bool,
    /// Invalid inputs since the last disconnect for them.
    pub(crate) strikes: u32,
    failures: u32,
    next_dial: Instant,
}

impl Peer {
    fn new(configured: bool) -> Peer {
        Peer {
            addresses: Vec::new(),
            configured,
            connections: 0,
            blocked: false,
            last_sync_ms: None,
            last: None,
            lag: 0,
            round_running: false,
            strikes: 0,
            failures: 0,
            next_dial: Instant::now(),
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connections > 0
    }

    /// Whether to dial now: configured, not blocked, not connected, and the
    /// backoff has run out.
    pub(crate) fn dial_due(&self, now: Instant) -> bool {
        self.configured && !self.blocked && !self.connected() && self.next_dial <= now
    }

    /// A dial was started: the next waits twice as long, with jitter, up to the cap.
    pub(crate) fn dialed(&mut self, now: Instant) {
        let exp = BACKOFF_START.saturating_mul(1 << self.failures.min(10));
        let wait = exp.min(BACKOFF_CAP);
        let jitter = rand::thread_rng().gen_range(0.5..1.0);
        self.next_dial = now + wait.mul_f64(jitter);
        self.failures = self.failures.saturating_add(1);
    }

    /// The link works (a round finished) or an operator asked: dial at once next time.
    pub(crate) fn reset_backoff(&mut self) {
        self.failures = 0;
        self.next_dial = Instant::now();
    }
}

/// Every peer, by id.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) peers: BTreeMap<PeerId, Peer>,
}

impl Table {
    pub(crate) fn configured(peers: &[(PeerId, Multiaddr)]) -> Table {
        let mut table = Table::default();
        for (id, addr) in peers {
            let peer = table.peers.entry(*id).or_insert_with(|| Peer::new(true));
            if !peer.addresses.contains(addr) {
                peer.addresses.push(addr.clone());
            }
        }
        table
    }

    /// The peer's entry, made if missing (a peer that dialed in).
    pub(crate) fn entry(&mut self, id: PeerId) -> &mut Peer {
        self.peers.entry(id).or_insert_with(|| Peer::new(false))
    }

    pub(crate) fn connected_count(&self) -> usize {
        self.peers.values().filter(|p| p.connected()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut peer = Peer::new(true);
        let now = Instant::now();

        for _ in 0..20 {
            peer.dialed(now);
        }
        let waited = peer.next_dial - now;
        peer.reset_backoff();

        assert!(
            waited <= BACKOFF_CAP && waited >= BACKOFF_CAP / 2,
            "{waited:?}"
        );
        assert!(peer.dial_due(Instant::now()));
    }
}
