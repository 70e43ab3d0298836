//! Ordered Merkle trees over lists: the transaction root of a block and the root of an issuer's
//! certificate batch.
//!
//! Hashing follows RFC 6962 with BLAKE3: a leaf is `blake3(0x00 || leaf_bytes)`, an inner node
//! `blake3(0x01 || left || right)`. Levels are built left to right; a node without a right
//! sibling is carried up unchanged (this gives the same root as RFC 6962's split at the largest
//! power of two). The empty list has root `blake3("")`. Trees are built with `rs_merkle`; proofs
//! are checked by [`BatchProof::root_for`], which is short enough to re-implement from its doc.

use crate::codec::limits::MAX_BATCH_PROOF_LEN;
use crate::hash::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// rs_merkle's view of our inner-node hash.
#[derive(Clone)]
struct Rfc6962Blake3;

impl rs_merkle::Hasher for Rfc6962Blake3 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&[NODE_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&Hash32(*left), &Hash32(*right)).0,
            None => *left,
        }
    }
}

/// `blake3(0x00 || bytes)`: the hash of one leaf.
pub fn leaf_hash(bytes: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_PREFIX]);
    h.update(bytes);
    Hash32(*h.finalize().as_bytes())
}

/// `blake3(0x01 || left || right)`: the hash of an inner node.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[NODE_PREFIX]);
    h.update(left.as_bytes());
    h.update(right.as_bytes());
    Hash32(*h.finalize().as_bytes())
}

/// The root of the empty list.
pub fn empty_root() -> Hash32 {
    Hash32(*blake3::hash(b"").as_bytes())
}

/// A Merkle tree over already-hashed leaves, kept to answer inclusion proofs.
pub struct MerkleTree {
    tree: rs_merkle::MerkleTree<Rfc6962Blake3>,
    len: usize,
}

impl MerkleTree {
    /// Build the tree over `leaves` (each a [`leaf_hash`]).
    pub fn new(leaves: &[Hash32]) -> MerkleTree {
        let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
        MerkleTree {
            tree: rs_merkle::MerkleTree::from_leaves(&raw),
            len: leaves.len(),
        }
    }

    /// The root; [`empty_root`] for no leaves.
    pub fn root(&self) -> Hash32 {
        self.tree.root().map(Hash32).unwrap_or_else(empty_root)
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inclusion proof of leaf `index`, or `None` when out of range.
    pub fn proof(&self, index: usize) -> Option<BatchProof> {
        if index >= self.len {
            return None;
        }
        let siblings = self
            .tree
            .proof(&[index])
            .proof_hashes()
            .iter()
            .map(|h| Hash32(*h))
            .collect();
        Some(BatchProof {
            index: index as u32,
            siblings,
        })
    }
}

/// The root over `leaves` (each a [`leaf_hash`]) without keeping the tree.
pub fn root_of(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash32> = leaves.to_vec();
    while level.len() > 1 {
        let next: Vec<Hash32> = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node_hash(l, r),
                [only] => *only,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        level = next;
    }
    level[0]
}

/// Proof that a leaf sits at `index` in a tree. The number of leaves is not part of the proof:
/// the verifier takes it from what the root was committed with (the batch record), because the
/// same siblings can lead to the same root for more than one leaf count.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, Serialize, Deserialize)]
pub struct BatchProof {
    /// Position of the leaf, from 0.
    pub index: u32,
    /// Sibling hashes from the leaf's level upward, skipping levels where the path node had
    /// no sibling (it was carried up).
    pub siblings: Vec<Hash32>,
}

impl BorshDeserialize for BatchProof {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        Ok(BatchProof {
            index: u32::deserialize_reader(reader)?,
            siblings: crate::codec::read_bounded_vec(reader, MAX_BATCH_PROOF_LEN, "batch proof")?,
        })
    }
}

impl BatchProof {
    /// The root this proof leads to from `leaf` (a [`leaf_hash`]) in a tree of `leaf_count`
    /// leaves, or `None` if the proof is not well formed (index out of range, wrong number of
    /// siblings).
    ///
    /// Walk up: at each level with `n` nodes, if `i` is the last index and `n` is odd the node
    /// is carried up; otherwise it is hashed with the next sibling, on the left when `i` is odd.
    /// Then `i = i / 2`, `n = ceil(n / 2)`, until `n == 1`. Every sibling must be used.
    pub fn root_for(&self, leaf_count: u32, leaf: &Hash32) -> Option<Hash32> {
        let (mut i, mut n) = (self.index as u64, leaf_count as u64);
        if n == 0 || i >= n {
            return None;
        }
        let mut acc = *leaf;
        let mut siblings = self.siblings.iter();
        while n > 1 {
            if !(i == n - 1 && n % 2 == 1) {
                let sibling = siblings.next()?;
                acc = if i % 2 == 1 {
                    node_hash(sibling, &acc)
                } else {
                    node_hash(&acc, sibling)
                };
            }
            i /= 2;
            n = n.div_ceil(2);
        }
        if siblings.next().is_some() {
            return None;
        }
        Some(acc)
    }

    /// Does `leaf` sit at this proof's index under `root`, in a tree of `leaf_count` leaves?
    pub fn verify(&self, root: &Hash32, leaf_count: u32, leaf: &Hash32) -> bool {
        self.root_for(leaf_count, leaf).as_ref() == Some(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn matches_rfc6962_split_for_small_trees() {
        // RFC 6962: MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n.
        fn rfc(l: &[Hash32]) -> Hash32 {
            match l.len() {
                0 => empty_root(),
                1 => l[0],
                n => {
                    let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                    node_hash(&rfc(&l[..k]), &rfc(&l[k..]))
                }
            }
        }
        for n in 0..40 {
            let l = leaves(n);
            assert_eq!(root_of(&l), rfc(&l), "n={n}");
            assert_eq!(MerkleTree::new(&l).root(), rfc(&l), "n={n}");
        }
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_tampering_fails(n in 1usize..300, pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let tree = MerkleTree::new(&l);
            let root = tree.root();
            let i = pick.index(n);
            let proof = tree.proof(i).unwrap();
            let count = n as u32;
            prop_assert!(proof.verify(&root, count, &l[i]));
            // rs_merkle agrees with our verifier.
            let raw: Vec<[u8; 32]> = proof.siblings.iter().map(|h| h.0).collect();
            prop_assert!(rs_merkle::MerkleProof::<Rfc6962Blake3>::new(raw).verify(root.0, &[i], &[l[i].0], n));
            // Another leaf at this position fails.
            prop_assert!(!proof.verify(&root, count, &leaf_hash(b"other")));
            // Any flipped bit in any sibling fails.
            if !proof.siblings.is_empty() {
                let mut bad = proof.clone();
                let s = flip.index(bad.siblings.len() * 256);
                bad.siblings[s / 256].0[(s % 256) / 8] ^= 1 << (s % 8);
                prop_assert!(!bad.verify(&root, count, &l[i]));
            }
            // A wrong index fails; so does an extra or a missing sibling.
            let mut bad = proof.clone();
            bad.index = (bad.index + 1) % count;
            if n > 1 { prop_assert!(!bad.verify(&root, count, &l[i])); }
            let mut bad = proof.clone();
            bad.siblings.push(Hash32::ZERO);
            prop_assert!(!bad.verify(&root, count, &l[i]));
            if !proof.siblings.is_empty() {
                let mut bad = proof.clone();
                bad.siblings.pop();
                prop_assert!(!bad.verify(&root, count, &l[i]));
            }
        }
    }
}
