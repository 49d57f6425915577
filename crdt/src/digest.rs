//! The state digest: a Merkle root over a poll's entry hashes in ascending order.
//!
//! The tree is the one of RFC 6962 (section 2.1) with SHA-256: a leaf is
//! `SHA-256(0x00 || entry_hash)`, an inner node `SHA-256(0x01 || left || right)`,
//! a list of `n > 1` leaves splits at the largest power of two below `n`, and
//! the empty list hashes to `SHA-256("")`. Two replicas with the same entries
//! have the same digest, whatever order the entries arrived in.

use sha2::{Digest as _, Sha256};

use crate::ids::{Digest, EntryHash};

/// Builds the root from hashes fed in strictly ascending order, in
/// `O(log n)` memory, so an export can be digested while it streams.
#[derive(Debug, Default, Clone)]
pub struct DigestBuilder {
    /// Roots of complete subtrees, with their leaf counts (powers of two,
    /// strictly decreasing from bottom to top).
    stack: Vec<(u64, [u8; 32])>,
    last: Option<EntryHash>,
    count: u64,
}

/// Why a hash could not be added to a [`DigestBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry hash {found} does not come after {previous}: the digest needs ascending, unique hashes"
)]
pub struct OrderError {
    /// The last hash accepted.
    pub previous: EntryHash,
    /// The hash that was out of order.
    pub found: EntryHash,
}

impl DigestBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next hash; it must be greater than the previous one.
    pub fn push(&mut self, hash: EntryHash) -> Result<(), OrderError> {
        if let Some(previous) = self.last {
            if hash <= previous {
                return Err(OrderError {
                    previous,
                    found: hash,
                });
            }
        }
        self.last = Some(hash);
        self.count += 1;

        let mut node = (1u64, leaf(&hash));
        while let Some(&(size, left)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            self.stack.pop();
            node = (size * 2, inner(&left, &node.1));
        }
        self.stack.push(node);
        Ok(())
    }

    /// How many hashes were pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The root over everything pushed so far.
    pub fn root(&self) -> Digest {
        let mut nodes = self.stack.iter().rev();
        let Some(&(_, mut acc)) = nodes.next() else {
            return Digest(Sha256::digest(b"").into());
        };
        for (_, left) in nodes {
            acc = inner(left, &acc);
        }
        Digest(acc)
    }
}

fn leaf(hash: &EntryHash) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(hash.0);
    h.finalize().into()
}

fn inner(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The digest of a set of entry hashes given in ascending order.
pub fn digest_sorted<'a>(
    hashes: impl IntoIterator<Item = &'a EntryHash>,
) -> Result<Digest, OrderError> {
    let mut builder = DigestBuilder::new();
    for hash in hashes {
        builder.push(*hash)?;
    }
    Ok(builder.root())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's recursive definition, written out directly.
    fn reference(leaves: &[EntryHash]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaf(&leaves[0]),
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                inner(&reference(&leaves[..k]), &reference(&leaves[k..]))
            }
        }
    }

    fn hashes(n: usize) -> Vec<EntryHash> {
        (0..n)
            .map(|i| EntryHash(Sha256::digest((i as u64).to_be_bytes()).into()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn streaming_root_equals_the_recursive_definition() {
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 100] {
            let hs = hashes(n);
            assert_eq!(digest_sorted(&hs).unwrap().0, reference(&hs), "n = {n}");
        }
    }

    #[test]
    fn out_of_order_or_repeated_hashes_are_refused() {
        let hs = hashes(3);
        let mut b = DigestBuilder::new();
        b.push(hs[1]).unwrap();

        assert!(b.push(hs[0]).is_err());
        assert!(b.push(hs[1]).is_err());
        assert!(b.push(hs[2]).is_ok());
    }

    #[test]
    fn empty_digest_is_sha256_of_nothing() {
        assert_eq!(
            DigestBuilder::new().root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
