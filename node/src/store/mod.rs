//! RocksDB storage: blocks, commit certificates, the state tree, a transaction index, proposals
//! not yet decided, and misbehaviour evidence.
//!
//! It is not the rules (`cachet-contracts` computes what a block changes; the store keeps it)
//! nor consensus: it never decides what to write, only writes it whole.
//!
//! # Format
//!
//! Format version 4 (the byte in `meta`/`"format"`). One RocksDB database, one column family
//! per concern. In the key column, `name:N` is an N-byte field, integers big-endian, and
//! `"text"` is those ASCII bytes; `height` is a block height (0 is genesis). "Encoding" means
//! the canonical encoding of `docs/spec/encoding.md`.
//!
//! | family | key | value |
//! |---|---|---|
//! | `blocks` | `height:8` | the committed block's encoding (its header first, so a header is read without its transactions) |
//! | `commits` | `height:8` | the height's commit certificate: Malachite's `CommitCertificate` in Borsh (height, round, block id, the validators' signatures) |
//! | `nodes` | `path:4 hash:32` | a state-tree node's encoding, then `written_at:8`, the last height that wrote it. The key is a [`NodeKey`]: the first 32 bits of the node's path, then its hash, so a subtree's nodes are neighbours. Empty while the tree is held in memory |
//! | `values` | `leaf:32` | a state value's bytes, then `written_at:8`; the key is the hash of the leaf that holds it |
//! | `keys` | `key:32` | `value_hash:32`: the head's state entries, by state-key hash (an entry deleted at a height is deleted here) |
//! | `txs` | `tx_id:32` | where a committed transaction is: `height` (u64, little-endian) then `index` (u32, little-endian); for one refused in its block, then its `code` (u32, little-endian), `name` and `message` (each a Borsh string: u32 length, UTF-8) |
//! | `stale` | `height:8` | what the height made stale: `count:4`, then `count` node keys (`path:4 hash:32` each, none while the tree is in memory), then the leaf hashes (`leaf:32` each) whose values went stale |
//! | `undecided` | `height:8 round:4 block_id:32` | a block proposed at that height and round, not decided yet (its encoding) |
//! | `evidence` | `height:8 digest:32` | equivocation evidence seen at that height: `(address, vote, vote)` in Borsh; `digest` is its BLAKE3 hash |
//! | `meta` | `"head"` | the latest committed header's encoding |
//! | `meta` | `"genesis"` | the genesis header's encoding |
//! | `meta` | `"format"` | one byte: the format version, 4 |
//! | `meta` | `"pruned"` | `height:8`: the last height whose stale state is deleted |
//! | `meta` | `"base"` | `height:8`: below it the store holds only the blocks (and certificates) that changed the validator set and checkpoints' blocks: the snapshot height a node joined at, or the height blocks were pruned to (the base's own block is kept until pruning passes it). Absent: every block since genesis |
//! | `meta` | `"tree"` | `"memory"`; present only while the tree's nodes are not stored (held in memory, or its top held and the rest derived from `keys`) |
//! | `meta` | `"valset-change:" height:8` | empty: this height's block changed the validator set |
//! | `meta` | `"validators:" height:8` | the validator set in the state after this height (genesis, and each height that changed it), as a state value |
//! | `meta` | `"checkpoint:" height:8` | the encoded `TrustAnchor` of a checkpoint (a height at a multiple of the chain's `checkpoint_interval`), written right after its commit (and at start if a crash came in between) |
//!
//! RocksDB's own `default` family is unused and stays empty. `node/tests/store.rs` reads this
//! table and checks that every key of a committed store is one of its rows, and that every row
//! is written.
//!
//! # What a commit writes
//!
//! Each committed height is one synced `WriteBatch` ([`Store::commit`]): the block in
//! `blocks`, its certificate in `commits`, the tree's new nodes in `nodes` (unless held in
//! memory) and values in `values`, the height's `stale` record, the changed entries in `keys`,
//! one `txs` entry per transaction, `meta`/`"head"`, for a validator-set change its two `meta`
//! records, and the deletion of the height's `undecided` proposals. So a crash at any point
//! leaves the store at the last committed height, with its state root. Write failures are fatal
//! for the node: a store that may have diverged must not be used.
//!
//! # Pruning
//!
//! State older than the last `keep` heights can be pruned ([`Store::prune`], in
//! [`prune`](self)): each height's `stale` record lists what it replaced, and pruning deletes
//! each node and value unless it was written again since (its `written_at` says so; from a
//! process's first pruning step on, the stale ones are also tracked in memory, so that pruning
//! reads none). Validator sets and checkpoints are kept for good: receipts carry the
//! validator-set changes, and verifiers advance to checkpoints. Blocks, their certificates and
//! their transactions' index entries are kept unless `block_history_heights` is set: then
//! [`Store::prune_blocks`] deletes those more than that many heights below the head, but for
//! the blocks that changed the validator set and the checkpoints' blocks, and moves `base`.
//!
//! # The tree in memory, or derived
//!
//! With [`TreePlacement::Memory`] the tree's nodes are not stored: they are held in memory
//! ([`resident`](self)), rebuilt at open from `keys` (which every commit writes anyway), and
//! only the head's state survives a restart. About 10 nodes per certificate anchored alone
//! are the heaviest writes of a node, and their compaction and pruning too; the price is
//! memory (ADR 0005). With [`TreePlacement::Derived`] only the top levels are held; a node
//! below them is recomputed from the entries `keys` holds under its position at that depth
//! (one range of keys) and kept in the node cache, and the nodes below the top that a commit
//! makes stale are read before it and held until pruning, for readers of recent roots
//! (ADR 0016).
//!
//! # Modules
//!
//! `schema` (the layout above, as code), `tuning` (RocksDB's options), `resident` and `stale`
//! (what is held in memory), `locks`; then the `Store` in parts: opening and committing here,
//! `records` (blocks, certificates, the transaction index, validator sets, proposals,
//! evidence), `tree` (state reads), `prune`, `placement` (moving the tree between disk and
//! memory), `migrate` (older formats), `copy` (online copies, opening read-only, the key
//! index), `snapshot` (the state read out for a snapshot, and a joining store written from
//! one), `stats` (what the metrics read).

mod copy;
mod locks;
mod migrate;
mod placement;
mod prune;
mod records;
mod resident;
mod schema;
mod snapshot;
mod stale;
mod stats;
mod tree;
mod tuning;

pub use resident::TreePlacement;
pub use schema::{Refusal, TxLocation};
pub use stale::Pruned;
pub use tuning::{
    CacheSizes, DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_CACHED_NODES, DEFAULT_CACHED_VALUES,
    DEFAULT_MEMTABLES_BYTES, DEFAULT_TREE_TOP_LEVELS, MIN_MEMORY_BUDGET_BYTES,
};

use crate::cache::Cache;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::codec;
use cachet_chain::hash::Hash32;
use cachet_chain::state::{StateKey, ValidatorSet, decode_value};
use cachet_chain::state_tree::{self, Node, NodeKey, StoreError, TreeBatch, TreeStore};
use cachet_contracts::Executed;
use locks::{IndexedRoot, exclusive, shared};
use resident::ResidentTree;
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use schema::*;
use stale::StaleNodes;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tuning::{MAX_CACHED_VALUE, MAX_WAL_BYTES, block_cache_shard_bits, family_options};

/// The node's database.
pub struct Store {
    db: DB,
    /// The options the database was opened with: they hold RocksDB's statistics, read by
    /// [`Store::io`].
    options: Options,
    /// Tree nodes and values are immutable under their hash, so caching them is always safe.
    /// (No node cache while the whole tree is held in memory; with it derived, the nodes
    /// below its top that were read or written last.)
    nodes: Option<Cache<Node>>,
    /// The tree's nodes, when held in memory ([`TreePlacement::Memory`]), or its top levels
    /// ([`TreePlacement::Derived`]).
    resident: Option<RwLock<ResidentTree>>,
    values: Option<Cache<Arc<[u8]>>>,
    /// RocksDB's block cache, shared by every family: read for its usage.
    block_cache: rocksdb::Cache,
    /// Held by commits and pruning steps: a step must not delete a node that a commit is
    /// writing again. It guards the stale nodes pruning will delete.
    writing: std::sync::Mutex<StaleNodes>,
    /// Which root the key index holds, read before and after each index lookup.
    indexed: std::sync::RwLock<IndexedRoot>,
    /// RocksDB's lock on the database, when opened read-only (see [`Store::open_read_only`]).
    _lock: Option<std::fs::File>,
    /// Transactions' index entries block pruning deleted since the pruned families were last
    /// compacted ([`Store::pruned_blocks_compaction_due`]).
    pruned_txs: std::sync::atomic::AtomicU64,
}

/// A block kept below a snapshot's height: one a receipt or a checkpoint needs.
pub struct KeptBlock {
    /// Its height.
    pub height: u64,
    /// The block's encoding.
    pub block: Vec<u8>,
    /// Its commit certificate, as stored.
    pub certificate: Vec<u8>,
    /// The validator set after it, if it changed the set.
    pub validators_after: Option<ValidatorSet>,
}

/// What a joining node writes when its last chunk is in.
pub struct SnapshotHead<'a> {
    /// The consortium's genesis header.
    pub genesis: &'a BlockHeader,
    /// The genesis validator set.
    pub genesis_validators: &'a ValidatorSet,
    /// The blocks kept below the snapshot and the snapshot's own block, in height order.
    pub blocks: &'a [KeptBlock],
    /// The latest checkpoint at or below the snapshot, if any.
    pub checkpoint: Option<&'a cachet_chain::trust::TrustAnchor>,
    /// The snapshot's header: the new head.
    pub head: &'a BlockHeader,
    /// The tree's nodes above the chunks' cut.
    pub top_nodes: &'a [(NodeKey, Node)],
}

/// Reads a tree through a batch not written yet.
struct Pending<'a> {
    store: &'a Store,
    tree: &'a TreeBatch,
}

impl TreeStore for Pending<'_> {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        match self.tree.nodes.binary_search_by_key(key, |(k, _)| *k) {
            Ok(i) => Ok(Some(self.tree.nodes[i].1)),
            Err(_) => self.store.node(key),
        }
    }
    fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree.values.iter().find(|(h, _)| h == leaf) {
            Some((_, v)) => Ok(Some(v.clone())),
            None => self.store.value(leaf),
        }
    }
}

impl Store {
    /// Open (or create) the database under `path`, with the default caches.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, CacheSizes::default())
    }

    /// Open (or create) the database under `path`, with caches of `sizes`.
    pub fn open_with_cache(path: &Path, sizes: CacheSizes) -> Result<Store, StoreError> {
        let CacheSizes {
            nodes,
            values,
            block_cache_bytes,
            memtables_bytes,
            tree,
            tree_top_levels,
        } = sizes;
        if !(1..=state_tree::NODE_KEY_PATH_BITS).contains(&tree_top_levels) {
            return Err(StoreError::Backend(format!(
                "the tree's top levels must be 1 to {}, not {tree_top_levels}",
                state_tree::NODE_KEY_PATH_BITS
            )));
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_max_total_wal_size(MAX_WAL_BYTES);
        // Counters only (an atomic add each, per core): no timers, no histograms.
        opts.enable_statistics();
        opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
        let mut cache_options = rocksdb::LruCacheOptions::default();
        cache_options.set_capacity(block_cache_bytes);
        cache_options.set_num_shard_bits(block_cache_shard_bits(block_cache_bytes));
        let block_cache = rocksdb::Cache::new_lru_cache_opts(&cache_options);
        let cfs = FAMILIES.iter().map(|name| {
            let options = family_options(name, &block_cache, memtables_bytes);
            ColumnFamilyDescriptor::new(*name, options)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(backend)?;
        let in_memory = tree == TreePlacement::Memory;
        let mut store = Store {
            db,
            options: opts,
            nodes: (nodes > 0 && !in_memory).then(|| Cache::new(nodes)),
            resident: None,
            values: (values > 0).then(|| Cache::new(values)),
            block_cache,
            writing: std::sync::Mutex::new(StaleNodes::default()),
            indexed: Default::default(),
            _lock: None,
            pruned_txs: Default::default(),
        };
        if store.get_cf(CF_META, META_GENESIS)?.is_some() {
            let format = store.get_cf(CF_META, META_FORMAT)?;
            let head = store
                .head()?
                .ok_or_else(|| StoreError::Corrupt("genesis without a head".into()))?;
            if matches!(format.as_deref(), Some(&[2 | 3])) {
                store.migrate(&head)?;
            } else if format.as_deref() != Some(&[FORMAT]) {
                return Err(StoreError::Corrupt(format!(
                    "the database under {} is in an older format ({}); this node reads format \
                     {FORMAT}: move it away and let the node sync from its peers",
                    path.display(),
                    format.map_or(1, |f| f.first().copied().unwrap_or(0)),
                )));
            }
            exclusive(&store.indexed).root = Some(head.state_root);
            store.place_tree(tree, tree_top_levels, Some(&head))?;
        } else {
            store.place_tree(tree, tree_top_levels, None)?;
        }
        Ok(store)
    }

    fn lock_writes(&self) -> std::sync::MutexGuard<'_, StaleNodes> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf), key).map_err(backend)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(backend)
    }

    /// The tree changes of `height`: new nodes marked with it, their values, and the nodes it
    /// made stale (the nodes only while they are stored).
    fn put_tree(&self, batch: &mut WriteBatch, height: u64, tree: &TreeBatch) {
        // Handles looked up once, not once per key: a lookup is a search of a map by name, and
        // a block of anchors writes ~50k keys here.
        let stale_nodes: &[NodeKey] = match self.resident {
            Some(_) => &[],
            None => {
                let nodes = self.cf(CF_NODES);
                for (key, node) in &tree.nodes {
                    batch.put_cf(nodes, key.to_bytes(), node_record(node, height));
                }
                &tree.stale
            }
        };
        let values = self.cf(CF_VALUES);
        for (leaf, value) in &tree.values {
            batch.put_cf(values, leaf.as_bytes(), value_record(value, height));
        }
        if !stale_nodes.is_empty() || !tree.stale_values.is_empty() {
            batch.put_cf(
                self.cf(CF_STALE),
                be(height),
                stale_record(stale_nodes, &tree.stale_values),
            );
        }
        let keys = self.cf(CF_KEYS);
        for (key, value) in &tree.entries {
            match value {
                Some(value) => batch.put_cf(keys, key.as_bytes(), value.as_bytes()),
                None => batch.delete_cf(keys, key.as_bytes()),
            }
        }
    }

    fn indexed_root(&self) -> IndexedRoot {
        *shared(&self.indexed)
    }

    /// Write a batch that moves the head (and with it the key index) to `root`.
    fn write_head(&self, batch: WriteBatch, root: Hash32) -> Result<(), StoreError> {
        let mut indexed = exclusive(&self.indexed);
        indexed.root = None;
        indexed.epoch += 1;
        drop(indexed);
        let written = self.write(batch);
        let mut indexed = exclusive(&self.indexed);
        indexed.epoch += 1;
        // After a failed write the index is not known to match any root: lookups walk.
        indexed.root = written.is_ok().then_some(root);
        written
    }

    fn put_validators(&self, batch: &mut WriteBatch, height: u64, set: &ValidatorSet) {
        let mut key = META_VALIDATORS.to_vec();
        key.extend_from_slice(&be(height));
        batch.put_cf(self.cf(CF_META), key, codec::encode(set));
    }

    /// After `tree` is durably written: its nodes are the newest paths, the ones the next
    /// block reads first. What it made stale leaves the caches: the head's state is what
    /// blocks and receipts read, so the space goes to it (an older root within the kept
    /// history still reads from disk). Without this, the nodes each block replaces (a dozen
    /// per transaction) push the head's deep nodes out, and every new certificate's
    /// existence check walks to disk.
    fn cache_tree(&self, tree: &TreeBatch) {
        if let Some(cache) = &self.nodes {
            // Cached by hash: a leaf that moved is removed, then inserted again.
            for key in &tree.stale {
                cache.remove(&key.hash);
            }
            // With the tree derived, what is above its top levels is held anyway.
            let top = self.top_levels().unwrap_or(0);
            for ((key, node), depth) in tree.nodes.iter().zip(&tree.depths) {
                if usize::from(*depth) >= top {
                    cache.insert(key.hash, *node);
                }
            }
        }
        if let Some(cache) = &self.values {
            for hash in &tree.stale_values {
                cache.remove(hash);
            }
            for (hash, value) in &tree.values {
                if value.len() <= MAX_CACHED_VALUE {
                    cache.insert(*hash, Arc::from(value.as_slice()));
                }
            }
        }
    }

    /// The latest committed header (height 0 is genesis), if initialized.
    pub fn head(&self) -> Result<Option<BlockHeader>, StoreError> {
        self.get_cf(CF_META, META_HEAD)?
            .map(|b| {
                codec::decode(&b, codec::limits::MAX_BLOCK_BYTES)
                    .map_err(|e| StoreError::Corrupt(format!("head: {e}")))
            })
            .transpose()
    }

    /// The genesis header, if initialized.
    pub fn genesis(&self) -> Result<Option<BlockHeader>, StoreError> {
        self.get_cf(CF_META, META_GENESIS)?
            .map(|b| {
                codec::decode(&b, codec::limits::MAX_BLOCK_BYTES)
                    .map_err(|e| StoreError::Corrupt(format!("genesis: {e}")))
            })
            .transpose()
    }

    /// Write the genesis state and header (first start only).
    pub fn init_genesis(&self, header: &BlockHeader, tree: &TreeBatch) -> Result<(), StoreError> {
        let validators: ValidatorSet = state_tree::get(
            &Pending { store: self, tree },
            &header.state_root,
            &StateKey::Validators.hash(),
        )?
        .map(|b| decode_value(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()?
        .ok_or_else(|| StoreError::Corrupt("genesis state has no validator set".into()))?;
        let _writing = self.lock_writes();
        if let Some(resident) = &self.resident {
            exclusive(resident).insert(tree);
        }
        let mut batch = WriteBatch::default();
        self.put_tree(&mut batch, 0, tree);
        self.put_validators(&mut batch, 0, &validators);
        let bytes = codec::encode(header);
        batch.put_cf(self.cf(CF_META), META_FORMAT, [FORMAT]);
        batch.put_cf(self.cf(CF_META), META_GENESIS, &bytes);
        batch.put_cf(self.cf(CF_META), META_HEAD, &bytes);
        self.write_head(batch, header.state_root)?;
        self.cache_tree(tree);
        Ok(())
    }

    /// Commit a decided block and the state it produced: everything for its height in one
    /// synced batch.
    pub fn commit(
        &self,
        block: &Block,
        certificate: &[u8],
        executed: &Executed,
    ) -> Result<(), StoreError> {
        let h = block.header.height.0;
        let tree = &executed.tree_batch;
        let mut writing = self.lock_writes();
        if let Some(resident) = &self.resident {
            let kept = self.stale_below_top(tree)?;
            // Not taken back if the write fails: that is fatal for the node (see above).
            let mut resident = exclusive(resident);
            resident.insert(tree);
            resident.keep_stale(kept);
        }
        let mut batch = WriteBatch::default();
        self.put_tree(&mut batch, h, tree);
        batch.put_cf(self.cf(CF_BLOCKS), be(h), block.encode());
        batch.put_cf(self.cf(CF_COMMITS), be(h), certificate);
        let txs = self.cf(CF_TXS);
        let mut refused = executed.refused.iter().peekable();
        for (i, tx) in block.txs.iter().enumerate() {
            let refusal = refused.next_if(|(index, _)| *index as usize == i);
            let loc = TxLocation {
                height: h,
                index: i as u32,
                refused: refusal.map(|(_, e)| Refusal {
                    code: e.code(),
                    name: e.name().to_string(),
                    message: e.to_string(),
                }),
            };
            batch.put_cf(txs, tx.id().0.as_bytes(), loc.encode());
        }
        batch.put_cf(self.cf(CF_META), META_HEAD, codec::encode(&block.header));
        if block.header.next_validators_hash != block.header.validators_hash {
            let mut key = META_VALSET.to_vec();
            key.extend_from_slice(&be(h));
            batch.put_cf(self.cf(CF_META), key, []);
            self.put_validators(&mut batch, h, &executed.next_validators);
        }
        // Proposals for this height are settled now.
        batch.delete_range_cf(self.cf(CF_UNDECIDED), be(h), be(h + 1));
        self.write_head(batch, block.header.state_root)?;
        writing.committed(h, tree, self.resident.is_none());
        if let Some(resident) = &self.resident {
            exclusive(resident).went_stale(h, tree);
        }
        drop(writing);
        self.cache_tree(tree);
        Ok(())
    }
}
