//! Streaming exports without pinning threads or copies per client.
//!
//! An export reads a shared snapshot of the poll's entries
//! ([`crate::state::PollSlot::snapshot`]: one `Arc` per state, shared by every
//! export of it) and encodes the NDJSON lines chunk by chunk, only when hyper
//! asks for the next chunk. A client that reads slowly therefore holds a few
//! buffered chunks and a reference count, never a thread; one that stops
//! reading is cut off by the connection's stall limit. At most `max_exports`
//! run at once, each holding a permit until its body is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use crdt::export::{Header, Record};
use crdt::{Attestation, DigestBuilder, SecretKey, Vote};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::Stream;

use crate::clock::now_ms;

/// Export lines are sent in chunks of about this many bytes.
const CHUNK: usize = 64 * 1024;

/// Holds one of the `max_exports` slots, and counts it in the gauge.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    active: Gauge,
}

impl Slot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, active: Gauge) -> Slot {
        active.inc();
        Slot {
            _permit: permit,
            active,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// The body of one export: header, poll, entries, then an attestation over
/// exactly the entries written.
pub(crate) struct Lines {
    key: Arc<SecretKey>,
    poll: Arc<crdt::Poll>,
    entries: Arc<[Vote]>,
    next: usize,
    digest: DigestBuilder,
    started: bool,
    done: bool,
    _slot: Slot,
}

impl Lines {
    pub(crate) fn new(
        key: Arc<SecretKey>,
        poll: Arc<crdt::Poll>,
        entries: Arc<[Vote]>,
        slot: Slot,
    ) -> Lines {
        Lines {
            key,
            poll,
            entries,
            next: 0,
            digest: DigestBuilder::new(),
            started: false,
            done: false,
            _slot: slot,
        }
    }

    /// The next chunk of lines; `None` after the attestation.
    fn chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.done {
            return None;
        }
        let mut buf = String::with_capacity(CHUNK + 4096);
        if !self.started {
            self.started = true;
            let header = Header::new(self.poll.id, self.key.public(), now_ms());
            push(&mut buf, &Record::Header(header));
            push(&mut buf, &Record::Poll((*self.poll).clone()));
        }

        while buf.len() < CHUNK {
            let Some(vote) = self.entries.get(self.next) else {
                break;
            };
            self.next += 1;
            if let Err(e) = self.digest.push(vote.hash()) {
                // The snapshot comes from a BTreeMap: out of order means a broken invariant.
                tracing::error!(poll = %self.poll.id.short(), error = %e, "export aborted");
                self.done = true;
                return Some(Err(io::Error::other(e)));
            }
            push(&mut buf, &Record::Entry(vote.clone()));
        }

        if self.next == self.entries.len() {
            let (root, count) = (self.digest.root(), self.digest.count());
            let attestation = Attestation::sign(&self.key, self.poll.id, root, count, now_ms());
            push(&mut buf, &Record::Attestation(attestation));
            self.done = true;
        }
        Some(Ok(Bytes::from(buf)))
    }
}

fn push(buf: &mut String, record: &Record) {
    buf.push_str(&record.to_line());
    buf.push('\n');
}

impl Stream for Lines {
    type Item = io::Result<Bytes>;

    /// Encodes one chunk (about 200 entries) on the spot: hyper polls again
    /// only once it has room, which is the backpressure.
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().chunk())
    }
}
