//! Moving the state tree between disk and memory when the store opens, and rebuilding the
//! head's tree (or its top levels) from the key index.

use super::Store;
use super::resident::{NodeShards, ResidentTree, TreePlacement};
use super::schema::*;
use cachet_chain::block::BlockHeader;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::{self, NodeKey, StoreError, Subtree, bucket_index, bucket_position};
use rocksdb::WriteBatch;
use std::sync::RwLock;

impl Store {
    /// Keep the tree where `placement` says, moving it if the database keeps it elsewhere.
    /// Into memory (all of it, or its top `levels` levels when derived): the `nodes` family is
    /// emptied first (its versions are dropped), then the head's tree is rebuilt from the key
    /// index. Onto disk: the rebuilt head's nodes are
    /// written. Crash-safe: the marker in `meta` changes only with the `nodes` family emptied,
    /// or once it holds the head's tree; a move onto disk cut short is done again, or its
    /// nodes deleted if the next start keeps the tree in memory.
    pub(super) fn place_tree(
        &mut self,
        placement: TreePlacement,
        levels: usize,
        head: Option<&BlockHeader>,
    ) -> Result<(), StoreError> {
        let in_memory = self.get_cf(CF_META, META_TREE)?.as_deref() == Some(TREE_IN_MEMORY);
        match placement {
            TreePlacement::Memory | TreePlacement::Derived => {
                // Nodes beside the marker: a move onto disk that a crash cut short.
                let stored = self
                    .db
                    .iterator_cf(self.cf(CF_NODES), rocksdb::IteratorMode::Start)
                    .next()
                    .transpose()
                    .map_err(backend)?
                    .is_some();
                if !in_memory || stored {
                    let mut batch = WriteBatch::default();
                    // Every stored key is NodeKey::LEN bytes (older formats: 32), all below this.
                    let (first, past_last): (&[u8], &[u8]) = (&[], &[0xff; NodeKey::LEN + 1]);
                    batch.delete_range_cf(self.cf(CF_NODES), first, past_last);
                    batch.put_cf(self.cf(CF_META), META_TREE, TREE_IN_MEMORY);
                    self.write(batch)?;
                    // The family takes no more writes, so no compaction would reclaim it.
                    self.db
                        .compact_range_cf(self.cf(CF_NODES), None::<&[u8]>, None::<&[u8]>);
                }
                let levels = (placement == TreePlacement::Derived).then_some(levels);
                let mut resident = ResidentTree {
                    levels,
                    ..ResidentTree::default()
                };
                if let Some(head) = head {
                    resident.nodes = match levels {
                        None => self.rebuild_tree(head)?,
                        Some(levels) => self.rebuild_top(head, levels)?,
                    };
                }
                self.resident = Some(RwLock::new(resident));
            }
            TreePlacement::Disk if in_memory => {
                // A marker without a genesis: nothing was committed in memory.
                let Some(head) = head else {
                    let mut batch = WriteBatch::default();
                    batch.delete_cf(self.cf(CF_META), META_TREE);
                    return self.write(batch);
                };
                let nodes = self.rebuild_tree(head)?;
                let family = self.cf(CF_NODES);
                let mut batch = WriteBatch::default();
                for (key, node) in nodes.iter() {
                    batch.put_cf(family, key.to_bytes(), node_record(node, head.height.0));
                    if batch.len() >= 100_000 {
                        self.write(std::mem::take(&mut batch))?;
                    }
                }
                batch.delete_cf(self.cf(CF_META), META_TREE);
                self.write(batch)?;
                tracing::info!(nodes = nodes.len(), "state tree moved from memory to disk");
            }
            TreePlacement::Disk => {}
        }
        Ok(())
    }

    /// The nodes of the tree at `head` above depth `levels`, built from the key index a bucket
    /// at a time (the entries under one position at that depth), and checked against the
    /// head's state root. Holds one bucket's entries and a summary of each bucket, never the
    /// whole index.
    fn rebuild_top(&self, head: &BlockHeader, levels: usize) -> Result<NodeShards, StoreError> {
        let started = std::time::Instant::now();
        let bucket_of = |key: &Hash32| {
            let path = u32::from_be_bytes(key.as_bytes()[..4].try_into().expect("4 bytes"));
            bucket_index(levels, path)
        };
        let mut buckets: Vec<(u32, Subtree)> = Vec::new();
        let mut entries: Vec<(Hash32, Hash32)> = Vec::new();
        let mut count = 0u64;
        let mut close = |entries: &mut Vec<(Hash32, Hash32)>| {
            if let Some((first, _)) = entries.first() {
                let index = bucket_of(first);
                buckets.push((index, Subtree::of(bucket_position(levels, index), entries)));
                entries.clear();
            }
        };
        self.each_key(|key, value| {
            if entries
                .first()
                .is_some_and(|(first, _)| bucket_of(first) != bucket_of(&key))
            {
                close(&mut entries);
            }
            entries.push((key, value));
            count += 1;
            Ok(())
        })?;
        close(&mut entries);
        let mut nodes = NodeShards::default();
        let root = state_tree::build_top(levels, &buckets, &mut |key, node| {
            nodes.insert(key, node);
        });
        if root != head.state_root {
            return Err(StoreError::Corrupt(format!(
                "the key index does not hold the head's state: its {count} entries make root \
                 {root}, the head at height {} has {}",
                head.height.0, head.state_root
            )));
        }
        tracing::info!(
            entries = count,
            levels,
            nodes = nodes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "state tree's top rebuilt in memory from the key index"
        );
        Ok(nodes)
    }

    /// The nodes of the tree at `head`, built from the key index (the head's entries by key),
    /// and checked against the head's state root.
    fn rebuild_tree(&self, head: &BlockHeader) -> Result<NodeShards, StoreError> {
        let started = std::time::Instant::now();
        let entries = self.key_index()?;
        // Not reserved ahead: an estimate of the count (about 2.44 nodes per entry) that
        // lands just past a shard's power of two doubles every shard at once. Grown as they
        // fill, shards rehash a little while the tree is built, and end as full as the count
        // allows.
        let mut nodes = NodeShards::default();
        let root = state_tree::build(&entries, &mut |key, node| {
            nodes.insert(key, node);
        });
        if root != head.state_root {
            return Err(StoreError::Corrupt(format!(
                "the key index does not hold the head's state: its {} entries make root {root}, \
                 the head at height {} has {}",
                entries.len(),
                head.height.0,
                head.state_root
            )));
        }
        tracing::info!(
            entries = entries.len(),
            nodes = nodes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "state tree rebuilt in memory from the key index"
        );
        Ok(nodes)
    }
}
