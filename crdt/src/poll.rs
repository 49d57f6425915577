//! A poll definition, signed by its organizer.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::encoding::{check_len, tag, Reader, Writer};
use crate::error::{DecodeError, SignedByError};
use crate::ids::{PollId, PublicKey, Signature};
use crate::signature::{self, SecretKey, SignedMessage};

/// Longest title, in UTF-8 bytes.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest option label, in UTF-8 bytes.
pub const MAX_OPTION_BYTES: usize = 100;
/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 256;
/// Most keys an allow-list poll may name.
pub const MAX_ALLOW_LIST: usize = 100_000;

/// Who may vote in a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Eligibility {
    /// Any key may vote (one effective vote per key).
    Open,
    /// A vote must carry a credential for its voter key, signed by this registrar.
    Credential {
        /// The registrar's public key.
        registrar: PublicKey,
    },
    /// Only these keys may vote. Kept sorted and free of duplicates.
    AllowList {
        /// The permitted voter keys.
        voters: Vec<PublicKey>,
    },
}

/// The unsigned content of a poll. Sign it with [`PollDraft::sign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollDraft {
    /// The organizer's public key; must match the signing key.
    pub organizer: PublicKey,
    /// When the poll was defined, unix ms (also makes two otherwise equal polls distinct).
    pub created_at: u64,
    /// Votes cast at or after this time (unix ms) count...
    pub opens_at: u64,
    /// ...and before this one.
    pub closes_at: u64,
    /// Human-readable title.
    pub title: String,
    /// Option labels; a vote's `choice` indexes this list.
    pub options: Vec<String>,
    /// Who may vote.
    pub eligibility: Eligibility,
}

/// A poll definition signed by its organizer. Construct with
/// [`PollDraft::sign`] or [`Poll::decode`]; both check the canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Poll {
    /// The poll's identity (derived, not chosen).
    pub id: PollId,
    /// The signed content.
    #[serde(flatten)]
    pub draft: PollDraft,
    /// The organizer's signature over the canonical encoding of `draft`.
    pub signature: Signature,
}

impl PollDraft {
    /// The canonical encoding that the organizer signs and the id hashes.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, DecodeError> {
        self.check()?;
        let mut w = Writer::new(tag::POLL);
        w.raw(&self.organizer.0)
            .u64(self.created_at)
            .u64(self.opens_at)
            .u64(self.closes_at)
            .bytes(self.title.as_bytes())
            .u32(self.options.len() as u32);
        for option in &self.options {
            w.bytes(option.as_bytes());
        }
        match &self.eligibility {
            Eligibility::Open => {
                w.u8(0);
            }
            Eligibility::Credential { registrar } => {
                w.u8(1).raw(&registrar.0);
            }
            Eligibility::AllowList { voters } => {
                w.u8(2).u32(voters.len() as u32);
                for key in voters {
                    w.raw(&key.0);
                }
            }
        }
        Ok(w.finish())
    }

    /// Checks the limits and canonical-form rules the encoding relies on.
    fn check(&self) -> Result<(), DecodeError> {
        check_len("title", self.title.len(), 1, MAX_TITLE_BYTES)?;
        check_len("options", self.options.len(), 1, MAX_OPTIONS)?;
        for option in &self.options {
            check_len("option", option.len(), 1, MAX_OPTION_BYTES)?;
        }
        let mut labels: Vec<&String> = self.options.iter().collect();
        labels.sort();
        if labels.windows(2).any(|w| w[0] == w[1]) {
            return Err(DecodeError::NotCanonical { field: "options" });
        }
        if self.opens_at >= self.closes_at {
            return Err(DecodeError::EmptyWindow {
                opens_at: self.opens_at,
                closes_at: self.closes_at,
            });
        }
        if let Eligibility::AllowList { voters } = &self.eligibility {
            check_len("voters", voters.len(), 1, MAX_ALLOW_LIST)?;
            if voters.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DecodeError::NotCanonical { field: "voters" });
            }
        }
        Ok(())
    }

    /// Signs the draft. Fails if the draft breaks a limit of the format
    /// (sort an allow-list first: [`PollDraft::sort_allow_list`]).
    pub fn sign(self, organizer: &SecretKey) -> Result<Poll, DecodeError> {
        let draft = PollDraft {
            organizer: organizer.public(),
            ..self
        };
        let bytes = draft.signing_bytes()?;
        let signature = organizer.sign(&bytes);
        Ok(Poll {
            id: poll_id(&bytes),
            draft,
            signature,
        })
    }

    /// Sorts and deduplicates an allow-list into its canonical order.
    pub fn sort_allow_list(&mut self) {
        if let Eligibility::AllowList { voters } = &mut self.eligibility {
            voters.sort();
            voters.dedup();
        }
    }
}

fn poll_id(signing_bytes: &[u8]) -> PollId {
    PollId(Sha256::digest(signing_bytes).into())
}

impl Poll {
    /// The canonical signed encoding: the signing bytes, then the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self
            .draft
            .signing_bytes()
            .expect("a Poll is always canonical");
        bytes.extend_from_slice(&self.signature.0);
        bytes
    }

    /// Decodes a signed poll. Checks the form, not the signature: see [`Poll::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Poll, DecodeError> {
        let mut r = Reader::new(bytes, tag::POLL)?;
        let organizer = PublicKey(r.array("organizer")?);
        let created_at = r.u64("created_at")?;
        let opens_at = r.u64("opens_at")?;
        let closes_at = r.u64("closes_at")?;
        let title = r.string("title", 1, MAX_TITLE_BYTES)?;

        let count = r.u32("options")? as usize;
        check_len("options", count, 1, MAX_OPTIONS)?;
        let mut options = Vec::with_capacity(count);
        for _ in 0..count {
            options.push(r.string("option", 1, MAX_OPTION_BYTES)?);
        }

        let eligibility = match r.u8("eligibility")? {
            0 => Eligibility::Open,
            1 => Eligibility::Credential {
                registrar: PublicKey(r.array("registrar")?),
            },
            2 => {
                let count = r.u32("voters")? as usize;
                check_len("voters", count, 1, MAX_ALLOW_LIST)?;
                if r.remaining() < count * 32 {
                    return Err(DecodeError::Truncated { field: "voters" });
                }
                let voters = (0..count)
                    .map(|_| r.array("voters").map(PublicKey))
                    .collect::<Result<_, _>>()?;
                Eligibility::AllowList { voters }
            }
            value => {
                return Err(DecodeError::UnknownTag {
                    field: "eligibility",
                    value,
                })
            }
        };
        let signature = Signature(r.array("signature")?);
        r.finish()?;

        let draft = PollDraft {
            organizer,
            created_at,
            opens_at,
            closes_at,
            title,
            options,
            eligibility,
        };
        // Re-encoding checks the rules the reader cannot see (sorted keys, unique labels).
        let signing = draft.signing_bytes()?;
        Ok(Poll {
            id: poll_id(&signing),
            draft,
            signature,
        })
    }

    /// Checks the organizer's signature.
    pub fn verify(&self) -> Result<(), SignedByError> {
        let bytes = self
            .draft
            .signing_bytes()
            .expect("a Poll is always canonical");
        signature::verify(&SignedMessage {
            key: &self.draft.organizer,
            message: &bytes,
            signature: &self.signature,
        })
        .map_err(|source| SignedByError {
            what: "poll",
            signer: self.draft.organizer,
            source,
        })
    }

    /// Builds a poll from its JSON form, recomputing the id (an `id` field, if
    /// present, must match) and checking the canonical form. Does not verify the
    /// signature.
    pub fn from_json(value: &serde_json::Value) -> Result<Poll, PollJsonError> {
        // Named in messages as "expected struct poll", not by the private type.
        #[derive(Deserialize)]
        #[serde(expecting = "struct poll")]
        struct Wire {
            id: Option<PollId>,
            #[serde(flatten)]
            draft: PollDraft,
            signature: Signature,
        }
        let wire = Wire::deserialize(value).map_err(|e| PollJsonError::Json(e.to_string()))?;
        let signing = wire.draft.signing_bytes()?;
        let id = poll_id(&signing);
        if let Some(claimed) = wire.id {
            if claimed != id {
                return Err(PollJsonError::IdMismatch {
                    claimed,
                    computed: id,
                });
            }
        }
        Ok(Poll {
            id,
            draft: wire.draft,
            signature: wire.signature,
        })
    }

    /// Number of options.
    pub fn option_count(&self) -> usize {
        self.draft.options.len()
    }
}

/// Why a poll's JSON form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PollJsonError {
    /// Not the expected shape.
    #[error("poll json: {0}")]
    Json(String),
    /// Breaks a limit of the canonical form.
    #[error("poll: {0}")]
    Form(#[from] DecodeError),
    /// The `id` given is not the hash of the content.
    #[error("poll id {claimed} does not match its content (computed {computed})")]
    IdMismatch {
        /// The id in the input.
        claimed: PollId,
        /// The id of the content.
        computed: PollId,
    },
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_draft() -> PollDraft {
        PollDraft {
            organizer: PublicKey([0; 32]),
            created_at: 1_000,
            opens_at: 1_000,
            closes_at: 10_000,
            title: "Lunch".into(),
            options: vec!["soup".into(), "salad".into(), "pie".into()],
            eligibility: Eligibility::Open,
        }
    }

    #[test]
    fn signed_poll_decodes_to_itself_and_verifies() {
        let poll = sample_draft()
            .sign(&SecretKey::from_seed(&[3; 32]))
            .unwrap();

        let decoded = Poll::decode(&poll.encode()).unwrap();

        assert_eq!(decoded, poll);
        decoded.verify().unwrap();
    }

    #[test]
    fn changing_any_field_changes_the_id_and_breaks_the_signature() {
        let poll = sample_draft()
            .sign(&SecretKey::from_seed(&[3; 32]))
            .unwrap();
        let mut edited = poll.clone();
        edited.draft.options[2] = "cake".into();
        let edited = Poll::decode(&edited.encode()).unwrap();

        assert_ne!(edited.id, poll.id);
        assert!(edited.verify().is_err());
    }

    #[test]
    fn duplicate_options_and_empty_window_are_refused() {
        let mut dup = sample_draft();
        dup.options.push("soup".into());
        let mut window = sample_draft();
        window.closes_at = window.opens_at;

        assert!(dup.sign(&SecretKey::from_seed(&[3; 32])).is_err());
        assert!(window.sign(&SecretKey::from_seed(&[3; 32])).is_err());
    }

    #[test]
    fn json_round_trip_keeps_id_and_rejects_a_wrong_one() {
        let poll = sample_draft()
            .sign(&SecretKey::from_seed(&[3; 32]))
            .unwrap();
        let mut json = serde_json::to_value(&poll).unwrap();

        assert_eq!(Poll::from_json(&json).unwrap(), poll);
        json["id"] = serde_json::Value::String(PollId([9; 32]).to_string());
        assert!(matches!(
            Poll::from_json(&json),
            Err(PollJsonError::IdMismatch { .. })
        ));
    }
}
