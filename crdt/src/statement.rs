//! Statements a node signs about its state: receipts for entries (one
//! signature per commit group), an attestation of a poll's digest, and a
//! signed tally.

use serde::{Deserialize, Serialize};

use crate::digest::{root_from_path, GroupTree};
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

/// The most hashes an inclusion path can hold: one per level of a tree of
/// up to `2^64` entries.
pub const MAX_PATH: usize = 64;

/// A node's signed word that it holds an entry durably.
///
/// Version 2 (what nodes issue): the node signs one [`GroupStatement`] per
/// commit group, over the Merkle root of the group's entry hashes, and each
/// entry's receipt carries that statement's fields and signature with the
/// entry's inclusion path ([`Inclusion`]), so it verifies alone. Version 1
/// (`group: None`), a signature over this entry alone, is still verified.
///
/// JSON: `{"version":2,"node","poll","entry","received_at","root","size",
/// "index","path":[..],"signature"}`; version 1 has no `version` field and
/// none of `root`, `size`, `index`, `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The node that stored the entry, and signed.
    pub node: PublicKey,
    /// The poll.
    pub poll: PollId,
    /// The entry.
    pub entry: EntryHash,
    /// When the node first stored it, unix ms. Retries get the same receipt.
    pub received_at: u64,
    /// Where the entry sits in the group the node signed (version 2);
    /// `None` for a version-1 receipt.
    pub group: Option<Inclusion>,
    /// The node's signature: over the group statement (version 2) or over
    /// this entry alone (version 1).
    pub signature: Signature,
}

/// An entry's place in a signed commit group: the group's root and size,
/// and the path from the entry to the root (see [`crate::GroupTree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// The Merkle root over the group's entry hashes in ascending order.
    pub root: Digest,
    /// How many entries the group holds.
    pub size: u64,
    /// The entry's position in the group, in ascending hash order.
    pub index: u64,
    /// The sibling hashes from the entry's leaf up to the root.
    pub path: Vec<Digest>,
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The inclusion path does not lead from the entry to the signed root.
    #[error("the inclusion path of entry {entry} does not lead to root {root} (index {index} of {size})")]
    Path {
        /// The entry.
        entry: EntryHash,
        /// The root the receipt names.
        root: Digest,
        /// The position it claims.
        index: u64,
        /// The group size it claims.
        size: u64,
    },
    /// The node's signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignedByError),
}

impl Receipt {
    /// Signs a version-1 receipt, for this entry alone. Nodes issue version
    /// 2 ([`GroupStatement::receipt`]); this remains for reading old ones.
    pub fn sign_v1(node: &SecretKey, poll: PollId, entry: EntryHash, received_at: u64) -> Receipt {
        let node_key = node.public();
        let bytes = receipt_v1_bytes(&node_key, &poll, &entry, received_at);
        Receipt {
            node: node_key,
            poll,
            entry,
            received_at,
            group: None,
            signature: node.sign(&bytes),
        }
    }

    /// The receipt's version: 2 with a group, 1 without.
    pub fn version(&self) -> u32 {
        if self.group.is_some() {
            2
        } else {
            1
        }
    }

    /// Checks that the node signed for this entry: for version 2, that the
    /// path leads from the entry to the root, then the signature over the
    /// group statement; for version 1, the signature over the entry alone.
    pub fn verify(&self) -> Result<(), ReceiptError> {
        let Some(group) = &self.group else {
            let bytes = receipt_v1_bytes(&self.node, &self.poll, &self.entry, self.received_at);
            return Ok(check("receipt", &self.node, &bytes, &self.signature)?);
        };
        let reached = (group.path.len() <= MAX_PATH)
            .then(|| root_from_path(&self.entry, group.index, group.size, &group.path))
            .flatten();
        if reached != Some(group.root) {
            return Err(ReceiptError::Path {
                entry: self.entry,
                root: group.root,
                index: group.index,
                size: group.size,
            });
        }
        let bytes = group_bytes(
            &self.node,
            &self.poll,
            &group.root,
            group.size,
            self.received_at,
        );
        Ok(check("receipt", &self.node, &bytes, &self.signature)?)
    }

    /// The group statement a version-2 receipt carries.
    pub fn statement(&self) -> Option<GroupStatement> {
        self.group.as_ref().map(|g| GroupStatement {
            node: self.node,
            poll: self.poll,
            root: g.root,
            size: g.size,
            received_at: self.received_at,
            signature: self.signature,
        })
    }
}

fn receipt_v1_bytes(node: &PublicKey, poll: &PollId, entry: &EntryHash, at: u64) -> Vec<u8> {
    let mut w = Writer::new(tag::RECEIPT);
    w.raw(&node.0).raw(&poll.0).raw(&entry.0).u64(at);
    w.finish()
}

/// What a node signs once per commit group and poll: that it holds durably,
/// since `received_at`, every entry of `poll` in the group whose Merkle root
/// (over the ascending entry hashes, [`crate::GroupTree`]) is `root`, of
/// `size` entries. Each entry's [`Receipt`] carries it with the entry's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStatement {
    /// The node.
    pub node: PublicKey,
    /// The poll.
    pub poll: PollId,
    /// The root over the group's entry hashes.
    pub root: Digest,
    /// How many entries the group holds.
    pub size: u64,
    /// When the node stored the group, unix ms.
    pub received_at: u64,
    /// The node's signature.
    pub signature: Signature,
}

impl GroupStatement {
    /// Signs the statement for the group `tree` of `poll`.
    pub fn sign(node: &SecretKey, poll: PollId, tree: &GroupTree, received_at: u64) -> Self {
        let node_key = node.public();
        let (root, size) = (tree.root(), tree.size());
        let bytes = group_bytes(&node_key, &poll, &root, size, received_at);
        GroupStatement {
            node: node_key,
            poll,
            root,
            size,
            received_at,
            signature: node.sign(&bytes),
        }
    }

    /// Checks the node's signature.
    pub fn verify(&self) -> Result<(), SignedByError> {
        let bytes = group_bytes(
            &self.node,
            &self.poll,
            &self.root,
            self.size,
            self.received_at,
        );
        check("receipt", &self.node, &bytes, &self.signature)
    }

    /// The receipt of the entry at `index` of `tree`, the tree this statement
    /// was signed over. `None` if `tree` is another tree or `index` is out
    /// of range.
    pub fn receipt(&self, tree: &GroupTree, index: u64) -> Option<Receipt> {
        if tree.root() != self.root || tree.size() != self.size {
            return None;
        }
        Some(Receipt {
            node: self.node,
            poll: self.poll,
            entry: tree.entry(index)?,
            received_at: self.received_at,
            group: Some(Inclusion {
                root: self.root,
                size: self.size,
                index,
                path: tree.path(index)?,
            }),
            signature: self.signature,
        })
    }
}

fn group_bytes(node: &PublicKey, poll: &PollId, root: &Digest, size: u64, at: u64) -> Vec<u8> {
    let mut w = Writer::new(tag::RECEIPT_V2);
    w.raw(&node.0).raw(&poll.0).raw(&root.0).u64(size).u64(at);
    w.finish()
}

/// The JSON form of both versions.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct receipt")]
struct ReceiptWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    node: PublicKey,
    poll: PollId,
    entry: EntryHash,
    received_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<Vec<Digest>>,
    signature: Signature,
}

impl Serialize for Receipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let group = self.group.as_ref();
        ReceiptWire {
            version: group.map(|_| 2),
            node: self.node,
            poll: self.poll,
            entry: self.entry,
            received_at: self.received_at,
            root: group.map(|g| g.root),
            size: group.map(|g| g.size),
            index: group.map(|g| g.index),
            path: group.map(|g| g.path.clone()),
            signature: self.signature,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Receipt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = ReceiptWire::deserialize(d)?;
        let group = match (w.version, w.root, w.size, w.index, w.path) {
            (None | Some(1), None, None, None, None) => None,
            (Some(2), Some(root), Some(size), Some(index), Some(path)) => {
                if path.len() > MAX_PATH {
                    return Err(D::Error::custom(format!(
                        "receipt path of {} hashes is longer than {MAX_PATH}",
                        path.len()
                    )));
                }
                Some(Inclusion {
                    root,
                    size,
                    index,
                    path,
                })
            }
            (Some(v), ..) if v != 1 && v != 2 => {
                return Err(D::Error::custom(format!(
                    "receipt version {v} is not supported (1 or 2)"
                )))
            }
            _ => {
                return Err(D::Error::custom(
                    "a version 2 receipt has `root`, `size`, `index` and `path`; a version 1 receipt none of them",
                ))
            }
        };
        Ok(Receipt {
            node: w.node,
            poll: w.poll,
            entry: w.entry,
            received_at: w.received_at,
            group,
            signature: w.signature,
        })
    }
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
        let receipt = Receipt::sign_v1(&node, PollId([1; 32]), EntryHash([2; 32]), 5);
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

    fn group(n: u8) -> GroupTree {
        let mut hashes: Vec<EntryHash> = (0..n)
            .map(|i| EntryHash([i.wrapping_mul(37); 32]))
            .collect();
        hashes.sort();
        hashes.dedup();
        GroupTree::new(&hashes).unwrap()
    }

    #[test]
    fn every_receipt_of_a_group_verifies_alone_and_fails_when_altered() {
        let node = SecretKey::from_seed(&[8; 32]);
        let tree = group(7);
        let statement = GroupStatement::sign(&node, PollId([1; 32]), &tree, 5);
        statement.verify().unwrap();

        for index in 0..tree.size() {
            let receipt = statement.receipt(&tree, index).unwrap();
            receipt.verify().unwrap();
            assert_eq!(receipt.version(), 2);
            assert_eq!(receipt.entry, tree.entry(index).unwrap());
            assert_eq!(receipt.statement(), Some(statement));

            let altered = |edit: &dyn Fn(&mut Receipt)| {
                let mut r = receipt.clone();
                edit(&mut r);
                r.verify()
            };
            assert!(matches!(
                altered(&|r| r.entry.0[0] ^= 1),
                Err(ReceiptError::Path { .. })
            ));
            assert!(matches!(
                altered(&|r| r.received_at += 1),
                Err(ReceiptError::Signature(_))
            ));
            assert!(matches!(
                altered(&|r| r.poll.0[0] ^= 1),
                Err(ReceiptError::Signature(_))
            ));
            fn g(r: &mut Receipt) -> &mut Inclusion {
                r.group.as_mut().unwrap()
            }
            assert!(altered(&|r| g(r).index = (g(r).index + 1) % 7).is_err());
            assert!(altered(&|r| g(r).size += 1).is_err());
            assert!(altered(&|r| g(r).root.0[0] ^= 1).is_err());
            assert!(altered(&|r| {
                g(r).path.pop();
            })
            .is_err());
            assert!(altered(&|r| g(r).path.push(Digest([0; 32]))).is_err());
        }
        assert_eq!(statement.receipt(&tree, 7), None);
        assert_eq!(statement.receipt(&group(6), 0), None, "another tree");
    }

    #[test]
    fn receipts_travel_as_self_describing_json() {
        let node = SecretKey::from_seed(&[8; 32]);
        let tree = group(3);
        let v2 = GroupStatement::sign(&node, PollId([1; 32]), &tree, 5)
            .receipt(&tree, 1)
            .unwrap();
        let v1 = Receipt::sign_v1(&node, PollId([1; 32]), EntryHash([2; 32]), 5);

        let json = serde_json::to_value(&v2).unwrap();
        assert_eq!(json["version"], 2);
        assert_eq!(json["node"], node.public().to_string());
        assert_eq!(json["size"], 3);
        assert_eq!(json["index"], 1);
        assert_eq!(json["path"].as_array().unwrap().len(), 2);
        assert_eq!(serde_json::from_value::<Receipt>(json.clone()).unwrap(), v2);

        let old = serde_json::to_value(&v1).unwrap();
        let mut keys: Vec<&str> = old
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["entry", "node", "poll", "received_at", "signature"],
            "version 1 keeps its form"
        );
        let back: Receipt = serde_json::from_value(old).unwrap();
        assert_eq!(back, v1);
        back.verify().unwrap();

        let mut missing = json.clone();
        missing.as_object_mut().unwrap().remove("path");
        assert!(serde_json::from_value::<Receipt>(missing).is_err());
        let mut future = json.clone();
        future["version"] = 3.into();
        assert!(serde_json::from_value::<Receipt>(future).is_err());
        let mut long = json;
        long["path"] =
            serde_json::Value::Array(vec![Digest([0; 32]).to_string().into(); MAX_PATH + 1]);
        assert!(serde_json::from_value::<Receipt>(long).is_err());
    }
}
