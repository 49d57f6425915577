//! What the two sans-IO state machines ([`Initiator`](super::Initiator),
//! [`Responder`](super::Responder)) share: settings, output, counters, and
//! the policy for how many symbols to ask for.
//!
//! Each takes a message, a read-only [`SetView`] and the current time, and
//! returns what to send, the entries that arrived and, at the end, an
//! [`Outcome`]. Neither inserts anything: the caller admits and stores.

use crate::ids::{Digest, PollId};
use crate::sync::error::SyncError;
use crate::sync::message::{Message, MAX_SYMBOLS};
use crate::sync::riblt::Symbol;
use crate::vote::Vote;

/// Session settings. Both peers must use the same `max_symbols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// A session fails when the peer is silent this long (see `tick`).
    pub timeout_ms: u64,
    /// Most coded symbols one session sends before it falls back to hashes.
    pub max_symbols: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout_ms: 30_000,
            max_symbols: 1 << 24,
        }
    }
}

/// What one step of a session produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages for the peer, in order.
    pub send: Vec<Message>,
    /// Entries from the peer, checked for form and poll only: the caller must
    /// admit them ([`crate::admit_batch`]) before storing.
    pub received: Vec<Vote>,
    /// Set once, when the session has finished.
    pub done: Option<Outcome>,
}

/// How a finished session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which way the sets were reconciled.
    pub path: Path,
    /// What it cost this side.
    pub stats: Stats,
}

/// Which way a session reconciled the sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Path {
    /// The digests were equal; nothing moved.
    Same,
    /// Coded symbols found the difference.
    Symbols,
    /// One side was empty and got everything.
    Bulk,
    /// Symbols did not decode (short ids collide, or too many were needed),
    /// so the full hash list was compared.
    Fallback,
}

/// Counters of one side of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Encoded bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Encoded bytes received.
    pub bytes_received: u64,
    /// Coded symbols sent.
    pub symbols_sent: u64,
    /// Coded symbols received.
    pub symbols_received: u64,
    /// Entries sent.
    pub entries_sent: u64,
    /// Entries received.
    pub entries_received: u64,
    /// Requests this side sent that the peer had to answer before the session
    /// could go on (hello, more, want, hashes, want-all, want-hashes,
    /// next-page).
    pub round_trips: u64,
}

/// What both machines share: the poll, the counters and the clock.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) poll: PollId,
    pub(super) config: Config,
    pub(super) stats: Stats,
    pub(super) last_heard_ms: u64,
    pub(super) ended: bool,
}

impl Core {
    pub(super) fn new(poll: PollId, config: Config, now_ms: u64) -> Core {
        Core {
            poll,
            config,
            stats: Stats::default(),
            last_heard_ms: now_ms,
            ended: false,
        }
    }

    pub(super) fn receive(&mut self, message: &Message, now_ms: u64) -> Result<(), SyncError> {
        if self.ended {
            return Err(SyncError::Ended);
        }
        if message.poll() != self.poll {
            return Err(SyncError::WrongPoll {
                expected: self.poll,
                found: message.poll(),
            });
        }

        let s = &mut self.stats;
        s.messages_received += 1;
        s.bytes_received += message.encoded_len() as u64;
        match message {
            Message::Symbols { symbols, .. } => s.symbols_received += symbols.len() as u64,
            Message::Entries { entries, .. } => s.entries_received += entries.len() as u64,
            _ => {}
        }
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
        Ok(())
    }

    pub(super) fn send(&mut self, out: &mut Output, message: Message) {
        let s = &mut self.stats;
        s.messages_sent += 1;
        s.bytes_sent += message.encoded_len() as u64;
        match &message {
            Message::Symbols { symbols, .. } => s.symbols_sent += symbols.len() as u64,
            Message::Entries { entries, .. } => s.entries_sent += entries.len() as u64,
            _ => {}
        }
        out.send.push(message);
    }

    /// Hands entries to the caller after checking they are for this poll.
    pub(super) fn accept(&mut self, out: &mut Output, entries: Vec<Vote>) -> Result<(), SyncError> {
        if let Some(stray) = entries.iter().find(|v| v.body().poll != self.poll) {
            return Err(SyncError::EntryForOtherPoll {
                hash: stray.hash(),
                found: stray.body().poll,
            });
        }
        out.received.extend(entries);
        Ok(())
    }

    pub(super) fn finish(&mut self, out: &mut Output, path: Path) {
        self.ended = true;
        out.done = Some(Outcome {
            path,
            stats: self.stats.clone(),
        });
    }

    pub(super) fn tick(&mut self, now_ms: u64) -> Result<(), SyncError> {
        let idle_ms = now_ms.saturating_sub(self.last_heard_ms);
        if self.ended || idle_ms <= self.config.timeout_ms {
            return Ok(());
        }
        self.ended = true;
        Err(SyncError::TimedOut { idle_ms })
    }
}

/// Symbols sent before a session gives up on decoding: twice both sets, so
/// only colliding short ids (or a lying peer) ever reach it.
///
/// The peer's count enters the cap, so a peer that claims a huge set can make
/// the responder encode up to `Config::max_symbols` (24 bytes each while
/// producing); that setting is the bound.
pub(super) fn symbol_cap(config: &Config, a: u64, b: u64) -> u64 {
    let cap = a.saturating_add(b).saturating_mul(2).saturating_add(64);
    cap.min(config.max_symbols)
}

/// The first range: about 1.5 symbols per differing entry when the counts
/// tell the difference (one-sided), and a small probe otherwise.
pub(super) fn first_request(a: u64, b: u64, cap: u64) -> u64 {
    let d = a.abs_diff(b);
    d.saturating_add(d / 2).max(32).min(cap)
}

/// The next range after `received` symbols did not decode: at least half as
/// many again, and enough for the estimated difference.
pub(super) fn next_request(received: u64, estimate: f64, cap: u64) -> u64 {
    let grown = received + received.div_ceil(2);
    // `as` saturates; the estimate comes from peer data.
    let aim = (estimate * 1.6).ceil() as u64;
    grown.max(aim).min(cap)
}

pub(super) fn send_symbols(
    core: &mut Core,
    out: &mut Output,
    head: (u64, Digest),
    start: u64,
    symbols: Vec<Symbol>,
) {
    let mut start = start;
    for chunk in symbols.chunks(MAX_SYMBOLS) {
        let message = Message::Symbols {
            poll: core.poll,
            count: head.0,
            digest: head.1,
            start,
            symbols: chunk.to_vec(),
        };
        core.send(out, message);
        start += chunk.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_grow_and_stay_under_the_cap() {
        let config = Config::default();
        let cap = symbol_cap(&config, 10, 20);

        assert_eq!(cap, 124);
        assert_eq!(first_request(10, 10, cap), 32);
        assert_eq!(first_request(1_000, 10, 10_000), 1_485);
        assert_eq!(first_request(1_000_000, 0, cap), cap);
        assert_eq!(next_request(32, 1.0, 1_000), 48);
        assert_eq!(next_request(32, 100.0, 1_000), 160);
        assert_eq!(next_request(900, 1e30, 1_000), 1_000);
    }

    #[test]
    fn timeout_fires_once_after_silence() {
        let mut core = Core::new(PollId([0; 32]), Config::default(), 1_000);

        assert!(core.tick(31_000).is_ok());
        assert_eq!(
            core.tick(31_001),
            Err(SyncError::TimedOut { idle_ms: 30_001 })
        );
        assert!(core.tick(90_000).is_ok());
    }
}
