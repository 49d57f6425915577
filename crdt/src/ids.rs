//! Identifier newtypes. Each prints as lowercase hex (`Display`), has a short
//! form for logs (`short()`), and travels in JSON as a hex string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DecodeError;

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the identifier in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The first eight hex digits, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = DecodeError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $len];
                if !crate::encoding::unhex_to_slice(s.as_bytes(), &mut out) {
                    return Err(DecodeError::Hex {
                        field: stringify!($name),
                        expected: $len,
                    });
                }
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // On the stack: receipts carry a dozen of these each.
                let mut text = [0u8; 2 * $len];
                hex::encode_to_slice(self.0, &mut text).expect("twice the length");
                s.serialize_str(std::str::from_utf8(&text).expect("hex is ascii"))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A poll's identity: SHA-256 of its canonical unsigned encoding, so every
    /// vote names the exact definition (title, options, window, rule) it is for.
    PollId,
    32
);

hex_id!(
    /// An entry's identity: SHA-256 of the vote's full signed encoding. The
    /// grow-only set is keyed by it; the client's `VoteId` is not trusted for
    /// identity, so nobody can block a voter by reusing their UUID.
    EntryHash,
    32
);

hex_id!(
    /// An ed25519 public key as its 32-byte encoding (voter, organizer,
    /// registrar or node). Whether the encoding is acceptable is decided by the
    /// acceptance rule at verification time, not at parse time.
    PublicKey,
    32
);

hex_id!(
    /// An ed25519 signature: the encoded point `R` then the scalar `S`.
    Signature,
    64
);

hex_id!(
    /// The root of the Merkle tree over a poll's sorted entry hashes.
    Digest,
    32
);

/// The client-chosen idempotency key of a vote (a UUID). It is part of the
/// signed vote but not its identity: see [`EntryHash`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VoteId(pub uuid::Uuid);

impl VoteId {
    /// Wraps 16 raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for VoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for VoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VoteId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_wrong_length() {
        let id = PollId([0xab; 32]);
        let text = id.to_string();

        assert_eq!(text.parse::<PollId>().unwrap(), id);
        assert!("abcd".parse::<PollId>().is_err());
        assert!(text.replace('a', "g").parse::<PollId>().is_err());
    }

    #[test]
    fn json_form_is_a_hex_string() {
        let key = PublicKey([1; 32]);
        let json = serde_json::to_string(&key).unwrap();

        assert_eq!(json, format!("\"{}\"", "01".repeat(32)));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
    }
}
