//! The event trace: every step of a run, hashed as it happens, and kept in
//! memory (when the scenario asks) to explain a failure.

use sha2::{Digest as _, Sha256};

use crate::queue::Micros;

/// What happened. The discriminant is part of the trace hash: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A client cast a vote (`node` = relay).
    Cast = 1,
    /// A client sent a request (`extra` = attempt).
    Attempt,
    /// A client was offline and will retry (`extra` = attempt).
    Offline,
    /// A request or ack was lost on the access link.
    AccessLost,
    /// A node stored a client's vote and acked it.
    Accept,
    /// A node saw a client's vote again and acked it (idempotent).
    Duplicate,
    /// The client received the ack.
    Acked,
    /// A request arrived at a node that is down.
    NodeDown,
    /// A node learned an entry from a peer (`peer`; `extra` 0 push, 1 sync).
    Learned,
    /// A node-to-node message was sent (`extra` = bytes).
    Send,
    /// A node-to-node message was dropped (`extra` = reason code).
    Drop,
    /// A session started (`extra` = session id).
    SessionStart,
    /// A session finished on both sides (`extra` = session id).
    SessionDone,
    /// A session was abandoned (`extra` = session id).
    SessionTimeout,
    /// Partition.
    Partition,
    /// Heal.
    Heal,
    /// Hold a link.
    Hold,
    /// Release a link.
    Release,
    /// Cut a link (flap down).
    Cut,
    /// Restore a link (flap up).
    Restore,
    /// Crash.
    Crash,
    /// Restart (`extra` = entries reloaded).
    Restart,
    /// Drop every message in flight.
    DropInFlight,
    /// Clients go offline.
    ClientsOffline,
    /// Clients come back.
    ClientsOnline,
    /// A node acked a vote it did not store (deliberate fault injection).
    InjectedLoss,
}

impl Kind {
    /// Whether the record is a fault (kept in every failure excerpt).
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Kind::Partition
                | Kind::Heal
                | Kind::Hold
                | Kind::Release
                | Kind::Crash
                | Kind::Restart
                | Kind::DropInFlight
                | Kind::ClientsOffline
                | Kind::ClientsOnline
                | Kind::InjectedLoss
        )
    }
}

/// No vote or no node.
pub(crate) const NONE: u32 = u32::MAX;

/// One trace record.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Simulated time.
    pub at: Micros,
    /// What.
    pub kind: Kind,
    /// The node (or relay for casts), or [`NONE`].
    pub node: u32,
    /// The peer, or [`NONE`].
    pub peer: u32,
    /// The vote's index, or [`NONE`].
    pub vote: u32,
    /// Kind-specific.
    pub extra: u64,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "t={:>12.6}s {:<15}",
            self.at as f64 / 1e6,
            format!("{:?}", self.kind)
        )?;
        if self.node != NONE {
            let role = if self.kind == Kind::Cast {
                "relay"
            } else {
                "node"
            };
            write!(f, " {role}={}", self.node)?;
        }
        if self.peer != NONE {
            write!(f, " peer={}", self.peer)?;
        }
        if self.vote != NONE {
            write!(f, " vote={}", self.vote)?;
        }
        write!(f, " extra={}", self.extra)
    }
}

/// The running trace.
#[derive(Debug)]
pub(crate) struct Trace {
    hasher: Sha256,
    keep: bool,
    records: Vec<Record>,
    count: u64,
}

impl Trace {
    /// A new trace; `keep` holds every record in memory.
    pub(crate) fn new(keep: bool) -> Trace {
        Trace {
            hasher: Sha256::new(),
            keep,
            records: Vec::new(),
            count: 0,
        }
    }

    /// Appends a record.
    pub(crate) fn push(&mut self, record: Record) {
        let mut bytes = [0u8; 29];
        bytes[..8].copy_from_slice(&record.at.to_be_bytes());
        bytes[8] = record.kind as u8;
        bytes[9..13].copy_from_slice(&record.node.to_be_bytes());
        bytes[13..17].copy_from_slice(&record.peer.to_be_bytes());
        bytes[17..21].copy_from_slice(&record.vote.to_be_bytes());
        bytes[21..29].copy_from_slice(&record.extra.to_be_bytes());
        self.hasher.update(bytes);
        self.count += 1;
        if self.keep {
            self.records.push(record);
        }
    }

    /// SHA-256 over every record so far, hex.
    pub(crate) fn hash(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Records so far.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Whether records are kept.
    pub(crate) fn is_kept(&self) -> bool {
        self.keep
    }

    /// The records that explain what happened to `vote`: its own, and every
    /// fault, and everything on `node`'s life cycle (crash, restart).
    pub(crate) fn excerpt(&self, vote: u32) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| r.vote == vote || r.kind.is_fault())
            .copied()
            .collect()
    }
}
