//! Reading the state tree from the store: nodes (from memory, the node cache or RocksDB),
//! values, and the head's entries through the key index.

use super::Store;
use super::locks::shared;
use super::schema::*;
use super::tuning::MAX_CACHED_VALUE;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::{Node, NodeKey, StoreError, TreeStore};
use std::sync::Arc;

impl TreeStore for Store {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        if let Some(resident) = &self.resident {
            return Ok(shared(resident).nodes.get(key));
        }
        // Cached by hash: a node is the same wherever it is stored.
        if let Some(node) = self.nodes.as_ref().and_then(|c| c.get(&key.hash)) {
            return Ok(Some(node));
        }
        let node: Option<Node> = self
            .db
            .get_pinned_cf(self.cf(CF_NODES), key.to_bytes())
            .map_err(backend)?
            .map(|b| split_node_record(&key.hash, &b).map(|(node, _)| node))
            .transpose()?;
        if let (Some(cache), Some(node)) = (&self.nodes, &node) {
            cache.insert(key.hash, *node);
        }
        Ok(node)
    }

    fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.values.as_ref().and_then(|c| c.get(leaf)) {
            return Ok(Some(value.to_vec()));
        }
        let Some(record) = self
            .db
            .get_pinned_cf(self.cf(CF_VALUES), leaf.as_bytes())
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let (value, _) = split_height(&record)
            .ok_or_else(|| StoreError::Corrupt(format!("value of leaf {leaf}: too short")))?;
        if let Some(cache) = &self.values
            && value.len() <= MAX_CACHED_VALUE
        {
            cache.insert(*leaf, Arc::from(value));
        }
        Ok(Some(value.to_vec()))
    }

    fn indexed(&self, root: &Hash32, key: &Hash32) -> Result<Option<Option<Hash32>>, StoreError> {
        let before = self.indexed_root();
        if before.root != Some(*root) {
            return Ok(None);
        }
        let value = self
            .db
            .get_pinned_cf(self.cf(CF_KEYS), key.as_bytes())
            .map_err(backend)?
            .map(|v| {
                <[u8; 32]>::try_from(&v[..])
                    .map(Hash32)
                    .map_err(|_| StoreError::Corrupt(format!("key index entry of {key}")))
            })
            .transpose()?;
        if self.indexed_root() != before {
            // A commit moved the head meanwhile: what was read may be the newer root's.
            return Ok(None);
        }
        Ok(Some(value))
    }
}
