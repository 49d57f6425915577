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

/// Every level of the tree over one set of entry hashes given in ascending
/// order, kept to hand out inclusion paths: what a node signs once per commit
/// group (see [`crate::GroupStatement`]). Its root is the [`digest_sorted`]
/// of the same hashes.
///
/// Built bottom-up: each level pairs neighbours left to right, and a level
/// of odd length carries its last node up unchanged. That is the RFC 6962
/// tree (split at the largest power of two below `n`), node for node.
#[derive(Debug, Clone)]
pub struct GroupTree {
    /// The entries, ascending.
    entries: Vec<EntryHash>,
    /// `levels[0]` the leaf hashes, the last level the root alone.
    levels: Vec<Vec<[u8; 32]>>,
}

/// Why a [`GroupTree`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupTreeError {
    /// A group holds at least one entry.
    #[error("a group holds at least one entry")]
    Empty,
    /// The hashes are not strictly ascending.
    #[error(transparent)]
    Order(#[from] OrderError),
}

impl GroupTree {
    /// The tree over `sorted`, which must be non-empty and strictly ascending.
    pub fn new(sorted: &[EntryHash]) -> Result<GroupTree, GroupTreeError> {
        if sorted.is_empty() {
            return Err(GroupTreeError::Empty);
        }
        for pair in sorted.windows(2) {
            if pair[1] <= pair[0] {
                return Err(OrderError {
                    previous: pair[0],
                    found: pair[1],
                }
                .into());
            }
        }
        let mut levels = vec![sorted.iter().map(leaf).collect::<Vec<_>>()];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => inner(left, right),
                    [alone] => *alone,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(above);
        }
        Ok(GroupTree {
            entries: sorted.to_vec(),
            levels,
        })
    }

    /// How many entries the tree holds.
    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The root: equal to [`digest_sorted`] over the same hashes.
    pub fn root(&self) -> Digest {
        Digest(self.levels[self.levels.len() - 1][0])
    }

    /// The entry at `index`, in ascending order.
    pub fn entry(&self, index: u64) -> Option<EntryHash> {
        self.entries.get(usize::try_from(index).ok()?).copied()
    }

    /// The entries, ascending.
    pub fn entries(&self) -> &[EntryHash] {
        &self.entries
    }

    /// The position of `entry` in the tree, if it holds it.
    pub fn position(&self, entry: &EntryHash) -> Option<u64> {
        self.entries.binary_search(entry).ok().map(|i| i as u64)
    }

    /// The inclusion path of the entry at `index` (its position in ascending
    /// order): the sibling hashes from the leaf up, skipping the levels where
    /// the node is carried up alone. `None` if `index` is out of range.
    pub fn path(&self, index: u64) -> Option<Vec<Digest>> {
        let mut i = usize::try_from(index).ok()?;
        if i >= self.levels[0].len() {
            return None;
        }
        let mut path = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(Digest(*sibling));
            }
            i /= 2;
        }
        Some(path)
    }
}

/// The root an inclusion path leads to from `entry` at `index` in a tree of
/// `size` entries (see [`GroupTree::path`]), or `None` when the path cannot
/// belong to such a tree: `index >= size`, or too few or too many hashes.
pub fn root_from_path(entry: &EntryHash, index: u64, size: u64, path: &[Digest]) -> Option<Digest> {
    if index >= size {
        return None;
    }
    let (mut i, mut len) = (index, size);
    let mut node = leaf(entry);
    let mut siblings = path.iter();
    while len > 1 {
        if i % 2 == 1 {
            node = inner(&siblings.next()?.0, &node);
        } else if i + 1 < len {
            node = inner(&node, &siblings.next()?.0);
        }
        // else: the last node of an odd level, carried up alone.
        i /= 2;
        len = len.div_ceil(2);
    }
    match siblings.next() {
        Some(_) => None,
        None => Some(Digest(node)),
    }
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

    #[test]
    fn group_tree_root_is_the_digest_and_every_path_leads_to_it() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 100] {
            let hs = hashes(n);
            let tree = GroupTree::new(&hs).unwrap();
            assert_eq!(tree.root(), digest_sorted(&hs).unwrap(), "n = {n}");
            assert_eq!(tree.size(), hs.len() as u64);
            for (i, h) in hs.iter().enumerate() {
                let path = tree.path(i as u64).unwrap();
                assert!(path.len() <= 7, "n = {n}: path of {}", path.len());
                let size = hs.len() as u64;
                assert_eq!(root_from_path(h, i as u64, size, &path), Some(tree.root()));
                // The same path names no other entry or position. (It may fit
                // another size with the same shape: receipts sign the size.)
                let other = EntryHash([0xee; 32]);
                assert_ne!(
                    root_from_path(&other, i as u64, size, &path),
                    Some(tree.root())
                );
                if size > 1 {
                    let moved = (i as u64 + 1) % size;
                    assert_ne!(root_from_path(h, moved, size, &path), Some(tree.root()));
                }
            }
            assert_eq!(tree.path(hs.len() as u64), None);
        }
    }

    #[test]
    fn malformed_paths_lead_nowhere() {
        let hs = hashes(5);
        let tree = GroupTree::new(&hs).unwrap();
        let path = tree.path(2).unwrap();

        assert_eq!(
            root_from_path(&hs[2], 5, 5, &path),
            None,
            "index past the end"
        );
        assert_eq!(root_from_path(&hs[2], 2, 5, &path[..1]), None, "too short");
        let mut longer = path.clone();
        longer.push(Digest([0; 32]));
        assert_eq!(root_from_path(&hs[2], 2, 5, &longer), None, "too long");
        assert_eq!(
            root_from_path(&hs[0], 0, 1, &[]),
            Some(Digest(leaf(&hs[0])))
        );
    }

    #[test]
    fn group_trees_need_ascending_unique_hashes() {
        let hs = hashes(3);
        assert_eq!(GroupTree::new(&[]).unwrap_err(), GroupTreeError::Empty);
        assert!(GroupTree::new(&[hs[1], hs[0]]).is_err());
        assert!(GroupTree::new(&[hs[1], hs[1]]).is_err());
    }
}
