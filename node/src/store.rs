//! RocksDB storage: blocks, commit certificates, the state tree, a transaction index, proposals
//! not yet decided, and misbehaviour evidence.
//!
//! Each committed height is written with one atomic, synced `WriteBatch` (the block, its
//! certificate, the new tree nodes and values, the index entries and the new head), so a crash
//! at any point leaves the store at the last committed height, with its state root.
//! Write failures are fatal for the node: a store that may have diverged must not be used.

use crate::cache::Cache;
use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::codec;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::{Node, StoreError, TreeBatch, TreeStore};
use cachet_chain::tx::TxId;
use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use std::path::Path;
use std::sync::Arc;

const CF_BLOCKS: &str = "blocks";
const CF_COMMITS: &str = "commits";
const CF_NODES: &str = "nodes";
const CF_VALUES: &str = "values";
const CF_TXS: &str = "txs";
const CF_UNDECIDED: &str = "undecided";
const CF_EVIDENCE: &str = "evidence";
const CF_META: &str = "meta";
const FAMILIES: [&str; 8] = [
    CF_BLOCKS,
    CF_COMMITS,
    CF_NODES,
    CF_VALUES,
    CF_TXS,
    CF_UNDECIDED,
    CF_EVIDENCE,
    CF_META,
];

const META_HEAD: &[u8] = b"head";
const META_GENESIS: &[u8] = b"genesis";
const META_VALSET: &[u8] = b"valset-change:";

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

/// Decoded state-tree nodes kept in memory by default (100–200 bytes each, up to twice this
/// many): every transaction walks ~log2(entries) nodes, the upper ones shared by all.
pub const DEFAULT_CACHED_NODES: usize = 300_000;
/// State values kept in memory by default (agency records, policies: read by every
/// transaction).
pub const DEFAULT_CACHED_VALUES: usize = 20_000;
/// Values larger than this are not cached.
const MAX_CACHED_VALUE: usize = 4096;

/// RocksDB's block cache, shared by the column families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Memtables, all column families together.
const DB_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Every key is read by point lookup (heights, hashes): Bloom filters let a lookup skip the
/// files that do not hold its key, and index and filter blocks live in the bounded block cache.
fn family_options(block_cache: &rocksdb::Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(block_cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts
}

/// The node's database.
pub struct Store {
    db: DB,
    /// Tree nodes and values are immutable under their hash, so caching them is always safe.
    nodes: Option<Cache<Node>>,
    values: Option<Cache<Arc<[u8]>>>,
}

fn be(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Store {
    /// Open (or create) the database under `path`, with the default caches.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHED_NODES, DEFAULT_CACHED_VALUES)
    }

    /// Open (or create) the database under `path`, caching up to about `nodes` tree nodes and
    /// `values` state values in memory (0: no cache).
    pub fn open_with_cache(path: &Path, nodes: usize, values: usize) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // All memtables together, so that memory stays bounded whatever the column families.
        opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
        let block_cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options(&block_cache)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(backend)?;
        Ok(Store {
            db,
            nodes: (nodes > 0).then(|| Cache::new(nodes)),
            values: (values > 0).then(|| Cache::new(values)),
        })
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

    fn put_tree(&self, batch: &mut WriteBatch, tree: &TreeBatch) {
        for (hash, node) in &tree.nodes {
            batch.put_cf(self.cf(CF_NODES), hash.as_bytes(), codec::encode(node));
        }
        for (hash, value) in &tree.values {
            batch.put_cf(self.cf(CF_VALUES), hash.as_bytes(), value);
        }
    }

    /// After `tree` is durably written: its nodes are the newest paths, the ones the next
    /// block reads first.
    fn cache_tree(&self, tree: &TreeBatch) {
        if let Some(cache) = &self.nodes {
            for (hash, node) in &tree.nodes {
                cache.insert(*hash, *node);
            }
        }
        if let Some(cache) = &self.values {
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
        let mut batch = WriteBatch::default();
        self.put_tree(&mut batch, tree);
        let bytes = codec::encode(header);
        batch.put_cf(self.cf(CF_META), META_GENESIS, &bytes);
        batch.put_cf(self.cf(CF_META), META_HEAD, &bytes);
        self.write(batch)?;
        self.cache_tree(tree);
        Ok(())
    }

    /// Commit a decided block: everything for its height in one synced batch.
    pub fn commit(
        &self,
        block: &Block,
        certificate: &[u8],
        tree: &TreeBatch,
    ) -> Result<(), StoreError> {
        let h = block.header.height.0;
        let mut batch = WriteBatch::default();
        self.put_tree(&mut batch, tree);
        batch.put_cf(self.cf(CF_BLOCKS), be(h), block.encode());
        batch.put_cf(self.cf(CF_COMMITS), be(h), certificate);
        for (i, tx) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                height: h,
                index: i as u32,
            };
            batch.put_cf(self.cf(CF_TXS), tx.id().0.as_bytes(), codec::encode(&loc));
        }
        batch.put_cf(self.cf(CF_META), META_HEAD, codec::encode(&block.header));
        if block.header.next_validators_hash != block.header.validators_hash {
            let mut key = META_VALSET.to_vec();
            key.extend_from_slice(&be(h));
            batch.put_cf(self.cf(CF_META), key, []);
        }
        // Proposals for this height are settled now.
        batch.delete_range_cf(self.cf(CF_UNDECIDED), be(h), be(h + 1));
        self.write(batch)?;
        self.cache_tree(tree);
        Ok(())
    }

    /// Replace the certificate of a committed height (the finalized one may carry more
    /// signatures than the decided one).
    pub fn update_certificate(&self, height: u64, certificate: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_COMMITS), be(height), certificate);
        self.write(batch)
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))?
            .map(|b| {
                Block::decode(&b).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))
            })
            .transpose()
    }

    /// The header of the committed block at `height`, without decoding its transactions (a
    /// block's encoding starts with its header).
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))?
            .map(|b| {
                BlockHeader::deserialize(&mut b.as_slice())
                    .map_err(|e| StoreError::Corrupt(format!("header {height}: {e}")))
            })
            .transpose()
    }

    /// The raw committed block at `height`.
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))
    }

    /// The encoded commit certificate of `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_cf(CF_COMMITS, &be(height))
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.get_cf(CF_TXS, id.0.as_bytes())?
            .map(|b| borsh::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Keep a proposed block until its height is decided (survives a crash mid-height).
    pub fn put_undecided(
        &self,
        height: u64,
        round: u32,
        id: &Hash32,
        block: &[u8],
    ) -> Result<(), StoreError> {
        let mut key = be(height).to_vec();
        key.extend_from_slice(&round.to_be_bytes());
        key.extend_from_slice(id.as_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_UNDECIDED), key, block);
        self.write(batch)
    }

    /// Proposed blocks kept for `height`: `(round, block id, block bytes)`.
    pub fn undecided(&self, height: u64) -> Result<Vec<(u32, Hash32, Vec<u8>)>, StoreError> {
        let prefix = be(height);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_UNDECIDED),
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(&prefix) {
                break;
            }
            if k.len() != 8 + 4 + 32 {
                return Err(StoreError::Corrupt("undecided key".into()));
            }
            let round = u32::from_be_bytes(k[8..12].try_into().expect("4 bytes"));
            let id = Hash32(k[12..44].try_into().expect("32 bytes"));
            out.push((round, id, v.to_vec()));
        }
        Ok(out)
    }

    /// Heights whose block changed the validator set, ascending.
    pub fn validator_set_changes(&self) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            rocksdb::IteratorMode::From(META_VALSET, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, _) = item.map_err(backend)?;
            let Some(h) = k.strip_prefix(META_VALSET) else {
                break;
            };
            let h: [u8; 8] = h
                .try_into()
                .map_err(|_| StoreError::Corrupt("valset key".into()))?;
            out.push(u64::from_be_bytes(h));
        }
        Ok(out)
    }

    /// Record misbehaviour evidence observed at `height` (idempotent per distinct evidence).
    pub fn put_evidence(&self, height: u64, evidence: &[u8]) -> Result<(), StoreError> {
        let mut key = be(height).to_vec();
        key.extend_from_slice(blake3::hash(evidence).as_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_EVIDENCE), key, evidence);
        self.write(batch)
    }

    /// All recorded evidence: `(height, encoded evidence)`.
    pub fn evidence(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_EVIDENCE), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(backend)?;
            let h = u64::from_be_bytes(
                k[..8]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("evidence key".into()))?,
            );
            out.push((h, v.to_vec()));
        }
        Ok(out)
    }
}

impl TreeStore for Store {
    fn node(&self, hash: &Hash32) -> Result<Option<Node>, StoreError> {
        if let Some(node) = self.nodes.as_ref().and_then(|c| c.get(hash)) {
            return Ok(Some(node));
        }
        let node: Option<Node> = self
            .get_cf(CF_NODES, hash.as_bytes())?
            .map(|b| {
                codec::decode(&b, 128).map_err(|e| StoreError::Corrupt(format!("node {hash}: {e}")))
            })
            .transpose()?;
        if let (Some(cache), Some(node)) = (&self.nodes, &node) {
            cache.insert(*hash, *node);
        }
        Ok(node)
    }

    fn value(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.values.as_ref().and_then(|c| c.get(hash)) {
            return Ok(Some(value.to_vec()));
        }
        let value = self.get_cf(CF_VALUES, hash.as_bytes())?;
        if let (Some(cache), Some(value)) = (&self.values, &value)
            && value.len() <= MAX_CACHED_VALUE
        {
            cache.insert(*hash, Arc::from(value.as_slice()));
        }
        Ok(value)
    }
}
