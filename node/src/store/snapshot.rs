//! A store's state read out whole for a snapshot, and a joining node's store written from one:
//! entries chunk by chunk, then the history a node keeps below its first block and the head,
//! in one batch.
//!
//! It is not the snapshot format or its checks ([`cachet_chain::snapshot`]), nor where
//! snapshots are kept or how they travel ([`crate::statesync`]).

use super::schema::*;
use super::{SnapshotHead, Store};
use cachet_chain::codec;
use cachet_chain::hash::Hash32;
use cachet_chain::snapshot::Entry;
use cachet_chain::state_tree::{Node, NodeKey, StoreError, TreeStore};
use rocksdb::WriteBatch;

impl Store {
    /// The height the store's history starts above: the snapshot it was joined from (0: it
    /// holds every block from genesis). Blocks at or below it are only those receipts and
    /// checkpoints need.
    pub fn base(&self) -> Result<u64, StoreError> {
        Ok(self
            .get_cf(CF_META, META_BASE)?
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// How many entries the head's state holds (a pass over the key index).
    pub fn key_count(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_KEYS));
        iter.seek_to_first();
        while iter.valid() {
            count += 1;
            iter.next();
        }
        iter.status().map_err(backend)?;
        Ok(count)
    }

    /// Every entry of the head's state, in key order, as a snapshot holds them: from the key
    /// index, each value read by its leaf. For a store nothing writes to (a copy).
    pub fn state_entries(
        &self,
        mut each: impl FnMut(Hash32, Hash32, Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.each_key(|key, value_hash| {
            let leaf = Node::Leaf {
                key,
                value: value_hash,
            }
            .hash();
            let value = self.value(&leaf)?.ok_or(StoreError::Missing {
                what: "value",
                hash: leaf,
            })?;
            each(key, value_hash, value)
        })
    }

    /// Write one checked chunk of a snapshot at `height` into a store being joined: its entries
    /// in the key index, their values, and its tree nodes (unless the tree is held in memory,
    /// where it is rebuilt from the key index when the store opens). Not synced: a join cut
    /// short starts again on a new store.
    pub fn put_snapshot_chunk(
        &self,
        height: u64,
        entries: &[Entry],
        nodes: &[(NodeKey, Node)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let (keys, values) = (self.cf(CF_KEYS), self.cf(CF_VALUES));
        for e in entries {
            let value_hash = cachet_chain::state_tree::value_hash(&e.value);
            let leaf = Node::Leaf {
                key: e.key,
                value: value_hash,
            }
            .hash();
            batch.put_cf(keys, e.key.as_bytes(), value_hash.as_bytes());
            batch.put_cf(values, leaf.as_bytes(), value_record(&e.value, height));
        }
        self.put_nodes(&mut batch, height, nodes);
        self.db.write(batch).map_err(backend)
    }

    fn put_nodes(&self, batch: &mut WriteBatch, height: u64, nodes: &[(NodeKey, Node)]) {
        if self.resident.is_none() {
            let family = self.cf(CF_NODES);
            for (key, node) in nodes {
                batch.put_cf(family, key.to_bytes(), node_record(node, height));
            }
        }
    }

    /// Finish a join: the genesis, the kept blocks with their certificates and validator sets,
    /// the checkpoint, the tree's top and the head, in one synced batch. Until it is written the
    /// store has no genesis, and a node does not start on it.
    pub fn finish_snapshot(&self, s: SnapshotHead<'_>) -> Result<(), StoreError> {
        let h = s.head.height.0;
        let mut batch = WriteBatch::default();
        self.put_nodes(&mut batch, h, s.top_nodes);
        self.put_validators(&mut batch, 0, s.genesis_validators);
        for b in s.blocks {
            batch.put_cf(self.cf(CF_BLOCKS), be(b.height), &b.block);
            batch.put_cf(self.cf(CF_COMMITS), be(b.height), &b.certificate);
            if let Some(set) = &b.validators_after {
                let mut key = META_VALSET.to_vec();
                key.extend_from_slice(&be(b.height));
                batch.put_cf(self.cf(CF_META), key, []);
                self.put_validators(&mut batch, b.height, set);
            }
        }
        if let Some(anchor) = s.checkpoint {
            let mut key = META_CHECKPOINT.to_vec();
            key.extend_from_slice(&be(anchor.header.height.0));
            batch.put_cf(self.cf(CF_META), key, anchor.encode());
        }
        let meta = self.cf(CF_META);
        batch.put_cf(meta, META_FORMAT, [FORMAT]);
        batch.put_cf(meta, META_BASE, be(h));
        batch.put_cf(meta, META_GENESIS, codec::encode(s.genesis));
        batch.put_cf(meta, META_HEAD, codec::encode(s.head));
        self.write_head(batch, s.head.state_root)
    }
}
