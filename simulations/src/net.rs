//! Simulated links between nodes: latency, jitter, loss, bandwidth, FIFO
//! delivery per direction, partitions, holds, cuts and in-flight drops.
//!
//! The network decides when (or whether) a message arrives; the simulator
//! schedules the delivery and asks [`Net::admits`] again on arrival, so a
//! partition or a drop that happens in between loses the message.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::queue::{millis, Micros};
use crate::scenario::{Link, Links};

/// Why a message was not delivered. The code is part of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Random loss.
    Loss = 1,
    /// The ends are in different partition groups.
    Partition = 2,
    /// The link is cut (flapping).
    Cut = 3,
    /// Dropped while in flight.
    InFlight = 4,
    /// The receiver is down.
    Down = 5,
}

/// Where a sent message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// It arrives at this time, tagged with the link's epoch.
    Arrives(Micros, u32),
    /// It waits in a held link.
    Held,
    /// It is gone.
    Dropped(Dropped),
}

#[derive(Debug, Clone, Default)]
struct Direction {
    busy_until: Micros,
    last_arrival: Micros,
}

/// The node-to-node network.
#[derive(Debug)]
pub(crate) struct Net {
    nodes: usize,
    region: Vec<usize>,
    links: Links,
    directions: Vec<Direction>,
    /// Partition group per node; all zero when healed.
    group: Vec<usize>,
    held: Vec<bool>,
    cut: Vec<bool>,
    epoch: u32,
}

impl Net {
    /// A fully connected network of `region.len()` nodes.
    pub(crate) fn new(region: Vec<usize>, links: Links) -> Net {
        let nodes = region.len();
        Net {
            nodes,
            region,
            links,
            directions: vec![Direction::default(); nodes * nodes],
            group: vec![0; nodes],
            held: vec![false; nodes * nodes],
            cut: vec![false; nodes * nodes],
            epoch: 0,
        }
    }

    fn link(&self, from: usize, to: usize) -> Link {
        if self.region[from] == self.region[to] {
            self.links.intra_region
        } else {
            self.links.inter_region
        }
    }

    fn pair(&self, a: usize, b: usize) -> usize {
        a.min(b) * self.nodes + a.max(b)
    }

    /// Sends `bytes` from `from` to `to` at `now`.
    pub(crate) fn send(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Micros,
        from: usize,
        to: usize,
        bytes: usize,
    ) -> Sent {
        if let Some(reason) = self.blocked(from, to) {
            return Sent::Dropped(reason);
        }
        let link = self.link(from, to);
        if link.loss > 0.0 && rng.gen_bool(link.loss.min(1.0)) {
            return Sent::Dropped(Dropped::Loss);
        }
        if self.held[self.pair(from, to)] {
            return Sent::Held;
        }
        Sent::Arrives(self.schedule(rng, now, from, to, bytes), self.epoch)
    }

    /// Arrival time of a message leaving now: queued behind earlier sends on
    /// the same direction (bandwidth), then latency and jitter, never before
    /// the previous arrival (a stream keeps its order).
    pub(crate) fn schedule(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Micros,
        from: usize,
        to: usize,
        bytes: usize,
    ) -> Micros {
        let link = self.link(from, to);
        let transmit = if link.bandwidth_mbps > 0.0 {
            (bytes as f64 * 8.0 / link.bandwidth_mbps).ceil() as Micros
        } else {
            0
        };
        let jitter = if link.jitter_ms > 0.0 {
            rng.gen_range(0.0..link.jitter_ms)
        } else {
            0.0
        };
        let direction = &mut self.directions[from * self.nodes + to];
        let start = now.max(direction.busy_until);
        direction.busy_until = start + transmit;
        let arrival =
            (start + transmit + millis(link.latency_ms + jitter)).max(direction.last_arrival);
        direction.last_arrival = arrival;
        arrival
    }

    /// Why a message from `from` to `to` cannot pass now, if it cannot.
    pub(crate) fn blocked(&self, from: usize, to: usize) -> Option<Dropped> {
        if self.group[from] != self.group[to] {
            return Some(Dropped::Partition);
        }
        if self.cut[self.pair(from, to)] {
            return Some(Dropped::Cut);
        }
        None
    }

    /// Whether a message sent in `epoch` may be delivered now.
    pub(crate) fn admits(&self, from: usize, to: usize, epoch: u32) -> Result<(), Dropped> {
        if epoch != self.epoch {
            return Err(Dropped::InFlight);
        }
        self.blocked(from, to).map_or(Ok(()), Err)
    }

    /// Splits the nodes; those not listed form one more group.
    pub(crate) fn partition(&mut self, groups: &[Vec<usize>]) {
        self.group = vec![0; self.nodes];
        for (i, members) in groups.iter().enumerate() {
            for &node in members {
                self.group[node] = i + 1;
            }
        }
    }

    /// Ends every partition.
    pub(crate) fn heal(&mut self) {
        self.group = vec![0; self.nodes];
    }

    /// Holds or releases the link between `a` and `b`.
    pub(crate) fn set_held(&mut self, a: usize, b: usize, held: bool) {
        let pair = self.pair(a, b);
        self.held[pair] = held;
    }

    /// Cuts or restores the link between `a` and `b`.
    pub(crate) fn set_cut(&mut self, a: usize, b: usize, cut: bool) {
        let pair = self.pair(a, b);
        self.cut[pair] = cut;
    }

    /// Loses every message now in flight.
    pub(crate) fn drop_in_flight(&mut self) {
        self.epoch += 1;
    }

    /// The current epoch (for messages released from a hold).
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }
}
