//! The paged send side of a session: what one side still owes its peer,
//! produced lazily, one window at a time.
//!
//! Everything long a side sends (its whole set, wanted entries, its hash
//! list in the fallback) goes through an [`Outbox`]. It sends at most
//! [`PAGE_BYTES`] of messages, ends the page with [`Message::PageEnd`] and
//! waits for the peer's [`Message::NextPage`]. What is still owed is held as
//! a cursor into the set or a list of ids or hashes, never as entries, so a
//! million-entry transfer holds one page of messages at a time.

use std::collections::VecDeque;
use std::ops::Bound;

use crate::ids::{EntryHash, PollId};
use crate::sync::message::{Message, ENTRIES_SOFT_BYTES, MAX_ENTRIES, MAX_HASHES, MAX_IDS};
use crate::sync::session::{Core, Output};
use crate::sync::view::SetView;
use crate::vote::Vote;

/// Most bytes of messages a side sends before it waits for
/// [`Message::NextPage`]. One page, plus the few small messages around it,
/// is what one request or response of a transport carries.
pub const PAGE_BYTES: usize = 4 << 20;

/// One thing a side still owes, in the order it is sent.
#[derive(Debug)]
pub(super) enum Source {
    /// Every entry of the set with a hash after the cursor, ascending.
    All { after: Option<EntryHash> },
    /// The entries with these short ids.
    Ids(VecDeque<u64>),
    /// The entries with these hashes.
    Hashes(VecDeque<EntryHash>),
    /// `Want` messages for these short ids; the last says `last`.
    WantList(VecDeque<u64>),
    /// The set's own hashes after the cursor, as `Hashes` chunks; the last
    /// chunk says `last`.
    HashList {
        after: Option<EntryHash>,
        done: bool,
    },
}

/// One step of a source: entries for an `Entries` message, or a message.
enum Piece {
    Votes(Vec<Vote>),
    Message(Message),
}

/// What one side still owes its peer, and where its current page stands.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    queue: VecDeque<Source>,
    /// Taken from a source when the page filled up; sent first next page.
    held: Option<Vec<Vote>>,
    held_message: Option<Message>,
    /// Nothing more will be queued; the last `Entries` says `last`.
    closed: bool,
    /// Something was queued or the outbox was closed.
    opened: bool,
    /// The final `Entries` went out.
    finished: bool,
    /// A `PageEnd` went out and no `NextPage` came back yet.
    paused: bool,
    /// Bytes sent in the current page.
    window: usize,
}

impl Outbox {
    /// Queues `source` after what is already owed.
    pub(super) fn push(&mut self, source: Source) {
        self.opened = true;
        self.queue.push_back(source);
    }

    /// No more sources will come: the stream of entries ends with `last`
    /// once the queue is drained.
    pub(super) fn close(&mut self) {
        self.opened = true;
        self.closed = true;
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Nothing owed: never used, or the last entries went out.
    pub(super) fn is_settled(&self) -> bool {
        !self.opened || self.finished
    }

    /// The peer asked for the next page.
    pub(super) fn resume(&mut self) {
        self.paused = false;
        self.window = 0;
    }

    /// Sends what is owed until the page is full or the queue is drained.
    pub(super) fn pump(&mut self, core: &mut Core, set: &impl SetView, out: &mut Output) {
        if self.paused || self.finished {
            return;
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        loop {
            let piece = match (self.held.take(), self.held_message.take()) {
                (Some(votes), _) => Some(Piece::Votes(votes)),
                (None, Some(message)) => Some(Piece::Message(message)),
                (None, None) => self.next_piece(core.poll, set),
            };
            let Some(piece) = piece else {
                if self.closed {
                    flush(core, out, &mut batch, &mut batch_bytes, true);
                    self.finished = true;
                } else {
                    flush(core, out, &mut batch, &mut batch_bytes, false);
                }
                return;
            };

            // Checked with the next piece in hand, so a page that ends
            // exactly at the end of the stream says `last`, not `PageEnd`.
            if self.window >= PAGE_BYTES {
                match piece {
                    Piece::Votes(votes) => self.held = Some(votes),
                    Piece::Message(message) => self.held_message = Some(message),
                }
                flush(core, out, &mut batch, &mut batch_bytes, false);
                let poll = core.poll;
                core.send(out, Message::PageEnd { poll });
                self.paused = true;
                return;
            }

            match piece {
                Piece::Votes(votes) => {
                    for vote in votes {
                        let len = vote.encoded().len();
                        if batch.len() == MAX_ENTRIES || batch_bytes + len > ENTRIES_SOFT_BYTES {
                            flush(core, out, &mut batch, &mut batch_bytes, false);
                        }
                        self.window += 4 + len;
                        batch_bytes += len;
                        batch.push(vote);
                    }
                }
                Piece::Message(message) => {
                    flush(core, out, &mut batch, &mut batch_bytes, false);
                    self.window += message.encoded_len();
                    core.send(out, message);
                }
            }
        }
    }

    /// The next piece of the first source that has one.
    fn next_piece(&mut self, poll: PollId, set: &impl SetView) -> Option<Piece> {
        while let Some(source) = self.queue.front_mut() {
            if let Some(piece) = source.next(poll, set) {
                return Some(piece);
            }
            self.queue.pop_front();
        }
        None
    }
}

impl Source {
    fn next(&mut self, poll: PollId, set: &impl SetView) -> Option<Piece> {
        match self {
            Source::All { after } => {
                let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
                let hash = set.hashes((lower, Bound::Unbounded)).next()?;
                *after = Some(hash);
                Some(Piece::Votes(set.get(&hash).cloned().into_iter().collect()))
            }
            Source::Ids(ids) => {
                let id = ids.pop_front()?;
                Some(Piece::Votes(set.with_short_id(id).cloned().collect()))
            }
            Source::Hashes(hashes) => {
                let hash = hashes.pop_front()?;
                Some(Piece::Votes(set.get(&hash).cloned().into_iter().collect()))
            }
            Source::WantList(ids) => {
                if ids.is_empty() {
                    return None;
                }
                let n = ids.len().min(MAX_IDS);
                let chunk: Vec<u64> = ids.drain(..n).collect();
                Some(Piece::Message(Message::Want {
                    poll,
                    ids: chunk,
                    last: ids.is_empty(),
                }))
            }
            Source::HashList { after, done } => {
                if *done {
                    return None;
                }
                let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
                let mut rest = set.hashes((lower, Bound::Unbounded));
                let hashes: Vec<EntryHash> = rest.by_ref().take(MAX_HASHES).collect();
                let last = rest.next().is_none();
                *done = last;
                *after = hashes.last().copied().or(*after);
                Some(Piece::Message(Message::Hashes { poll, hashes, last }))
            }
        }
    }
}

fn flush(core: &mut Core, out: &mut Output, batch: &mut Vec<Vote>, bytes: &mut usize, last: bool) {
    if batch.is_empty() && !last {
        return;
    }
    *bytes = 0;
    let message = Message::Entries {
        poll: core.poll,
        entries: std::mem::take(batch),
        last,
    };
    core.send(out, message);
}
