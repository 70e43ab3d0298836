//! The store's layout: its column families, the keys in `meta`, the format version, and the
//! byte layout of the records the store writes beside the canonical encodings (a node or value
//! with the height it was written at, a height's stale record). The whole layout is described
//! once, in the `# Format` section of [`super`]; this module is its code.
//!
//! It is not the RocksDB tuning ([`super::tuning`]) nor what reads and writes them.

use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::codec;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::{Node, NodeKey, StoreError};

pub(super) const CF_BLOCKS: &str = "blocks";
pub(super) const CF_COMMITS: &str = "commits";
pub(super) const CF_NODES: &str = "nodes";
pub(super) const CF_VALUES: &str = "values";
pub(super) const CF_TXS: &str = "txs";
pub(super) const CF_UNDECIDED: &str = "undecided";
pub(super) const CF_EVIDENCE: &str = "evidence";
pub(super) const CF_META: &str = "meta";
/// Tree nodes gone stale, by the height that replaced them: `height → their hashes`, one record
/// per height (format 2 wrote one `height || hash` key per node; pruning reads both). One record
/// instead of a dozen per transaction: those small keys were written, flushed, compacted and
/// deleted again: a sixth of the table files a node wrote under load.
pub(super) const CF_STALE: &str = "stale";
/// The head's state entries by key: `key hash → value hash`. A read of the head's state is one
/// lookup here (Bloom filters answer most absent keys from memory) instead of a walk of ~log2(N)
/// nodes from the root, which was a fifth of a validator's CPU once the tree outgrew the cache.
pub(super) const CF_KEYS: &str = "keys";
pub(super) const FAMILIES: [&str; 10] = [
    CF_BLOCKS,
    CF_COMMITS,
    CF_NODES,
    CF_VALUES,
    CF_TXS,
    CF_UNDECIDED,
    CF_EVIDENCE,
    CF_META,
    CF_STALE,
    CF_KEYS,
];

pub(super) const META_HEAD: &[u8] = b"head";
pub(super) const META_GENESIS: &[u8] = b"genesis";
pub(super) const META_VALSET: &[u8] = b"valset-change:";
/// The validator set in the state after a height (genesis, and every height that changed it).
pub(super) const META_VALIDATORS: &[u8] = b"validators:";
pub(super) const META_CHECKPOINT: &[u8] = b"checkpoint:";
/// The snapshot height a joined store started from (absent: it holds every block).
pub(super) const META_BASE: &[u8] = b"base";
/// The last height whose stale nodes are deleted.
pub(super) const META_PRUNED: &[u8] = b"pruned";
pub(super) const META_FORMAT: &[u8] = b"format";
/// Present (with [`TREE_IN_MEMORY`]) while the tree's nodes are held in memory, and the
/// `nodes` family is empty; absent while they are stored there.
pub(super) const META_TREE: &[u8] = b"tree";
pub(super) const TREE_IN_MEMORY: &[u8] = b"memory";
/// Version 2: values keyed by their leaf, nodes with the height they were written at, stale
/// nodes and validator sets recorded per height. Version 3: the head's entries indexed by key.
/// Version 4: nodes keyed by [`NodeKey`] instead of their hash alone, values with the height
/// they were written at, stale values recorded apart from stale nodes. A version-2 or -3
/// database is rewritten when opened ([`Store::migrate`]).
pub(super) const FORMAT: u8 = 4;

/// Where a committed transaction is, and whether it was refused there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Why it was refused in its block (its nonce used, nothing else changed); `None` when
    /// it was carried out.
    pub refused: Option<Refusal>,
}

/// Why a transaction was refused in its block: its error's stable code and name, and the
/// error's message.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Refusal {
    /// The stable code (`docs/spec/errors.md`).
    pub code: u32,
    /// The stable name.
    pub name: String,
    /// What was wrong, in words.
    pub message: String,
}

impl TxLocation {
    /// `height` and `index` in Borsh, then the [`Refusal`] in Borsh if there is one.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = codec::encode(&(self.height, self.index));
        if let Some(r) = &self.refused {
            bytes.extend_from_slice(&codec::encode(r));
        }
        bytes
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<TxLocation, StoreError> {
        let corrupt = |e: std::io::Error| StoreError::Corrupt(format!("transaction index: {e}"));
        let mut rest = bytes;
        let (height, index) = <(u64, u32)>::deserialize(&mut rest).map_err(corrupt)?;
        let refused = match rest {
            [] => None,
            _ => Some(borsh::from_slice::<Refusal>(rest).map_err(corrupt)?),
        };
        Ok(TxLocation {
            height,
            index,
            refused,
        })
    }
}

/// A stored node: its encoding, then the height it was last written at.
pub(super) fn node_record(node: &Node, height: u64) -> Vec<u8> {
    let mut bytes = codec::encode(node);
    bytes.extend_from_slice(&be(height));
    bytes
}

pub(super) fn split_node_record(hash: &Hash32, bytes: &[u8]) -> Result<(Node, u64), StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("node {hash}: {e}"));
    let (node, height) = split_height(bytes).ok_or_else(|| corrupt("too short".into()))?;
    let node = codec::decode(node, 128).map_err(|e| corrupt(e.to_string()))?;
    Ok((node, height))
}

/// A stored value: its bytes, then the height it was last written at.
pub(super) fn value_record(value: &[u8], height: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len() + 8);
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(&be(height));
    bytes
}

/// A record's bytes and the height that ends it.
pub(super) fn split_height(record: &[u8]) -> Option<(&[u8], u64)> {
    let at = record.len().checked_sub(8)?;
    let height = u64::from_be_bytes(record[at..].try_into().expect("8 bytes"));
    Some((&record[..at], height))
}

/// A height's stale record: how many node keys, the node keys, then the leaves' hashes
/// whose values went stale.
pub(super) fn stale_record(nodes: &[NodeKey], values: &[Hash32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + nodes.len() * NodeKey::LEN + values.len() * 32);
    bytes.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
    for key in nodes {
        bytes.extend_from_slice(&key.to_bytes());
    }
    for leaf in values {
        bytes.extend_from_slice(leaf.as_bytes());
    }
    bytes
}

/// The node keys and value hashes of a [`stale_record`].
pub(super) fn split_stale_record(bytes: &[u8]) -> Option<(Vec<NodeKey>, Vec<Hash32>)> {
    let count = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let keys_end = count.checked_mul(NodeKey::LEN)?.checked_add(4)?;
    let (keys, values) = (bytes.get(4..keys_end)?, &bytes[keys_end..]);
    if !values.len().is_multiple_of(32) {
        return None;
    }
    let keys = keys
        .chunks_exact(NodeKey::LEN)
        .map(|k| NodeKey::from_bytes(k).expect("a key's length"))
        .collect();
    let values = values
        .chunks_exact(32)
        .map(|v| Hash32(v.try_into().expect("32 bytes")))
        .collect();
    Some((keys, values))
}

pub(super) fn be(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachet_chain::state_tree::TreeBatch;
    use proptest::prelude::*;

    proptest! {
        /// A height's stale record reads back as written, and no bytes make the reader panic
        /// (a record is read from disk, where it may be damaged).
        #[test]
        fn stale_records_read_back_and_any_bytes_are_refused_or_read(
            keys in prop::collection::vec((any::<u32>(), any::<[u8; 32]>()), 0..20),
            values in prop::collection::vec(any::<[u8; 32]>(), 0..20),
            junk in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let tree = TreeBatch {
                stale: keys
                    .iter()
                    .map(|(path, hash)| NodeKey { path: *path, hash: Hash32(*hash) })
                    .collect(),
                stale_values: values.iter().map(|v| Hash32(*v)).collect(),
                ..TreeBatch::default()
            };
            let record = stale_record(&tree.stale, &tree.stale_values);
            let (read_keys, read_values) = split_stale_record(&record).unwrap();
            prop_assert_eq!(read_keys, tree.stale);
            prop_assert_eq!(read_values, tree.stale_values);
            if let Some((k, v)) = split_stale_record(&junk) {
                prop_assert_eq!(4 + k.len() * NodeKey::LEN + v.len() * 32, junk.len());
            }
        }
    }
}
