//! Reading the state tree from the store: nodes (from memory, the node cache, RocksDB, or
//! derived from the key index below a derived tree's top levels), values, and the head's
//! entries through the key index.

use super::Store;
use super::locks::shared;
use super::schema::*;
use super::tuning::MAX_CACHED_VALUE;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::{
    self, Node, NodeKey, StoreError, TreeBatch, TreeStore, bucket_index, bucket_position,
};
use std::sync::Arc;

impl Store {
    /// The levels held in memory when the tree is derived ([`super::TreePlacement::Derived`]).
    pub(super) fn top_levels(&self) -> Option<usize> {
        self.resident.as_ref().and_then(|r| shared(r).levels)
    }

    /// A node below the top levels of a derived tree, at or under bucket `levels`: from the
    /// node cache, or by rebuilding its bucket's subtree from the key index (every node of it
    /// then cached). A node of an older root that the index no longer describes is not found.
    fn derived_node(&self, levels: usize, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        if let Some(node) = self.nodes.as_ref().and_then(|c| c.get(&key.hash)) {
            return Ok(Some(node));
        }
        let index = bucket_index(levels, key.path);
        let pos = bucket_position(levels, index);
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_lower_bound(pos.path.to_be_bytes().to_vec());
        if let Some(next) = index.checked_add(1).filter(|n| u64::from(*n) < 1 << levels) {
            options
                .set_iterate_upper_bound(bucket_position(levels, next).path.to_be_bytes().to_vec());
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(CF_KEYS), options);
        iter.seek_to_first();
        let mut entries = Vec::new();
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            let corrupt = || StoreError::Corrupt(format!("key index entry {}", hex(k)));
            entries.push((
                Hash32(k.try_into().map_err(|_| corrupt())?),
                Hash32(v.try_into().map_err(|_| corrupt())?),
            ));
            iter.next();
        }
        iter.status().map_err(backend)?;
        let mut found = None;
        state_tree::build_at(pos, &entries, &mut |built, node| {
            if built.hash == key.hash {
                found = Some(node);
            }
            if let Some(cache) = &self.nodes {
                cache.insert(built.hash, node);
            }
        });
        Ok(found)
    }

    /// The head's nodes below a derived tree's top levels that `tree` makes stale, with their
    /// contents, read while the key index still holds the head (before `tree`'s height is
    /// written). Empty unless the tree is derived.
    pub(super) fn stale_below_top(
        &self,
        tree: &TreeBatch,
    ) -> Result<Vec<(NodeKey, Node)>, StoreError> {
        let Some(resident) = &self.resident else {
            return Ok(Vec::new());
        };
        let below: Vec<NodeKey> = {
            let resident = shared(resident);
            if resident.levels.is_none() {
                return Ok(Vec::new());
            }
            tree.stale
                .iter()
                .filter(|k| !resident.holds(k))
                .copied()
                .collect()
        };
        let levels = self.top_levels().expect("derived");
        below
            .into_iter()
            .map(|key| match self.derived_node(levels, &key)? {
                Some(node) => Ok((key, node)),
                None => Err(StoreError::Missing {
                    what: "node",
                    hash: key.hash,
                }),
            })
            .collect()
    }
}

impl TreeStore for Store {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        if let Some(resident) = &self.resident {
            let resident = shared(resident);
            if let Some(node) = resident.nodes.get(key) {
                return Ok(Some(node));
            }
            let Some(levels) = resident.levels else {
                return Ok(None);
            };
            drop(resident);
            return self.derived_node(levels, key);
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
