//! The sync protocol's messages and their strict binary encoding.
//!
//! A message is the tag `votemesh/sync/v1` and a NUL, a kind byte, the poll
//! id, then the kind's fields in the crate's canonical style: fixed-width
//! big-endian integers, `u32` list lengths bounded before anything is
//! allocated. Symbol counts are LEB128 varints (minimal form only). Lists of
//! ids and hashes are strictly ascending. One message has one encoding.

use crate::encoding::{check_len, Reader, Writer};
use crate::error::DecodeError;
use crate::ids::{Digest, EntryHash, PollId};
use crate::sync::riblt::Symbol;
use crate::vote::Vote;

/// The tag every sync message starts with.
pub const TAG: &str = "votemesh/sync/v1";
/// Most coded symbols in one message (about 1.1 MiB).
pub const MAX_SYMBOLS: usize = 65_536;
/// Most short ids in one [`Message::Want`] (1 MiB).
pub const MAX_IDS: usize = 131_072;
/// Most hashes in one [`Message::Hashes`] or [`Message::WantHashes`] (1 MiB).
pub const MAX_HASHES: usize = 32_768;
/// Most entries in one [`Message::Entries`].
pub const MAX_ENTRIES: usize = 1_000;
/// Senders close an [`Message::Entries`] once it holds this many entry bytes.
pub const ENTRIES_SOFT_BYTES: usize = 1 << 20;
/// Largest encoded entry accepted (a vote with a credential is under 400).
pub const MAX_ENTRY_BYTES: usize = 4_096;

/// A sync message. Every message names the poll it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Initiator: here is my set's size and digest.
    Hello {
        /// The poll.
        poll: PollId,
        /// Entries the initiator holds.
        count: u64,
        /// Its digest.
        digest: Digest,
    },
    /// Responder: my digest is the same; nothing to do.
    Same {
        /// The poll.
        poll: PollId,
    },
    /// Responder: coded symbols `[start, start + symbols.len())` of my set.
    Symbols {
        /// The poll.
        poll: PollId,
        /// Entries the responder holds.
        count: u64,
        /// Its digest.
        digest: Digest,
        /// Index of the first symbol.
        start: u64,
        /// The symbols; every `count` is non-negative.
        symbols: Vec<Symbol>,
    },
    /// Initiator: could not decode yet; send symbols up to index `until`.
    More {
        /// The poll.
        poll: PollId,
        /// End (exclusive) of the symbols wanted.
        until: u64,
    },
    /// Send me the entries with these short ids (ascending).
    Want {
        /// The poll.
        poll: PollId,
        /// Short ids, strictly ascending.
        ids: Vec<u64>,
        /// Whether this is the last `Want` of the session.
        last: bool,
    },
    /// Entries, as their canonical encodings (checked for form only).
    Entries {
        /// The poll.
        poll: PollId,
        /// The entries.
        entries: Vec<Vote>,
        /// Whether the sender has no more entries to send in this session.
        last: bool,
    },
    /// Responder with an empty set: send me everything.
    WantAll {
        /// The poll.
        poll: PollId,
    },
    /// Initiator, fallback: my full list of entry hashes, in ascending chunks.
    Hashes {
        /// The poll.
        poll: PollId,
        /// Hashes, strictly ascending, after those of earlier chunks.
        hashes: Vec<EntryHash>,
        /// Whether this chunk ends the list.
        last: bool,
    },
    /// Responder, fallback: send me the entries with these hashes.
    WantHashes {
        /// The poll.
        poll: PollId,
        /// Hashes, strictly ascending.
        hashes: Vec<EntryHash>,
        /// Whether this is the last `WantHashes` of the session.
        last: bool,
    },
    /// Either side: a page of what I owe you ended (at most
    /// [`PAGE_BYTES`](crate::sync::PAGE_BYTES)); more follows once you send
    /// [`Message::NextPage`].
    PageEnd {
        /// The poll.
        poll: PollId,
    },
    /// Either side: I took your page; send the next one.
    NextPage {
        /// The poll.
        poll: PollId,
    },
}

mod kind {
    pub(super) const HELLO: u8 = 1;
    pub(super) const SAME: u8 = 2;
    pub(super) const SYMBOLS: u8 = 3;
    pub(super) const MORE: u8 = 4;
    pub(super) const WANT: u8 = 5;
    pub(super) const ENTRIES: u8 = 6;
    pub(super) const WANT_ALL: u8 = 7;
    pub(super) const HASHES: u8 = 8;
    pub(super) const WANT_HASHES: u8 = 9;
    pub(super) const PAGE_END: u8 = 10;
    pub(super) const NEXT_PAGE: u8 = 11;
}

/// Tag, NUL, kind byte, poll id.
const HEADER_LEN: usize = TAG.len() + 1 + 1 + 32;

impl Message {
    /// The poll the message is about.
    pub fn poll(&self) -> PollId {
        match self {
            Message::Hello { poll, .. }
            | Message::Same { poll }
            | Message::Symbols { poll, .. }
            | Message::More { poll, .. }
            | Message::Want { poll, .. }
            | Message::Entries { poll, .. }
            | Message::WantAll { poll }
            | Message::Hashes { poll, .. }
            | Message::WantHashes { poll, .. }
            | Message::PageEnd { poll }
            | Message::NextPage { poll } => *poll,
        }
    }

    /// The kind's name, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Same { .. } => "same",
            Message::Symbols { .. } => "symbols",
            Message::More { .. } => "more",
            Message::Want { .. } => "want",
            Message::Entries { .. } => "entries",
            Message::WantAll { .. } => "want_all",
            Message::Hashes { .. } => "hashes",
            Message::WantHashes { .. } => "want_hashes",
            Message::PageEnd { .. } => "page_end",
            Message::NextPage { .. } => "next_page",
        }
    }

    /// The canonical encoding.
    ///
    /// Senders keep lists within the `MAX_*` bounds; a longer list encodes but
    /// its receiver refuses it.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(TAG);
        match self {
            Message::Hello {
                poll,
                count,
                digest,
            } => {
                w.u8(kind::HELLO).raw(&poll.0).u64(*count).raw(&digest.0);
            }
            Message::Same { poll } => {
                w.u8(kind::SAME).raw(&poll.0);
            }
            Message::Symbols {
                poll,
                count,
                digest,
                start,
                symbols,
            } => {
                w.u8(kind::SYMBOLS).raw(&poll.0).u64(*count).raw(&digest.0);
                w.u64(*start).u32(symbols.len() as u32);
                for s in symbols {
                    w.u64(s.key).u64(s.check);
                    write_varint(&mut w, s.count as u64);
                }
            }
            Message::More { poll, until } => {
                w.u8(kind::MORE).raw(&poll.0).u64(*until);
            }
            Message::Want { poll, ids, last } => {
                w.u8(kind::WANT).raw(&poll.0).u32(ids.len() as u32);
                for id in ids {
                    w.u64(*id);
                }
                w.u8(u8::from(*last));
            }
            Message::Entries {
                poll,
                entries,
                last,
            } => {
                w.u8(kind::ENTRIES).raw(&poll.0).u32(entries.len() as u32);
                for vote in entries {
                    w.bytes(vote.encoded());
                }
                w.u8(u8::from(*last));
            }
            Message::WantAll { poll } => {
                w.u8(kind::WANT_ALL).raw(&poll.0);
            }
            Message::Hashes { poll, hashes, last } => {
                w.u8(kind::HASHES).raw(&poll.0);
                write_hashes(&mut w, hashes, *last);
            }
            Message::WantHashes { poll, hashes, last } => {
                w.u8(kind::WANT_HASHES).raw(&poll.0);
                write_hashes(&mut w, hashes, *last);
            }
            Message::PageEnd { poll } => {
                w.u8(kind::PAGE_END).raw(&poll.0);
            }
            Message::NextPage { poll } => {
                w.u8(kind::NEXT_PAGE).raw(&poll.0);
            }
        }
        w.finish()
    }

    /// `self.encode().len()`, without encoding.
    pub fn encoded_len(&self) -> usize {
        let body = match self {
            Message::Hello { .. } => 8 + 32,
            Message::Same { .. }
            | Message::WantAll { .. }
            | Message::PageEnd { .. }
            | Message::NextPage { .. } => 0,
            Message::Symbols { symbols, .. } => {
                let counts: usize = symbols.iter().map(|s| varint_len(s.count as u64)).sum();
                8 + 32 + 8 + 4 + 16 * symbols.len() + counts
            }
            Message::More { .. } => 8,
            Message::Want { ids, .. } => 4 + 8 * ids.len() + 1,
            Message::Entries { entries, .. } => {
                let bytes: usize = entries.iter().map(|v| 4 + v.encoded().len()).sum();
                4 + bytes + 1
            }
            Message::Hashes { hashes, .. } | Message::WantHashes { hashes, .. } => {
                4 + 32 * hashes.len() + 1
            }
        };
        HEADER_LEN + body
    }

    /// Decodes a message, strictly: any malformed, truncated, oversized or
    /// non-canonical input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes, TAG)?;
        let kind = r.u8("kind")?;
        let poll = PollId(r.array("poll")?);
        let message = match kind {
            kind::HELLO => Message::Hello {
                poll,
                count: r.u64("count")?,
                digest: Digest(r.array("digest")?),
            },
            kind::SAME => Message::Same { poll },
            kind::SYMBOLS => read_symbols(&mut r, poll)?,
            kind::MORE => Message::More {
                poll,
                until: r.u64("until")?,
            },
            kind::WANT => {
                let n = read_len(&mut r, "ids", MAX_IDS, 8)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.u64("ids")?;
                    if ids.last().is_some_and(|&prev| prev >= id) {
                        return Err(DecodeError::NotCanonical { field: "ids" });
                    }
                    ids.push(id);
                }
                let last = read_bool(&mut r, "last")?;
                Message::Want { poll, ids, last }
            }
            kind::ENTRIES => {
                let n = read_len(&mut r, "entries", MAX_ENTRIES, 4)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(Vote::decode(r.bytes("entry", 1, MAX_ENTRY_BYTES)?)?);
                }
                let last = read_bool(&mut r, "last")?;
                Message::Entries {
                    poll,
                    entries,
                    last,
                }
            }
            kind::WANT_ALL => Message::WantAll { poll },
            kind::HASHES => {
                let (hashes, last) = read_hashes(&mut r)?;
                Message::Hashes { poll, hashes, last }
            }
            kind::WANT_HASHES => {
                let (hashes, last) = read_hashes(&mut r)?;
                Message::WantHashes { poll, hashes, last }
            }
            kind::PAGE_END => Message::PageEnd { poll },
            kind::NEXT_PAGE => Message::NextPage { poll },
            value => {
                return Err(DecodeError::UnknownTag {
                    field: "kind",
                    value,
                })
            }
        };
        r.finish()?;
        Ok(message)
    }
}

fn write_hashes(w: &mut Writer, hashes: &[EntryHash], last: bool) {
    w.u32(hashes.len() as u32);
    for hash in hashes {
        w.raw(&hash.0);
    }
    w.u8(u8::from(last));
}

fn write_varint(w: &mut Writer, mut value: u64) {
    while value >= 0x80 {
        w.u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    w.u8(value as u8);
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A list length: at most `max`, and not more items than bytes left allow,
/// so a lying length never allocates.
fn read_len(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
    min_item_bytes: usize,
) -> Result<usize, DecodeError> {
    let n = r.u32(field)? as usize;
    check_len(field, n, 0, max)?;
    if n * min_item_bytes > r.remaining() {
        return Err(DecodeError::Truncated { field });
    }
    Ok(n)
}

fn read_bool(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::UnknownTag { field, value }),
    }
}

/// A minimal LEB128 varint no larger than `i64::MAX`.
fn read_count(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    const FIELD: &str = "symbol.count";
    let mut value = 0u64;
    for i in 0..9 {
        let byte = r.u8(FIELD)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A multi-byte varint ending in a zero group has a shorter form.
            if i > 0 && byte == 0 {
                return Err(DecodeError::NotCanonical { field: FIELD });
            }
            return Ok(value as i64);
        }
    }
    // Nine groups hold 63 bits: anything longer exceeds i64::MAX.
    Err(DecodeError::NotCanonical { field: FIELD })
}

fn read_symbols(r: &mut Reader<'_>, poll: PollId) -> Result<Message, DecodeError> {
    let count = r.u64("count")?;
    let digest = Digest(r.array("digest")?);
    let start = r.u64("start")?;
    let n = read_len(r, "symbols", MAX_SYMBOLS, 17)?;
    let mut symbols = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.u64("symbol.key")?;
        let check = r.u64("symbol.check")?;
        let count = read_count(r)?;
        symbols.push(Symbol { key, check, count });
    }
    Ok(Message::Symbols {
        poll,
        count,
        digest,
        start,
        symbols,
    })
}

fn read_hashes(r: &mut Reader<'_>) -> Result<(Vec<EntryHash>, bool), DecodeError> {
    let n = read_len(r, "hashes", MAX_HASHES, 32)?;
    let mut hashes: Vec<EntryHash> = Vec::with_capacity(n);
    for _ in 0..n {
        let hash = EntryHash(r.array("hashes")?);
        if hashes.last().is_some_and(|prev| *prev >= hash) {
            return Err(DecodeError::NotCanonical { field: "hashes" });
        }
        hashes.push(hash);
    }
    Ok((hashes, read_bool(r, "last")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PublicKey, Signature, VoteId};
    use crate::vote::VoteBody;

    fn vote(seq: u64) -> Vote {
        let body = VoteBody {
            poll: PollId([7; 32]),
            voter: PublicKey([seq as u8; 32]),
            choice: 1,
            seq,
            vote_id: VoteId::from_bytes([3; 16]),
            cast_at: 5,
            credential: None,
        };
        Vote::new(body, Signature([0; 64]))
    }

    fn examples() -> Vec<Message> {
        let poll = PollId([7; 32]);
        let symbol = |count| Symbol {
            key: 0x0102_0304_0506_0708,
            check: u64::MAX,
            count,
        };
        vec![
            Message::Hello {
                poll,
                count: 3,
                digest: Digest([9; 32]),
            },
            Message::Same { poll },
            Message::Symbols {
                poll,
                count: 1 << 40,
                digest: Digest([1; 32]),
                start: 32,
                symbols: vec![symbol(0), symbol(127), symbol(128), symbol(i64::MAX)],
            },
            Message::More { poll, until: 96 },
            Message::Want {
                poll,
                ids: vec![1, 5, u64::MAX],
                last: true,
            },
            Message::Entries {
                poll,
                entries: vec![vote(1), vote(2)],
                last: false,
            },
            Message::WantAll { poll },
            Message::Hashes {
                poll,
                hashes: vec![EntryHash([1; 32]), EntryHash([2; 32])],
                last: true,
            },
            Message::WantHashes {
                poll,
                hashes: vec![],
                last: false,
            },
            Message::PageEnd { poll },
            Message::NextPage { poll },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_knows_its_length() {
        for message in examples() {
            let bytes = message.encode();
            assert_eq!(bytes.len(), message.encoded_len(), "{}", message.kind());
            assert_eq!(Message::decode(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn wire_layout_is_pinned() {
        // A change here breaks compatibility with deployed peers: bump TAG.
        let poll = PollId([7; 32]);
        let more = Message::More { poll, until: 96 };
        let symbols = Message::Symbols {
            poll,
            count: 2,
            digest: Digest([1; 32]),
            start: 0,
            symbols: vec![Symbol {
                key: 0x0102_0304_0506_0708,
                check: 0x1112_1314_1516_1718,
                count: 300,
            }],
        };

        assert_eq!(hex::encode(more.encode()), MORE_HEX);
        assert_eq!(hex::encode(symbols.encode()), SYMBOLS_HEX);
    }

    const MORE_HEX: &str = "766f74656d6573682f73796e632f7631000407070707070707070707070707070707\
        070707070707070707070707070707070000000000000060";
    const SYMBOLS_HEX: &str =
        "766f74656d6573682f73796e632f76310003070707070707070707070707070707070707\
        070707070707070707070707070700000000000000020101010101010101010101010101\
        010101010101010101010101010101010101000000000000000000000001010203040506\
        07081112131415161718ac02";

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for message in examples() {
            let bytes = message.encode();
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{} cut {cut}",
                    message.kind()
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err());
        }
    }

    #[test]
    fn varints_are_minimal_and_bounded() {
        let header = |tail: &[u8]| {
            let mut w = Writer::new(TAG);
            w.u8(kind::SYMBOLS)
                .raw(&[0; 32])
                .u64(0)
                .raw(&[0; 32])
                .u64(0)
                .u32(1);
            w.u64(0).u64(0).raw(tail);
            w.finish()
        };

        assert!(Message::decode(&header(&[0x05])).is_ok());
        assert!(matches!(
            Message::decode(&header(&[0x85, 0x00])),
            Err(DecodeError::NotCanonical { .. })
        ));
        assert!(matches!(
            Message::decode(&header(&[0xff; 9])),
            Err(DecodeError::NotCanonical { .. })
        ));
        assert!(Message::decode(&header(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
        ]))
        .is_ok());
    }

    #[test]
    fn oversized_or_lying_lengths_are_refused_before_allocating() {
        let mut w = Writer::new(TAG);
        w.u8(kind::WANT).raw(&[0; 32]).u32(MAX_IDS as u32 + 1);
        assert!(matches!(
            Message::decode(&w.finish()),
            Err(DecodeError::Length { .. })
        ));

        let mut w = Writer::new(TAG);
        w.u8(kind::HASHES)
            .raw(&[0; 32])
            .u32(MAX_HASHES as u32)
            .raw(&[1; 64]);
        assert!(matches!(
            Message::decode(&w.finish()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn unsorted_lists_unknown_kinds_and_bad_flags_are_refused() {
        let poll = PollId([7; 32]);
        let unsorted = Message::Want {
            poll,
            ids: vec![2, 1],
            last: true,
        };
        assert!(matches!(
            Message::decode(&unsorted.encode()),
            Err(DecodeError::NotCanonical { .. })
        ));

        let mut bytes = Message::Same { poll }.encode();
        bytes[TAG.len() + 1] = 42;
        assert!(matches!(
            Message::decode(&bytes),
            Err(DecodeError::UnknownTag { field: "kind", .. })
        ));

        let mut bytes = Message::More { poll, until: 1 }.encode();
        bytes.truncate(TAG.len() + 1);
        assert!(Message::decode(&bytes).is_err());

        let want = Message::Want {
            poll,
            ids: vec![],
            last: true,
        };
        let mut bytes = want.encode();
        *bytes.last_mut().unwrap() = 2;
        assert!(matches!(
            Message::decode(&bytes),
            Err(DecodeError::UnknownTag { field: "last", .. })
        ));
    }
}
