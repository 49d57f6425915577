//! A vote: one signed entry of the grow-only set, and the credential a
//! registrar may issue to a voter key.

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};

use crate::encoding::{tag, Reader, Writer};
use crate::error::{DecodeError, SignatureError};
use crate::ids::{EntryHash, PollId, PublicKey, Signature, VoteId};
use crate::signature::{self, SecretKey, SignedMessage};

/// A registrar's statement that `voter` may vote in `poll`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Credential {
    /// The poll it admits to.
    pub poll: PollId,
    /// The voter key it admits.
    pub voter: PublicKey,
    /// The registrar that signed it; must be the one the poll names.
    pub registrar: PublicKey,
    /// The registrar's signature over the canonical encoding.
    pub signature: Signature,
}

impl Credential {
    /// Issues a credential for `voter` in `poll`, signed by `registrar`.
    pub fn issue(registrar: &SecretKey, poll: PollId, voter: PublicKey) -> Credential {
        let registrar_key = registrar.public();
        let bytes = credential_signing_bytes(&poll, &voter, &registrar_key);
        Credential {
            poll,
            voter,
            registrar: registrar_key,
            signature: registrar.sign(&bytes),
        }
    }

    /// The bytes the registrar signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        credential_signing_bytes(&self.poll, &self.voter, &self.registrar)
    }

    /// Checks the registrar's signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        signature::verify(&SignedMessage {
            key: &self.registrar,
            message: &self.signing_bytes(),
            signature: &self.signature,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.raw(&self.signing_bytes()).raw(&self.signature.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Credential, DecodeError> {
        let len = tag::CREDENTIAL.len() + 1 + 32 * 3 + 64;
        let bytes = r.take(len, "credential")?;
        let mut inner = Reader::new(bytes, tag::CREDENTIAL)?;
        let credential = Credential {
            poll: PollId(inner.array("credential.poll")?),
            voter: PublicKey(inner.array("credential.voter")?),
            registrar: PublicKey(inner.array("credential.registrar")?),
            signature: Signature(inner.array("credential.signature")?),
        };
        inner.finish()?;
        Ok(credential)
    }
}

fn credential_signing_bytes(poll: &PollId, voter: &PublicKey, registrar: &PublicKey) -> Vec<u8> {
    let mut w = Writer::new(tag::CREDENTIAL);
    w.raw(&poll.0).raw(&voter.0).raw(&registrar.0);
    w.finish()
}

/// What a voter signs: everything in a vote but the signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VoteBody {
    /// The poll voted in.
    pub poll: PollId,
    /// The voter's public key; one effective vote per key.
    pub voter: PublicKey,
    /// Index into the poll's options.
    pub choice: u32,
    /// The voter's revision number: a higher `seq` replaces a lower one.
    pub seq: u64,
    /// The client's idempotency key (a UUID).
    pub vote_id: VoteId,
    /// When the voter cast it, unix ms, as the voter's device claims.
    pub cast_at: u64,
    /// The registrar's credential, where the poll requires one.
    #[serde(default)]
    pub credential: Option<Credential>,
}

impl VoteBody {
    /// The canonical encoding the voter signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::VOTE);
        w.raw(&self.poll.0)
            .raw(&self.voter.0)
            .u32(self.choice)
            .u64(self.seq)
            .raw(self.vote_id.as_bytes())
            .u64(self.cast_at);
        match &self.credential {
            None => {
                w.u8(0);
            }
            Some(c) => {
                w.u8(1);
                c.write(&mut w);
            }
        }
        w.finish()
    }

    /// Signs the body with the voter's key. The body's `voter` is set to the key's public half.
    pub fn sign(self, voter: &SecretKey) -> Vote {
        let body = VoteBody {
            voter: voter.public(),
            ..self
        };
        let signature = voter.sign(&body.signing_bytes());
        Vote::new(body, signature)
    }
}

/// A signed vote: an entry of the grow-only set, identified by [`Vote::hash`].
///
/// Immutable once built, so its cached encoding and hash always match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vote {
    body: VoteBody,
    signature: Signature,
    encoded: Vec<u8>,
    hash: EntryHash,
}

impl Vote {
    /// Assembles a vote from its body and a signature (not yet checked).
    pub fn new(body: VoteBody, signature: Signature) -> Vote {
        let mut encoded = body.signing_bytes();
        encoded.extend_from_slice(&signature.0);
        let hash = EntryHash(Sha256::digest(&encoded).into());
        Vote {
            body,
            signature,
            encoded,
            hash,
        }
    }

    /// The signed content.
    pub fn body(&self) -> &VoteBody {
        &self.body
    }

    /// The voter's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The entry's identity: SHA-256 of [`Vote::encoded`].
    pub fn hash(&self) -> EntryHash {
        self.hash
    }

    /// The canonical signed encoding: signing bytes, then the signature.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The bytes the voter signed (the encoding without the signature).
    pub fn signing_bytes(&self) -> &[u8] {
        &self.encoded[..self.encoded.len() - 64]
    }

    /// The voter's signature as an item for [`crate::verify_batch`].
    pub fn signed_message(&self) -> SignedMessage<'_> {
        SignedMessage {
            key: &self.body.voter,
            message: self.signing_bytes(),
            signature: &self.signature,
        }
    }

    /// Decodes a vote from its canonical encoding. Checks the form only.
    pub fn decode(bytes: &[u8]) -> Result<Vote, DecodeError> {
        Vote::decode_owned(bytes.to_vec())
    }

    /// [`Vote::decode`] of an encoding the caller owns: kept as the vote's
    /// encoding without a copy.
    pub fn decode_owned(bytes: Vec<u8>) -> Result<Vote, DecodeError> {
        let mut r = Reader::new(&bytes, tag::VOTE)?;
        let poll = PollId(r.array("poll")?);
        let voter = PublicKey(r.array("voter")?);
        let choice = r.u32("choice")?;
        let seq = r.u64("seq")?;
        let vote_id = VoteId::from_bytes(r.array("vote_id")?);
        let cast_at = r.u64("cast_at")?;
        let credential = match r.u8("credential")? {
            0 => None,
            1 => Some(Credential::read(&mut r)?),
            value => {
                return Err(DecodeError::UnknownTag {
                    field: "credential",
                    value,
                })
            }
        };
        let signature = Signature(r.array("signature")?);
        r.finish()?;

        let body = VoteBody {
            poll,
            voter,
            choice,
            seq,
            vote_id,
            cast_at,
            credential,
        };
        // The reader accepted exactly one encoding, so the input bytes are the
        // canonical ones: keep them rather than encoding the body again.
        debug_assert_eq!([body.signing_bytes(), signature.0.to_vec()].concat(), bytes);
        let hash = EntryHash(Sha256::digest(&bytes).into());
        Ok(Vote {
            body,
            signature,
            encoded: bytes,
            hash,
        })
    }
}

impl Serialize for Vote {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(flatten)]
            body: &'a VoteBody,
            signature: &'a Signature,
        }
        Wire {
            body: &self.body,
            signature: &self.signature,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Vote {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Named in messages as "expected struct vote", not by the private type.
        #[derive(Deserialize)]
        #[serde(expecting = "struct vote", deny_unknown_fields)]
        struct Wire {
            poll: PollId,
            voter: PublicKey,
            choice: u32,
            seq: u64,
            vote_id: VoteId,
            cast_at: u64,
            #[serde(default)]
            credential: Option<Credential>,
            signature: Signature,
        }
        let w = Wire::deserialize(d)?;
        let body = VoteBody {
            poll: w.poll,
            voter: w.voter,
            choice: w.choice,
            seq: w.seq,
            vote_id: w.vote_id,
            cast_at: w.cast_at,
            credential: w.credential,
        };
        Ok(Vote::new(body, w.signature))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn body(poll: PollId, choice: u32, seq: u64) -> VoteBody {
        VoteBody {
            poll,
            voter: PublicKey([0; 32]),
            choice,
            seq,
            vote_id: VoteId::from_bytes([seq as u8; 16]),
            cast_at: 2_000,
            credential: None,
        }
    }

    #[test]
    fn vote_decodes_to_itself_with_and_without_credential() {
        let voter = SecretKey::from_seed(&[1; 32]);
        let registrar = SecretKey::from_seed(&[2; 32]);
        let plain = body(PollId([7; 32]), 1, 1).sign(&voter);
        let mut with = body(PollId([7; 32]), 1, 2);
        with.credential = Some(Credential::issue(
            &registrar,
            PollId([7; 32]),
            voter.public(),
        ));
        let with = with.sign(&voter);

        for vote in [plain, with] {
            let decoded = Vote::decode(vote.encoded()).unwrap();
            assert_eq!(decoded, vote);
            assert_eq!(decoded.hash(), vote.hash());
        }
    }

    #[test]
    fn truncated_or_extended_encodings_are_refused() {
        let vote = body(PollId([7; 32]), 1, 1).sign(&SecretKey::from_seed(&[1; 32]));
        let bytes = vote.encoded();

        for cut in 0..bytes.len() {
            assert!(Vote::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(Vote::decode(&longer).is_err());
    }

    #[test]
    fn json_form_round_trips_and_refuses_unknown_fields() {
        let vote = body(PollId([7; 32]), 1, 1).sign(&SecretKey::from_seed(&[1; 32]));
        let mut json = serde_json::to_value(&vote).unwrap();

        assert_eq!(serde_json::from_value::<Vote>(json.clone()).unwrap(), vote);
        json["extra"] = 1.into();
        assert!(serde_json::from_value::<Vote>(json).is_err());
    }
}
