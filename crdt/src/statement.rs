//! Statements a node signs about its state: a receipt for one entry, an
//! attestation of a poll's digest, and a signed tally.

use serde::{Deserialize, Serialize};

use crate::encoding::{tag, Reader, Writer};
use crate::error::{DecodeError, SignedByError};
use crate::ids::{Digest, EntryHash, PollId, PublicKey, Signature};
use crate::signature::{self, SecretKey, SignedMessage};

fn check(
    what: &'static str,
    node: &PublicKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignedByError> {
    signature::verify(&SignedMessage {
        key: node,
        message,
        signature,
    })
    .map_err(|source| SignedByError {
        what,
        signer: *node,
        source,
    })
}

/// A node's signed word that it holds an entry durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The node that stored the entry.
    pub node: PublicKey,
    /// The poll.
    pub poll: PollId,
    /// The entry.
    pub entry: EntryHash,
    /// When the node first stored it, unix ms. Retries get the same receipt.
    pub received_at: u64,
    /// The node's signature.
    pub signature: Signature,
}

impl Receipt {
    /// Signs a receipt.
    pub fn sign(node: &SecretKey, poll: PollId, entry: EntryHash, received_at: u64) -> Receipt {
        let node_key = node.public();
        let bytes = receipt_bytes(&node_key, &poll, &entry, received_at);
        Receipt {
            node: node_key,
            poll,
            entry,
            received_at,
            signature: node.sign(&bytes),
        }
    }

    /// Checks the node's signature.
    pub fn verify(&self) -> Result<(), SignedByError> {
        let bytes = receipt_bytes(&self.node, &self.poll, &self.entry, self.received_at);
        check("receipt", &self.node, &bytes, &self.signature)
    }
}

fn receipt_bytes(node: &PublicKey, poll: &PollId, entry: &EntryHash, at: u64) -> Vec<u8> {
    let mut w = Writer::new(tag::RECEIPT);
    w.raw(&node.0).raw(&poll.0).raw(&entry.0).u64(at);
    w.finish()
}

/// A node's signed statement of its state for one poll: the digest over the
/// entries it held and how many, at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The node.
    pub node: PublicKey,
    /// The poll.
    pub poll: PollId,
    /// The digest of the node's entries.
    pub digest: Digest,
    /// How many entries it held.
    pub entries: u64,
    /// When, unix ms.
    pub at: u64,
    /// The node's signature.
    pub signature: Signature,
}

impl Attestation {
    /// Signs an attestation.
    pub fn sign(node: &SecretKey, poll: PollId, digest: Digest, entries: u64, at: u64) -> Self {
        let node_key = node.public();
        let bytes = attestation_bytes(&node_key, &poll, &digest, entries, at);
        Attestation {
            node: node_key,
            poll,
            digest,
            entries,
            at,
            signature: node.sign(&bytes),
        }
    }

    /// The canonical signed encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes =
            attestation_bytes(&self.node, &self.poll, &self.digest, self.entries, self.at);
        bytes.extend_from_slice(&self.signature.0);
        bytes
    }

    /// Decodes the canonical encoding (form only; see [`Attestation::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, tag::ATTESTATION)?;
        let attestation = Attestation {
            node: PublicKey(r.array("node")?),
            poll: PollId(r.array("poll")?),
            digest: Digest(r.array("digest")?),
            entries: r.u64("entries")?,
            at: r.u64("at")?,
            signature: Signature(r.array("signature")?),
        };
        r.finish()?;
        Ok(attestation)
    }

    /// Checks the node's signature.
    pub fn verify(&self) -> Result<(), SignedByError> {
        let bytes = attestation_bytes(&self.node, &self.poll, &self.digest, self.entries, self.at);
        check("attestation", &self.node, &bytes, &self.signature)
    }
}

fn attestation_bytes(
    node: &PublicKey,
    poll: &PollId,
    digest: &Digest,
    entries: u64,
    at: u64,
) -> Vec<u8> {
    let mut w = Writer::new(tag::ATTESTATION);
    w.raw(&node.0)
        .raw(&poll.0)
        .raw(&digest.0)
        .u64(entries)
        .u64(at);
    w.finish()
}

/// A node's signed tally: the attestation's fields plus the counts it derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTally {
    /// The node.
    pub node: PublicKey,
    /// The poll.
    pub poll: PollId,
    /// The digest of the entries counted.
    pub digest: Digest,
    /// Entries held.
    pub entries: u64,
    /// Effective votes per option.
    pub counts: Vec<u64>,
    /// When, unix ms.
    pub at: u64,
    /// The node's signature.
    pub signature: Signature,
}

impl SignedTally {
    /// Signs a tally.
    pub fn sign(
        node: &SecretKey,
        poll: PollId,
        digest: Digest,
        entries: u64,
        counts: Vec<u64>,
        at: u64,
    ) -> Self {
        let node_key = node.public();
        let bytes = tally_bytes(&node_key, &poll, &digest, entries, &counts, at);
        SignedTally {
            node: node_key,
            poll,
            digest,
            entries,
            counts,
            at,
            signature: node.sign(&bytes),
        }
    }

    /// Checks the node's signature.
    pub fn verify(&self) -> Result<(), SignedByError> {
        let bytes = tally_bytes(
            &self.node,
            &self.poll,
            &self.digest,
            self.entries,
            &self.counts,
            self.at,
        );
        check("tally", &self.node, &bytes, &self.signature)
    }
}

fn tally_bytes(
    node: &PublicKey,
    poll: &PollId,
    digest: &Digest,
    entries: u64,
    counts: &[u64],
    at: u64,
) -> Vec<u8> {
    let mut w = Writer::new(tag::TALLY);
    w.raw(&node.0)
        .raw(&poll.0)
        .raw(&digest.0)
        .u64(entries)
        .u64(at)
        .u32(counts.len() as u32);
    for count in counts {
        w.u64(*count);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_verify_and_fail_when_altered() {
        let node = SecretKey::from_seed(&[8; 32]);
        let receipt = Receipt::sign(&node, PollId([1; 32]), EntryHash([2; 32]), 5);
        let att = Attestation::sign(&node, PollId([1; 32]), Digest([3; 32]), 10, 6);
        let tally = SignedTally::sign(&node, PollId([1; 32]), Digest([3; 32]), 10, vec![4, 6], 7);

        receipt.verify().unwrap();
        att.verify().unwrap();
        tally.verify().unwrap();
        assert_eq!(Attestation::decode(&att.encode()).unwrap(), att);

        assert!(Receipt {
            received_at: 6,
            ..receipt
        }
        .verify()
        .is_err());
        assert!(Attestation { entries: 11, ..att }.verify().is_err());
        assert!(SignedTally {
            counts: vec![5, 5],
            ..tally
        }
        .verify()
        .is_err());
    }
}
