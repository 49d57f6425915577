//! The side that answers a session: sends coded symbols of its set, serves
//! wanted entries, and compares hash lists in the fallback.

use std::ops::Bound;

use crate::ids::{Digest, EntryHash, PollId};
use crate::sync::error::SyncError;
use crate::sync::message::Message;
use crate::sync::outbox::{Outbox, Source};
use crate::sync::riblt::Encoder;
use crate::sync::session::{
    first_request, send_symbols, symbol_cap, Config, Core, Output, Path, Stats,
};
use crate::sync::view::SetView;

/// The side that answers a session.
#[derive(Debug)]
pub struct Responder {
    core: Core,
    step: Answer,
    outbox: Outbox,
}

#[derive(Debug)]
enum Answer {
    AwaitHello,
    Encoding(Box<Encoding>),
    /// Entries flow in pages until both directions are done.
    Streaming {
        path: Path,
        /// The initiator's last `Entries` has not arrived yet.
        receiving: bool,
    },
    Fallback {
        after: Option<EntryHash>,
        hashes_done: bool,
    },
    Ended,
}

#[derive(Debug)]
struct Encoding {
    encoder: Encoder,
    head: (u64, Digest),
    cap: u64,
}

impl Answer {
    fn name(&self) -> &'static str {
        match self {
            Answer::AwaitHello => "awaiting hello",
            Answer::Encoding(_) => "sending symbols",
            Answer::Streaming {
                receiving: true, ..
            } => "receiving entries",
            Answer::Streaming { .. } => "sending entries",
            Answer::Fallback { .. } => "comparing hashes",
            Answer::Ended => "ended",
        }
    }
}

impl Responder {
    /// A responder for `poll`, waiting for the initiator's hello.
    pub fn new(poll: PollId, config: Config, now_ms: u64) -> Responder {
        Responder {
            core: Core::new(poll, config, now_ms),
            step: Answer::AwaitHello,
            outbox: Outbox::default(),
        }
    }

    /// Handles one message from the initiator. Any error ends the session.
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
            self.step = Answer::Ended;
        }
        result.map(|()| out)
    }

    /// Fails the session once the initiator has been silent longer than the
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
        let step = std::mem::replace(&mut self.step, Answer::Ended);
        match (step, message) {
            (Answer::AwaitHello, Message::Hello { count, digest, .. }) => {
                self.on_hello(count, digest, set, out);
            }
            (Answer::Encoding(mut e), Message::More { until, .. }) => {
                let sent = e.encoder.produced();
                if until <= sent || until > e.cap {
                    return Err(SyncError::BadSymbolRequest {
                        until,
                        sent,
                        cap: e.cap,
                    });
                }
                let symbols = e.encoder.produce((until - sent) as usize);
                send_symbols(&mut self.core, out, e.head, sent, symbols);
                self.step = Answer::Encoding(e);
            }
            (Answer::Encoding(_), message @ (Message::Want { .. } | Message::Entries { .. })) => {
                let step = Answer::Streaming {
                    path: Path::Symbols,
                    receiving: true,
                };
                self.stream(step, message, set, out)?;
            }
            (Answer::Encoding(_), Message::Hashes { hashes, last, .. }) => {
                self.on_hashes(None, hashes, last, set, out)?;
            }
            (
                Answer::Fallback {
                    after,
                    hashes_done: false,
                },
                Message::Hashes { hashes, last, .. },
            ) => {
                self.on_hashes(after, hashes, last, set, out)?;
            }
            (Answer::Fallback { after, hashes_done }, Message::Entries { entries, last, .. })
                if hashes_done || !last =>
            {
                self.core.accept(out, entries)?;
                if last {
                    let step = Answer::Streaming {
                        path: Path::Fallback,
                        receiving: false,
                    };
                    self.settle(out, step);
                } else {
                    self.step = Answer::Fallback { after, hashes_done };
                }
            }
            (step @ Answer::Fallback { .. }, Message::PageEnd { .. }) => {
                self.send_next_page(out);
                self.step = step;
            }
            (step @ Answer::Fallback { .. }, Message::NextPage { .. })
                if self.outbox.is_paused() =>
            {
                self.outbox.resume();
                self.outbox.pump(&mut self.core, set, out);
                self.step = step;
            }
            (step @ Answer::Streaming { .. }, message) => {
                self.stream(step, message, set, out)?;
            }
            (step, message) => return Err(out_of_order(&step, &message)),
        }
        Ok(())
    }

    fn on_hello(
        &mut self,
        theirs: u64,
        their_digest: Digest,
        set: &impl SetView,
        out: &mut Output,
    ) {
        let poll = self.core.poll;
        let digest = set.digest();
        let count = set.count();

        if digest == their_digest {
            self.core.send(out, Message::Same { poll });
            self.core.finish(out, Path::Same);
        } else if count == 0 {
            self.core.send(out, Message::WantAll { poll });
            self.core.stats.round_trips += 1;
            self.step = Answer::Streaming {
                path: Path::Bulk,
                receiving: true,
            };
        } else if theirs == 0 {
            self.outbox.push(Source::All { after: None });
            self.outbox.close();
            self.outbox.pump(&mut self.core, set, out);
            let step = Answer::Streaming {
                path: Path::Bulk,
                receiving: false,
            };
            self.settle(out, step);
        } else {
            let cap = symbol_cap(&self.core.config, theirs, count);
            let mut encoder = Encoder::new(set.short_ids());
            let symbols = encoder.produce(first_request(theirs, count, cap) as usize);
            send_symbols(&mut self.core, out, (count, digest), 0, symbols);
            self.step = Answer::Encoding(Box::new(Encoding {
                encoder,
                head: (count, digest),
                cap,
            }));
        }
    }

    /// Handles a message once entries are flowing: wants, entries and page
    /// ends from the initiator, and its page requests.
    fn stream(
        &mut self,
        step: Answer,
        message: Message,
        set: &impl SetView,
        out: &mut Output,
    ) -> Result<(), SyncError> {
        let Answer::Streaming { path, receiving } = step else {
            return Err(out_of_order(&step, &message));
        };
        match message {
            Message::Want { ids, last, .. }
                if receiving && path == Path::Symbols && !self.outbox.is_closed() =>
            {
                self.outbox.push(Source::Ids(ids.into()));
                if last {
                    self.outbox.close();
                }
                self.outbox.pump(&mut self.core, set, out);
                self.step = Answer::Streaming { path, receiving };
            }
            Message::Entries { entries, last, .. } if receiving => {
                self.core.accept(out, entries)?;
                let step = Answer::Streaming {
                    path,
                    receiving: !last,
                };
                self.settle(out, step);
            }
            Message::PageEnd { .. } if receiving => {
                self.send_next_page(out);
                self.step = Answer::Streaming { path, receiving };
            }
            Message::NextPage { .. } if self.outbox.is_paused() => {
                self.outbox.resume();
                self.outbox.pump(&mut self.core, set, out);
                self.settle(out, Answer::Streaming { path, receiving });
            }
            message => {
                let step = Answer::Streaming { path, receiving };
                return Err(out_of_order(&step, &message));
            }
        }
        Ok(())
    }

    fn send_next_page(&mut self, out: &mut Output) {
        let poll = self.core.poll;
        self.core.send(out, Message::NextPage { poll });
        self.core.stats.round_trips += 1;
    }

    /// Finishes once nothing is owed either way; otherwise goes on at `next`.
    fn settle(&mut self, out: &mut Output, next: Answer) {
        match next {
            Answer::Streaming {
                path,
                receiving: false,
            } if self.outbox.is_settled() => self.core.finish(out, path),
            next => self.step = next,
        }
    }

    /// Compares one ascending chunk of the initiator's hashes with ours over
    /// the same stretch of hash space, so nothing is buffered across chunks.
    fn on_hashes(
        &mut self,
        after: Option<EntryHash>,
        hashes: Vec<EntryHash>,
        last: bool,
        set: &impl SetView,
        out: &mut Output,
    ) -> Result<(), SyncError> {
        // Checked here too, not only in decoding: a bad range would panic below.
        let mut prev = after;
        for hash in &hashes {
            if prev.is_some_and(|p| *hash <= p) {
                return Err(SyncError::HashOrder { hash: *hash });
            }
            prev = Some(*hash);
        }
        let upper = match (last, hashes.last()) {
            (true, _) => Bound::Unbounded,
            (false, Some(h)) => Bound::Included(*h),
            (false, None) => {
                self.step = Answer::Fallback {
                    after,
                    hashes_done: false,
                };
                return Ok(());
            }
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let ours: Vec<EntryHash> = set.hashes((lower, upper)).collect();

        let (wanted, missing) = split_sorted(&hashes, &ours);
        if !wanted.is_empty() || last {
            let want = Message::WantHashes {
                poll: self.core.poll,
                hashes: wanted,
                last,
            };
            self.core.send(out, want);
        }
        // TODO: the hashes of what the initiator lacks are queued whole (32
        // bytes each, against ~200 per entry), so a fallback against a near
        // empty initiator holds n hashes; a source that walks our range
        // against the chunk would retire it.
        self.outbox.push(Source::Hashes(missing.into()));
        if last {
            self.outbox.close();
        }
        self.outbox.pump(&mut self.core, set, out);

        if last {
            self.core.stats.round_trips += 1;
        }
        let after = hashes.last().copied().or(after);
        self.step = Answer::Fallback {
            after,
            hashes_done: last,
        };
        Ok(())
    }
}

fn out_of_order(step: &Answer, message: &Message) -> SyncError {
    SyncError::OutOfOrder {
        step: step.name(),
        message: message.kind(),
    }
}

/// Two ascending lists: (only in `theirs`, only in `ours`).
fn split_sorted(theirs: &[EntryHash], ours: &[EntryHash]) -> (Vec<EntryHash>, Vec<EntryHash>) {
    let (mut only_theirs, mut only_ours) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < theirs.len() || j < ours.len() {
        match (theirs.get(i), ours.get(j)) {
            (Some(t), Some(o)) if t == o => {
                i += 1;
                j += 1;
            }
            (Some(t), Some(o)) if t < o => {
                only_theirs.push(*t);
                i += 1;
            }
            (Some(t), None) => {
                only_theirs.push(*t);
                i += 1;
            }
            (_, Some(o)) => {
                only_ours.push(*o);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_theirs, only_ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> EntryHash {
        EntryHash([b; 32])
    }

    #[test]
    fn split_sorted_separates_both_sides() {
        let theirs = [hash(1), hash(3), hash(5)];
        let ours = [hash(2), hash(3), hash(6)];

        let (only_theirs, only_ours) = split_sorted(&theirs, &ours);

        assert_eq!(only_theirs, vec![hash(1), hash(5)]);
        assert_eq!(only_ours, vec![hash(2), hash(6)]);
    }
}
