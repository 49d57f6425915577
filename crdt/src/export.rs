//! The export format: one poll's full signed state as JSON Lines.
//!
//! Specified in `docs/export-format.md`. Line 1 is the header; then the poll,
//! then one line per entry, then one line per node attestation. Every signed
//! object travels as the hex of its canonical encoding, so a verifier checks
//! exactly the bytes that were signed. Each line stands alone, so exports can
//! be written and read as streams.

use serde::{Deserialize, Serialize};

use crate::encoding::unhex;
use crate::error::DecodeError;
use crate::ids::{PollId, PublicKey};
use crate::poll::Poll;
use crate::statement::Attestation;
use crate::vote::Vote;

/// The value of the header's `format` field.
pub const FORMAT: &str = "votemesh-export";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The longest line a valid export can hold (a poll with the largest
/// allow-list, hex-encoded, is about 6.4 MB). Readers may refuse longer lines
/// without buffering them.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version.
    pub version: u32,
    /// The poll exported.
    pub poll: PollId,
    /// The node that wrote the export.
    pub node: PublicKey,
    /// When the export was taken, unix ms.
    pub exported_at: u64,
}

impl Header {
    /// A header for the current format version.
    pub fn new(poll: PollId, node: PublicKey, exported_at: u64) -> Self {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            poll,
            node,
            exported_at,
        }
    }
}

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The header (line 1).
    Header(Header),
    /// The signed poll definition.
    Poll(Poll),
    /// One entry of the set.
    Entry(Vote),
    /// A node's attestation of the set.
    Attestation(Attestation),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        #[serde(flatten)]
        header: Header,
    },
    Poll {
        data: String,
    },
    Entry {
        data: String,
    },
    Attestation {
        data: String,
    },
}

/// How [`Record::to_line`] starts an entry line.
const ENTRY_PREFIX: &str = "{\"type\":\"entry\",\"data\":\"";

/// Why an export line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a JSON object of a known record type.
    #[error("not a valid export record: {0}")]
    Json(String),
    /// The `data` field is not hex.
    #[error("`data` is not hex")]
    Hex,
    /// The signed object inside does not decode.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The line is longer than any valid record ([`MAX_LINE_BYTES`]).
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
}

impl Record {
    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        let line = match self {
            Record::Header(header) => Line::Header {
                header: header.clone(),
            },
            Record::Poll(poll) => Line::Poll {
                data: hex::encode(poll.encode()),
            },
            Record::Entry(vote) => Line::Entry {
                data: hex::encode(vote.encoded()),
            },
            Record::Attestation(a) => Line::Attestation {
                data: hex::encode(a.encode()),
            },
        };
        serde_json::to_string(&line).expect("records serialize")
    }

    /// Parses one line (surrounding whitespace allowed).
    pub fn from_line(line: &str) -> Result<Record, RecordError> {
        if line.len() > MAX_LINE_BYTES {
            return Err(RecordError::TooLong);
        }
        // Fast path for the entry lines this crate writes (nearly every line of
        // an export): the same JSON, read without building a value for it.
        if let Some(data) = line
            .trim()
            .strip_prefix(ENTRY_PREFIX)
            .and_then(|rest| rest.strip_suffix("\"}"))
        {
            if let Some(bytes) = unhex(data.as_bytes()) {
                return Ok(Record::Entry(Vote::decode_owned(bytes)?));
            }
        }
        let parsed: Line =
            serde_json::from_str(line.trim()).map_err(|e| RecordError::Json(e.to_string()))?;
        let unhex = |data: &str| hex::decode(data).map_err(|_| RecordError::Hex);
        Ok(match parsed {
            Line::Header { header } => Record::Header(header),
            Line::Poll { data } => Record::Poll(Poll::decode(&unhex(&data)?)?),
            Line::Entry { data } => Record::Entry(Vote::decode(&unhex(&data)?)?),
            Line::Attestation { data } => Record::Attestation(Attestation::decode(&unhex(&data)?)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Digest;
    use crate::poll::tests::sample_draft;
    use crate::signature::SecretKey;
    use crate::vote::tests::body;

    #[test]
    fn every_record_kind_round_trips_through_a_line() {
        let node = SecretKey::from_seed(&[8; 32]);
        let poll = sample_draft()
            .sign(&SecretKey::from_seed(&[9; 32]))
            .unwrap();
        let records = vec![
            Record::Header(Header::new(poll.id, node.public(), 42)),
            Record::Entry(body(poll.id, 1, 1).sign(&SecretKey::from_seed(&[1; 32]))),
            Record::Attestation(Attestation::sign(&node, poll.id, Digest([0; 32]), 1, 43)),
            Record::Poll(poll),
        ];

        for record in records {
            let line = record.to_line();
            assert!(!line.contains('\n'));
            assert_eq!(Record::from_line(&line).unwrap(), record);
        }
    }

    #[test]
    fn entry_lines_read_the_same_with_or_without_the_fast_path() {
        let vote = body(crate::ids::PollId([7; 32]), 1, 1).sign(&SecretKey::from_seed(&[1; 32]));
        let line = Record::Entry(vote.clone()).to_line();
        assert!(
            line.starts_with(ENTRY_PREFIX),
            "the fast path matches what we write"
        );
        let spaced = line.replace("\",\"", "\", \"");

        assert_eq!(
            Record::from_line(&line).unwrap(),
            Record::Entry(vote.clone())
        );
        assert_eq!(Record::from_line(&spaced).unwrap(), Record::Entry(vote));
        let bad = line.replace("\"}", "zz\"}");
        assert_eq!(Record::from_line(&bad), Err(RecordError::Hex));
    }

    #[test]
    fn bad_lines_get_clear_errors() {
        assert!(matches!(Record::from_line("{"), Err(RecordError::Json(_))));
        assert!(matches!(
            Record::from_line(r#"{"type":"entry","data":"zz"}"#),
            Err(RecordError::Hex)
        ));
        assert!(matches!(
            Record::from_line(r#"{"type":"entry","data":"00"}"#),
            Err(RecordError::Decode(_))
        ));
        assert!(Record::from_line(r#"{"type":"ballot","data":"00"}"#).is_err());
    }
}
