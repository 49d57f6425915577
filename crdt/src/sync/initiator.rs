//! The side that starts a session: sends hello, decodes the responder's
//! symbols, asks for what it lacks and pushes what the responder lacks.

use std::collections::VecDeque;

use crate::ids::{Digest, PollId};
use crate::sync::error::SyncError;
use crate::sync::message::Message;
use crate::sync::outbox::{Outbox, Source};
use crate::sync::riblt::{Decoder, Encoder, Symbol};
use crate::sync::session::{
    first_request, next_request, symbol_cap, Config, Core, Output, Path, Stats,
};
use crate::sync::view::SetView;

/// The side that starts a session.
#[derive(Debug)]
pub struct Initiator {
    core: Core,
    step: Step,
    outbox: Outbox,
}

#[derive(Debug)]
enum Step {
    AwaitReply {
        count: u64,
    },
    Decoding(Box<Decoding>),
    /// The way is chosen: entries (and in the fallback, hashes) flow in
    /// pages until both directions are done.
    Streaming {
        path: Path,
        /// The responder's last `Entries` has not arrived yet.
        receiving: bool,
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
            Step::Streaming {
                path: Path::Fallback,
                ..
            } => "comparing hashes",
            Step::Streaming {
                receiving: true, ..
            } => "receiving entries",
            Step::Streaming { .. } => "sending entries",
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
        let outbox = Outbox::default();
        (Initiator { core, step, outbox }, out)
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
            (Step::AwaitReply { count: 0 }, message @ Message::Entries { .. }) => {
                let step = Step::Streaming {
                    path: Path::Bulk,
                    receiving: true,
                };
                self.stream(step, message, set, out)?;
            }
            (Step::AwaitReply { .. }, Message::WantAll { .. }) => {
                self.outbox.push(Source::All { after: None });
                self.outbox.close();
                self.outbox.pump(&mut self.core, set, out);
                let step = Step::Streaming {
                    path: Path::Bulk,
                    receiving: false,
                };
                self.settle(out, step);
            }
            (step @ Step::Streaming { .. }, message) => {
                self.stream(step, message, set, out)?;
            }
            (step, message) => {
                return Err(out_of_order(&step, &message));
            }
        }
        Ok(())
    }

    /// Handles a message once entries are flowing: entries and page ends
    /// from the responder, page requests, and in the fallback its wants.
    fn stream(
        &mut self,
        step: Step,
        message: Message,
        set: &impl SetView,
        out: &mut Output,
    ) -> Result<(), SyncError> {
        let Step::Streaming { path, receiving } = step else {
            return Err(out_of_order(&step, &message));
        };
        match message {
            Message::Entries { entries, last, .. } if receiving => {
                self.core.accept(out, entries)?;
                let step = Step::Streaming {
                    path,
                    receiving: !last,
                };
                self.settle(out, step);
            }
            Message::PageEnd { .. } if receiving => {
                let poll = self.core.poll;
                self.core.send(out, Message::NextPage { poll });
                self.core.stats.round_trips += 1;
                self.step = Step::Streaming { path, receiving };
            }
            Message::NextPage { .. } if self.outbox.is_paused() => {
                self.outbox.resume();
                self.outbox.pump(&mut self.core, set, out);
                self.settle(out, Step::Streaming { path, receiving });
            }
            Message::WantHashes { hashes, last, .. }
                if path == Path::Fallback && !self.outbox.is_closed() =>
            {
                self.outbox.push(Source::Hashes(hashes.into()));
                if last {
                    self.outbox.close();
                }
                self.outbox.pump(&mut self.core, set, out);
                self.settle(out, Step::Streaming { path, receiving });
            }
            message => {
                let step = Step::Streaming { path, receiving };
                return Err(out_of_order(&step, &message));
            }
        }
        Ok(())
    }

    /// Finishes once nothing is owed either way; otherwise goes on at `next`.
    fn settle(&mut self, out: &mut Output, next: Step) {
        match next {
            Step::Streaming {
                path,
                receiving: false,
            } if self.outbox.is_settled() => self.core.finish(out, path),
            next => self.step = next,
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
    /// and pushes what the responder lacks, both paged.
    fn exchange(&mut self, decoder: &Decoder, set: &impl SetView, out: &mut Output) {
        let mut wanted = decoder.remote_only().to_vec();
        wanted.sort_unstable();
        let receiving = !wanted.is_empty();
        if receiving {
            self.outbox.push(Source::WantList(VecDeque::from(wanted)));
            self.core.stats.round_trips += 1;
        }
        self.outbox
            .push(Source::Ids(decoder.local_only().iter().copied().collect()));
        self.outbox.close();
        self.outbox.pump(&mut self.core, set, out);

        let step = Step::Streaming {
            path: Path::Symbols,
            receiving,
        };
        self.settle(out, step);
    }

    /// Sends our hash list, paged; the responder answers each chunk with
    /// what it lacks and what we lack.
    fn fall_back(&mut self, set: &impl SetView, out: &mut Output) {
        self.outbox.push(Source::HashList {
            after: None,
            done: false,
        });
        self.outbox.pump(&mut self.core, set, out);
        self.core.stats.round_trips += 1;
        self.step = Step::Streaming {
            path: Path::Fallback,
            receiving: true,
        };
    }
}

fn out_of_order(step: &Step, message: &Message) -> SyncError {
    SyncError::OutOfOrder {
        step: step.name(),
        message: message.kind(),
    }
}
