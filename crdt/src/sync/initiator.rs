//! The side that starts a session: sends hello, decodes the responder's
//! symbols, asks for what it lacks and pushes what the responder lacks.

use std::ops::Bound;

use crate::ids::{Digest, EntryHash, PollId};
use crate::sync::error::SyncError;
use crate::sync::message::{Message, MAX_HASHES, MAX_IDS};
use crate::sync::riblt::{Decoder, Encoder, Symbol};
use crate::sync::session::{
    all_entries, first_request, next_request, symbol_cap, Config, Core, Output, Path, Stats,
};
use crate::sync::view::SetView;
use crate::vote::Vote;

/// The side that starts a session.
#[derive(Debug)]
pub struct Initiator {
    core: Core,
    step: Step,
}

#[derive(Debug)]
enum Step {
    AwaitReply {
        count: u64,
    },
    Decoding(Box<Decoding>),
    Bulk,
    AwaitEntries,
    Fallback {
        entries_done: bool,
        wants_done: bool,
    },
    Ended,
}

#[derive(Debug)]
struct Decoding {
    decoder: Decoder,
    remote: (u64, Digest),
    /// Remote count minus local count.
    delta: f64,
    requested: u64,
    cap: u64,
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::AwaitReply { .. } => "awaiting the reply to hello",
            Step::Decoding(_) => "receiving symbols",
            Step::Bulk => "receiving everything",
            Step::AwaitEntries => "awaiting wanted entries",
            Step::Fallback { .. } => "comparing hashes",
            Step::Ended => "ended",
        }
    }
}

impl Initiator {
    /// Starts a session for `poll`; send `Output::send` to the responder.
    pub fn start(
        poll: PollId,
        config: Config,
        set: &impl SetView,
        now_ms: u64,
    ) -> (Initiator, Output) {
        let mut core = Core::new(poll, config, now_ms);
        let mut out = Output::default();
        let count = set.count();

        let hello = Message::Hello {
            poll,
            count,
            digest: set.digest(),
        };
        core.send(&mut out, hello);
        core.stats.round_trips += 1;

        let step = Step::AwaitReply { count };
        (Initiator { core, step }, out)
    }

    /// Handles one message from the responder. Any error ends the session.
    pub fn handle(
        &mut self,
        message: Message,
        set: &impl SetView,
        now_ms: u64,
    ) -> Result<Output, SyncError> {
        let mut out = Output::default();
        let result = self
            .core
            .receive(&message, now_ms)
            .and_then(|()| self.step(message, set, &mut out));
        if result.is_err() {
            self.core.ended = true;
            self.step = Step::Ended;
        }
        result.map(|()| out)
    }

    /// Fails the session once the responder has been silent longer than the
    /// timeout.
    pub fn tick(&mut self, now_ms: u64) -> Result<(), SyncError> {
        self.core.tick(now_ms)
    }

    /// Whether the session is over (finished or failed).
    pub fn is_ended(&self) -> bool {
        self.core.ended
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    fn step(
        &mut self,
        message: Message,
        set: &impl SetView,
        out: &mut Output,
    ) -> Result<(), SyncError> {
        let step = std::mem::replace(&mut self.step, Step::Ended);
        match (step, message) {
            (Step::AwaitReply { .. }, Message::Same { .. }) => {
                self.core.finish(out, Path::Same);
            }
            (
                Step::AwaitReply { count },
                Message::Symbols {
                    count: theirs,
                    digest,
                    start,
                    symbols,
                    ..
                },
            ) => {
                let cap = symbol_cap(&self.core.config, count, theirs);
                let decoding = Decoding {
                    decoder: Decoder::new(Encoder::new(set.short_ids())),
                    remote: (theirs, digest),
                    delta: theirs as f64 - count as f64,
                    requested: first_request(count, theirs, cap),
                    cap,
                };
                self.on_symbols(
                    Box::new(decoding),
                    (theirs, digest),
                    start,
                    symbols,
                    set,
                    out,
                )?;
            }
            (
                Step::Decoding(decoding),
                Message::Symbols {
                    count,
                    digest,
                    start,
                    symbols,
                    ..
                },
            ) => {
                self.on_symbols(decoding, (count, digest), start, symbols, set, out)?;
            }
            (
                Step::AwaitReply { count: 0 } | Step::Bulk,
                Message::Entries { entries, last, .. },
            ) => {
                self.core.accept(out, entries)?;
                self.end_or(out, last, Path::Bulk, Step::Bulk);
            }
            (Step::AwaitReply { .. }, Message::WantAll { .. }) => {
                self.core.send_entries(out, all_entries(set), true);
                self.core.finish(out, Path::Bulk);
            }
            (Step::AwaitEntries, Message::Entries { entries, last, .. }) => {
                self.core.accept(out, entries)?;
                self.end_or(out, last, Path::Symbols, Step::AwaitEntries);
            }
            (
                Step::Fallback {
                    entries_done: false,
                    wants_done,
                },
                Message::Entries { entries, last, .. },
            ) => {
                self.core.accept(out, entries)?;
                self.fallback_progress(out, last, wants_done);
            }
            (
                Step::Fallback {
                    entries_done,
                    wants_done: false,
                },
                Message::WantHashes { hashes, last, .. },
            ) => {
                let votes = hashes.iter().filter_map(|h| set.get(h).cloned());
                self.core.send_entries(out, votes.collect::<Vec<_>>(), last);
                self.fallback_progress(out, entries_done, last);
            }
            (step, message) => {
                return Err(SyncError::OutOfOrder {
                    step: step.name(),
                    message: message.kind(),
                });
            }
        }
        Ok(())
    }

    fn end_or(&mut self, out: &mut Output, last: bool, path: Path, next: Step) {
        if last {
            self.core.finish(out, path);
        } else {
            self.step = next;
        }
    }

    fn fallback_progress(&mut self, out: &mut Output, entries_done: bool, wants_done: bool) {
        if entries_done && wants_done {
            self.core.finish(out, Path::Fallback);
        } else {
            self.step = Step::Fallback {
                entries_done,
                wants_done,
            };
        }
    }

    fn on_symbols(
        &mut self,
        mut d: Box<Decoding>,
        remote: (u64, Digest),
        start: u64,
        symbols: Vec<Symbol>,
        set: &impl SetView,
        out: &mut Output,
    ) -> Result<(), SyncError> {
        if remote != d.remote {
            return Err(SyncError::PeerChanged);
        }
        let expected = d.decoder.received();
        if start != expected {
            return Err(SyncError::SymbolGap {
                expected,
                found: start,
            });
        }
        let end = start + symbols.len() as u64;
        if end > d.requested {
            return Err(SyncError::UnrequestedSymbols {
                requested: d.requested,
                found: end,
            });
        }

        d.decoder.add(&symbols);
        if end < d.requested {
            self.step = Step::Decoding(d);
            return Ok(());
        }

        let found = !d.decoder.remote_only().is_empty() || !d.decoder.local_only().is_empty();
        if d.decoder.is_done() && found {
            self.exchange(&d.decoder, set, out);
        } else if d.decoder.is_done() || d.requested >= d.cap {
            // Digests differ yet no difference decoded: short ids collide.
            self.fall_back(set, out);
        } else {
            d.requested = next_request(d.requested, d.decoder.estimate(d.delta), d.cap);
            let more = Message::More {
                poll: self.core.poll,
                until: d.requested,
            };
            self.core.send(out, more);
            self.core.stats.round_trips += 1;
            self.step = Step::Decoding(d);
        }
        Ok(())
    }

    /// Asks for what we lack (Want first, so the responder answers at once)
    /// and pushes what the responder lacks.
    fn exchange(&mut self, decoder: &Decoder, set: &impl SetView, out: &mut Output) {
        let mut wanted = decoder.remote_only().to_vec();
        wanted.sort_unstable();
        let chunks = wanted.len().div_ceil(MAX_IDS);
        for (i, ids) in wanted.chunks(MAX_IDS).enumerate() {
            let want = Message::Want {
                poll: self.core.poll,
                ids: ids.to_vec(),
                last: i + 1 == chunks,
            };
            self.core.send(out, want);
        }

        let ours: Vec<Vote> = decoder
            .local_only()
            .iter()
            .flat_map(|id| set.with_short_id(*id).cloned())
            .collect();
        self.core.send_entries(out, ours, true);

        if wanted.is_empty() {
            self.core.finish(out, Path::Symbols);
        } else {
            self.core.stats.round_trips += 1;
            self.step = Step::AwaitEntries;
        }
    }

    fn fall_back(&mut self, set: &impl SetView, out: &mut Output) {
        let hashes: Vec<EntryHash> = set.hashes((Bound::Unbounded, Bound::Unbounded)).collect();
        let chunks = hashes.len().div_ceil(MAX_HASHES).max(1);
        let mut pieces = hashes.chunks(MAX_HASHES);
        for i in 0..chunks {
            let piece = pieces.next().unwrap_or(&[]).to_vec();
            let message = Message::Hashes {
                poll: self.core.poll,
                hashes: piece,
                last: i + 1 == chunks,
            };
            self.core.send(out, message);
        }
        self.core.stats.round_trips += 1;
        self.step = Step::Fallback {
            entries_done: false,
            wants_done: false,
        };
    }
}
