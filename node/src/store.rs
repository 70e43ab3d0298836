//! RocksDB storage: blocks, commit certificates, the state tree, a transaction index, proposals
//! not yet decided, and misbehaviour evidence.
//!
//! Each committed height is written with one atomic, synced `WriteBatch` (the block, its
//! certificate, the new tree nodes and values, the nodes gone stale, the index entries and the
//! new head), so a crash at any point leaves the store at the last committed height, with its
//! state root. Write failures are fatal for the node: a store that may have diverged must not
//! be used.
//!
//! Tree nodes are keyed by their [`NodeKey`] (the first bits of their path, then their hash),
//! so that a subtree's nodes share data blocks; values by the hash of their leaf.
//!
//! Or the tree's nodes are not stored at all ([`TreePlacement::Memory`]): they are held in
//! memory, rebuilt at open from the index of the head's entries by key (which every commit
//! writes anyway), and only the head's state survives a restart. A node's heaviest writes, and
//! their compaction and pruning, were those of the tree: about 10 nodes per certificate
//! anchored alone (docs/performance.md, twenty-fourth round).
//!
//! State older than the last `keep` heights can be pruned ([`Store::prune`]): each height
//! records the tree nodes and values it made stale, and pruning deletes them unless they were
//! written again since (each carries the height it was last written at; from a process's first
//! pruning step on, the stale ones are also tracked in memory, so that pruning reads none).
//! Blocks, certificates and validator sets are kept for good: peers sync from them, and
//! receipts carry every validator-set change since genesis.

use crate::cache::Cache;
use crate::metrics::{BlockCacheUse, CacheFill, FamilySize, StoreIo};
use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::codec;
use cachet_chain::hash::{DigestMap, DigestSet, Hash32};
use cachet_chain::state::{StateKey, ValidatorSet, decode_value};
use cachet_chain::state_tree::{self, Node, NodeKey, Position, StoreError, TreeBatch, TreeStore};
use cachet_chain::tx::TxId;
use cachet_contracts::Executed;
use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, RwLock};

const CF_BLOCKS: &str = "blocks";
const CF_COMMITS: &str = "commits";
const CF_NODES: &str = "nodes";
const CF_VALUES: &str = "values";
const CF_TXS: &str = "txs";
const CF_UNDECIDED: &str = "undecided";
const CF_EVIDENCE: &str = "evidence";
const CF_META: &str = "meta";
/// Tree nodes gone stale, by the height that replaced them: `height → their hashes`, one record
/// per height (format 2 wrote one `height || hash` key per node; pruning reads both). One record
/// instead of a dozen per transaction: those small keys were written, flushed, compacted and
/// deleted again: a sixth of the table files a node wrote under load.
const CF_STALE: &str = "stale";
/// The head's state entries by key: `key hash → value hash`. A read of the head's state is one
/// lookup here (Bloom filters answer most absent keys from memory) instead of a walk of ~log2(N)
/// nodes from the root, which was a fifth of a validator's CPU once the tree outgrew the cache.
const CF_KEYS: &str = "keys";
const FAMILIES: [&str; 10] = [
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

const META_HEAD: &[u8] = b"head";
const META_GENESIS: &[u8] = b"genesis";
const META_VALSET: &[u8] = b"valset-change:";
/// The validator set in the state after a height (genesis, and every height that changed it).
const META_VALIDATORS: &[u8] = b"validators:";
/// The last height whose stale nodes are deleted.
const META_PRUNED: &[u8] = b"pruned";
const META_FORMAT: &[u8] = b"format";
/// Present (with [`TREE_IN_MEMORY`]) while the tree's nodes are held in memory, and the
/// `nodes` family is empty; absent while they are stored there.
const META_TREE: &[u8] = b"tree";
const TREE_IN_MEMORY: &[u8] = b"memory";
/// Version 2: values keyed by their leaf, nodes with the height they were written at, stale
/// nodes and validator sets recorded per height. Version 3: the head's entries indexed by key.
/// Version 4: nodes keyed by [`NodeKey`] instead of their hash alone, values with the height
/// they were written at, stale values recorded apart from stale nodes. A version-2 or -3
/// database is rewritten when opened ([`Store::migrate`]).
const FORMAT: u8 = 4;
/// Stale nodes looked at under one hold of the write lock. Pruning holds it while it reads
/// each node's height and deletes, so a commit waits for at most one chunk (a few
/// milliseconds at this size).
const PRUNE_CHUNK: usize = 2_000;

/// Where a committed transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

/// Decoded state-tree nodes kept in memory by default (~110 bytes each with their index, about
/// 64 MB when full): every transaction walks ~log2(entries) nodes, the upper ones shared by all,
/// and a receipt's walk on a state of 300k certificates stays in memory.
pub const DEFAULT_CACHED_NODES: usize = 600_000;
/// State values kept in memory by default (agency records, policies: read by every
/// transaction).
pub const DEFAULT_CACHED_VALUES: usize = 20_000;
/// Values larger than this are not cached.
const MAX_CACHED_VALUE: usize = 4096;

/// RocksDB's block cache by default, shared by the column families.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 64 << 20;

/// Where the state tree's nodes are kept. Either way the roots, proofs and receipts are the
/// same; what differs is memory, disk, speed, and which versions outlive the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreePlacement {
    /// In the database, every version not pruned yet (an archive: all of them), behind the
    /// node cache.
    #[default]
    Disk,
    /// In memory only: the head's nodes and those of the heights not pruned yet, rebuilt from
    /// the key index when the store opens (older versions do not outlive the process). About
    /// 300-600 bytes of memory per state entry (the map's load varies as it doubles); no
    /// tree writes, compaction or pruning reads. Without pruning, every version stays held.
    Memory,
}

impl TreePlacement {
    /// The name configuration files and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            TreePlacement::Disk => "disk",
            TreePlacement::Memory => "memory",
        }
    }
}

impl std::str::FromStr for TreePlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disk" => Ok(TreePlacement::Disk),
            "memory" => Ok(TreePlacement::Memory),
            other => Err(format!("{other:?} is neither \"disk\" nor \"memory\"")),
        }
    }
}

/// Memory the store may use for its caches and memtables, and where it keeps the tree.
/// Everything cached is immutable under its key, so the sizes trade memory for speed and never
/// change a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Decoded state-tree nodes (at most this many are held; 0: no cache).
    pub nodes: usize,
    /// Small state values (0: no cache).
    pub values: usize,
    /// RocksDB's block cache: raw table blocks, with their index and filter blocks.
    pub block_cache_bytes: usize,
    /// RocksDB's memtables, all families together, shared among them as
    /// [`write_buffer_bytes`] says (twice this at most, while full ones are being flushed).
    pub memtables_bytes: usize,
    /// Where the tree's nodes are kept (with [`TreePlacement::Memory`], `nodes` is unused).
    pub tree: TreePlacement,
}

impl Default for CacheSizes {
    fn default() -> Self {
        CacheSizes {
            nodes: DEFAULT_CACHED_NODES,
            values: DEFAULT_CACHED_VALUES,
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            memtables_bytes: DEFAULT_MEMTABLES_BYTES,
            tree: TreePlacement::Disk,
        }
    }
}

impl CacheSizes {
    /// No node or value cache (the block cache keeps its default size).
    pub fn uncached() -> Self {
        CacheSizes {
            nodes: 0,
            values: 0,
            ..CacheSizes::default()
        }
    }
}

/// Each family's memtable: it is flushed to a level-0 file when full, so this is also the size
/// of that family's flushes. Sized by what a family takes in per anchor under load (tree nodes
/// about 1 KB, a record 200 B, the indexes under 100 B each): shares of `total` (182 shares, a
/// MiB each in the default), and never under RocksDB's 64 KiB. One budget for all families
/// together (RocksDB's write buffer manager, 64 MiB until the fifteenth round) flushed the
/// family with the oldest memtable whenever the total was reached: `values` in files of 4 MB,
/// `keys` and `txs` of 1-2 MB, each of which their level-0 compaction then merged with the
/// whole level below. With a budget each, they flush 21, 8 and 6 MB, and compaction rewrites
/// them 1.5 times instead of 2.4 (docs/performance.md, fifteenth round). The price is memory:
/// at most two memtables per family are held (one filling, one flushing), and a node under
/// load holds 100-250 MB more than with the shared 64 MiB.
fn write_buffer_bytes(name: &str, total: usize) -> usize {
    let shares = match name {
        CF_NODES => 64,
        CF_VALUES => 32,
        CF_BLOCKS | CF_STALE | CF_KEYS | CF_TXS | CF_UNDECIDED => 16,
        CF_COMMITS => 4,
        _ => 1,
    };
    (total / MEMTABLE_SHARES * shares).max(64 << 10)
}

/// The shares of [`write_buffer_bytes`], all families together.
const MEMTABLE_SHARES: usize = 64 + 32 + 5 * 16 + 4 + 2;

/// RocksDB's memtables by default, all families together: a MiB per share.
pub const DEFAULT_MEMTABLES_BYTES: usize = MEMTABLE_SHARES << 20;

/// The write-ahead log is deleted once every family it holds writes of has flushed them; a
/// family that takes in little (the head's record in `meta`, a certificate per height in
/// `commits`) would keep it growing. Past this size RocksDB flushes the families holding its
/// oldest part. It is also the most a restart replays.
const MAX_WAL_BYTES: u64 = 256 << 20;

/// Families whose point lookups mostly miss the memtables (tree nodes and values written many
/// heights ago, keys and transactions never written): a Bloom filter over each memtable answers
/// those without a skip-list descent per memtable. In a late hold the descents (key compares)
/// were 15% of a validator's CPU, most of it under the tree walks to deep nodes.
const MEMTABLE_FILTERED: [&str; 4] = [CF_NODES, CF_VALUES, CF_KEYS, CF_TXS];
/// Size of a memtable's Bloom filter, as a share of the memtable (a 64 MiB memtable of ~100-byte
/// entries gets about 16 bits per entry).
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// When RocksDB compacts a family's level 0, and when it slows and stops writes for it: the
/// level-0 files that trigger each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Level0Files {
    compact: i32,
    slow_writes: i32,
    stop_writes: i32,
}

/// The families keyed by hash are written in random order, so each compaction of their level 0
/// rewrites the whole level below; and the shared write buffer of the time flushed the small
/// ones in files of a few megabytes (see [`write_buffer_bytes`]). At RocksDB's trigger of 4
/// files, compaction wrote `values`, `keys` and `txs` 9 times over and `nodes` twice: a quarter
/// of a validator's CPU under load. Collecting 12 files (8 for `nodes`, whose files are larger
/// and whose lookups are the most frequent) cut the bytes compacted by two thirds and
/// compaction's CPU by half, for the same bytes flushed (docs/performance.md, fourteenth
/// round). Each extra file costs a lookup that misses it one more Bloom probe, in a filter
/// pinned in the cache. The other families keep RocksDB's defaults (`None`).
fn level0_files(name: &str) -> Option<Level0Files> {
    match name {
        CF_VALUES | CF_KEYS | CF_TXS => Some(Level0Files {
            compact: 12,
            slow_writes: 28,
            stop_writes: 44,
        }),
        CF_NODES => Some(Level0Files {
            compact: 8,
            slow_writes: 20,
            stop_writes: 32,
        }),
        _ => None,
    }
}

/// The smallest shard of the block cache. A table's index and Bloom filter are each one block,
/// cached whole: a 64 MiB table of tree nodes has a 730 KB filter and a 250 KB index. RocksDB
/// splits a cache into shards of at least 512 KiB, up to 64: the default 64 MiB cache into 64
/// shards of 1 MiB, whose high-priority half (where index and filter blocks go) cannot hold one
/// such filter. So they did not stay cached: a lookup in a bottom-level table read the whole
/// filter from the file and checksummed it again, 44% of a validator's CPU in one minute of an
/// anchor run on a 600k-certificate state (`perf`: `XXH3_hashLong_64b` and the kernel's copy
/// under `ReadFilterBlock`). With 16 MiB shards each holds several tables' index and filter.
const MIN_BLOCK_CACHE_SHARD_BYTES: usize = 16 << 20;

/// log2 of the block cache's shard count: shards of at least [`MIN_BLOCK_CACHE_SHARD_BYTES`],
/// and no more than RocksDB's own limit of 64 (each shard has its own lock).
fn block_cache_shard_bits(capacity: usize) -> i32 {
    let shards = (capacity / MIN_BLOCK_CACHE_SHARD_BYTES).max(1);
    shards.ilog2().min(6) as i32
}

/// Size of a family's data blocks, the unit RocksDB reads from a file and keeps in the block cache.
/// Tree nodes (~110 bytes in a table) and values (~200) are read one at a time; when both were
/// keyed by hash, at random: a 4 KiB block (RocksDB's default) brought 20-35 neighbours that the
/// next reads almost never wanted, so a block cache miss copied and checksummed 4 KiB for one entry
/// and the cache held a fourth of the entries it could. (Nodes are now keyed by path, so a block's
/// neighbours are often the same walk's; larger blocks were not measured since.) With 1 KiB blocks,
/// receipts on a 600k-certificate state served 12% more per second at 10% less CPU each (five
/// alternating pairs), and anchor runs kept up at a higher rate in both of two pairs
/// (docs/performance.md, sixteenth round); 512 bytes did not separate from 1 KiB. The index grows
/// fourfold, to 1.5% of the data (about 5 MB for that state's tree), cached with the filters. The
/// other families keep RocksDB's 4 KiB: read by height or in ranges, or (`keys`, `txs`) not
/// measured with smaller blocks.
fn data_block_bytes(name: &str) -> usize {
    match name {
        CF_NODES | CF_VALUES => 1 << 10,
        _ => 4 << 10,
    }
}

/// Every key is read by point lookup (heights, hashes): Bloom filters let a lookup skip the
/// files that do not hold its key, and index and filter blocks live in the bounded block cache,
/// in its high-priority part, so that a stream of data blocks does not push them out.
/// Families of hashes are not compressed: LZ4 gains nothing on them and costs a compression at
/// every flush and compaction and a decompression at every block read.
fn family_options(name: &str, block_cache: &rocksdb::Cache, memtables: usize) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(block_cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_block_size(data_block_bytes(name));
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(write_buffer_bytes(name, memtables));
    let hashes = matches!(
        name,
        CF_NODES | CF_VALUES | CF_STALE | CF_TXS | CF_COMMITS | CF_KEYS
    );
    opts.set_compression_type(if hashes {
        rocksdb::DBCompressionType::None
    } else {
        rocksdb::DBCompressionType::Lz4
    });
    if MEMTABLE_FILTERED.contains(&name) {
        opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
        opts.set_memtable_whole_key_filtering(true);
    }
    if let Some(level0) = level0_files(name) {
        opts.set_level_zero_file_num_compaction_trigger(level0.compact);
        opts.set_level_zero_slowdown_writes_trigger(level0.slow_writes);
        opts.set_level_zero_stop_writes_trigger(level0.stop_writes);
    }
    opts
}

/// The node's database.
pub struct Store {
    db: DB,
    /// The options the database was opened with: they hold RocksDB's statistics, read by
    /// [`Store::io`].
    options: Options,
    /// Tree nodes and values are immutable under their hash, so caching them is always safe.
    /// (No node cache while the tree is held in memory.)
    nodes: Option<Cache<Node>>,
    /// The tree's nodes, when held in memory ([`TreePlacement::Memory`]).
    resident: Option<RwLock<ResidentTree>>,
    values: Option<Cache<Arc<[u8]>>>,
    /// RocksDB's block cache, shared by every family: read for its usage.
    block_cache: rocksdb::Cache,
    /// Held by commits and pruning steps: a step must not delete a node that a commit is
    /// writing again. It guards the stale nodes pruning will delete.
    writing: std::sync::Mutex<StaleNodes>,
    /// Which root the key index holds, read before and after each index lookup.
    indexed: std::sync::RwLock<IndexedRoot>,
}

/// The root whose entries `CF_KEYS` holds, as a sequence lock: a commit clears `root` and bumps
/// `epoch` before it writes the new head, and sets both after. A lookup that saw the same
/// epoch and its own root on both sides read the index of that root, not a newer one; any
/// other lookup walks the tree instead (a reader of an older root, or one overlapping a
/// commit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IndexedRoot {
    root: Option<Hash32>,
    epoch: u64,
}

/// The stale tree nodes and values of heights not pruned yet, tracked from the first pruning
/// step on, so that pruning deletes them without reading them. A node or value can be written
/// again after it went stale (an entry set back to an earlier value), and only its record says
/// so: pruning read one record per stale node to find out, 13% of a validator's CPU under load
/// on a 600k state. Here a commit that writes one drops it from its map instead. 60–90 bytes
/// per stale node awaiting pruning (those of about `state_history_heights` heights: a few hundred
/// thousand under load); an archive, which never prunes, tracks nothing.
#[derive(Debug, Default)]
struct StaleNodes {
    /// The first tracked height (`None`: no pruning step yet). Stale nodes of earlier heights
    /// went stale before this process tracked them: pruning reads their records.
    tracked_from: Option<u64>,
    /// Each tracked stale node not written again since: the height it went stale at.
    at: DigestMap<NodeKey, u64>,
    /// Each tracked stale value not written again since: the height it went stale at.
    values: DigestMap<Hash32, u64>,
}

impl StaleNodes {
    /// After `height` is durably written with `tree` (its nodes too, if `nodes_stored`).
    fn committed(&mut self, height: u64, tree: &TreeBatch, nodes_stored: bool) {
        if self.tracked_from.is_none() {
            return;
        }
        if nodes_stored {
            for (key, _) in &tree.nodes {
                self.at.remove(key);
            }
            for key in &tree.stale {
                self.at.insert(*key, height);
            }
        }
        for (leaf, _) in &tree.values {
            self.values.remove(leaf);
        }
        for leaf in &tree.stale_values {
            self.values.insert(*leaf, height);
        }
    }
}

/// The state tree's nodes held in memory ([`TreePlacement::Memory`]): the head's, and those
/// that went stale at heights not pruned yet. A tree of N entries has about 2.4 N nodes (a leaf
/// each, and an internal node at every prefix two keys share); the map holds 104 bytes a node
/// at a load between 7/16 and 7/8, so 120-240 bytes a node (docs/performance.md,
/// twenty-fourth round).
#[derive(Debug, Default)]
struct ResidentTree {
    nodes: NodeShards,
    /// The nodes that went stale at each height not pruned yet, oldest first.
    stale: VecDeque<(u64, Vec<NodeKey>)>,
    /// Each stale node not written again since: the height it went stale at. A node can come
    /// back (an entry set back to an earlier value); pruning removes only those whose entry
    /// here is the height being pruned.
    stale_at: DigestMap<NodeKey, u64>,
}

/// Shards of tree nodes by key. A hash map doubles its table when full and holds the old one
/// and the new one until it has moved every entry: one map of 11 million nodes (4.5 M
/// entries) went from 2 to over 5 GB at that moment, and the kernel killed a node of four on a
/// 24 GB machine. Shards grow one at a time, each by 1/[`NODE_SHARDS`] of the whole.
#[derive(Debug)]
struct NodeShards(Vec<DigestMap<NodeKey, Node>>);

/// Shards of [`NodeShards`], chosen by a node hash's first byte (uniform: BLAKE3's output).
const NODE_SHARDS: usize = 256;

impl Default for NodeShards {
    fn default() -> Self {
        NodeShards((0..NODE_SHARDS).map(|_| DigestMap::default()).collect())
    }
}

impl NodeShards {
    fn shard(&self, key: &NodeKey) -> &DigestMap<NodeKey, Node> {
        &self.0[usize::from(key.hash.as_bytes()[0])]
    }

    fn shard_mut(&mut self, key: &NodeKey) -> &mut DigestMap<NodeKey, Node> {
        &mut self.0[usize::from(key.hash.as_bytes()[0])]
    }

    fn get(&self, key: &NodeKey) -> Option<Node> {
        self.shard(key).get(key).copied()
    }

    fn insert(&mut self, key: NodeKey, node: Node) {
        self.shard_mut(&key).insert(key, node);
    }

    fn remove(&mut self, key: &NodeKey) {
        self.shard_mut(key).remove(key);
    }

    fn len(&self) -> usize {
        self.0.iter().map(|shard| shard.len()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.0.iter().flatten()
    }
}

impl ResidentTree {
    /// Hold `tree`'s new nodes: before its height is written, so that a reader of the new
    /// head finds them (a reader of an older root never looks them up).
    fn insert(&mut self, tree: &TreeBatch) {
        for (key, node) in &tree.nodes {
            self.nodes.insert(*key, *node);
            self.stale_at.remove(key);
        }
    }

    /// After `height` is written: the nodes it made stale wait for pruning.
    fn went_stale(&mut self, height: u64, tree: &TreeBatch) {
        if tree.stale.is_empty() {
            return;
        }
        for key in &tree.stale {
            self.stale_at.insert(*key, height);
        }
        self.stale.push_back((height, tree.stale.clone()));
    }

    /// Drop the stale nodes of the oldest height if it is `upto` or below: how many.
    /// `None`: no such height.
    fn prune_oldest(&mut self, upto: u64) -> Option<usize> {
        if self.stale.front().is_none_or(|(height, _)| *height > upto) {
            return None;
        }
        let (height, keys) = self.stale.pop_front()?;
        let mut dropped = 0;
        for key in keys {
            if self.stale_at.get(&key) == Some(&height) {
                self.stale_at.remove(&key);
                self.nodes.remove(&key);
                dropped += 1;
            }
        }
        Some(dropped)
    }
}

/// What one [`Store::prune`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Stale nodes deleted.
    pub nodes: usize,
    /// Stale values deleted.
    pub values: usize,
    /// The last height whose stale nodes are all deleted.
    pub upto: u64,
}

/// A stored node: its encoding, then the height it was last written at.
fn node_record(node: &Node, height: u64) -> Vec<u8> {
    let mut bytes = codec::encode(node);
    bytes.extend_from_slice(&be(height));
    bytes
}

fn split_node_record(hash: &Hash32, bytes: &[u8]) -> Result<(Node, u64), StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("node {hash}: {e}"));
    let (node, height) = split_height(bytes).ok_or_else(|| corrupt("too short".into()))?;
    let node = codec::decode(node, 128).map_err(|e| corrupt(e.to_string()))?;
    Ok((node, height))
}

/// A stored value: its bytes, then the height it was last written at.
fn value_record(value: &[u8], height: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len() + 8);
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(&be(height));
    bytes
}

/// A record's bytes and the height that ends it.
fn split_height(record: &[u8]) -> Option<(&[u8], u64)> {
    let at = record.len().checked_sub(8)?;
    let height = u64::from_be_bytes(record[at..].try_into().expect("8 bytes"));
    Some((&record[..at], height))
}

/// A height's stale record: how many node keys, the node keys, then the leaves' hashes
/// whose values went stale.
fn stale_record(nodes: &[NodeKey], values: &[Hash32]) -> Vec<u8> {
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
fn split_stale_record(bytes: &[u8]) -> Option<(Vec<NodeKey>, Vec<Hash32>)> {
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

/// Read access to a lock's data; a panic elsewhere while holding it leaves the data as
/// consistent as the panicking code left it, and every writer here completes its changes.
fn shared<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// Write access to a lock's data (see [`shared`]).
fn exclusive<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn be(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.to_string())
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
        } = sizes;
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
            store.place_tree(tree, Some(&head))?;
        } else {
            store.place_tree(tree, None)?;
        }
        Ok(store)
    }

    /// Keep the tree where `placement` says, moving it if the database keeps it elsewhere.
    /// Into memory: the `nodes` family is emptied first (its versions are dropped), then the
    /// head's tree is rebuilt from the key index. Onto disk: the rebuilt head's nodes are
    /// written. Crash-safe: the marker in `meta` changes only with the `nodes` family emptied,
    /// or once it holds the head's tree; a move onto disk cut short is done again, or its
    /// nodes deleted if the next start keeps the tree in memory.
    fn place_tree(
        &mut self,
        placement: TreePlacement,
        head: Option<&BlockHeader>,
    ) -> Result<(), StoreError> {
        let in_memory = self.get_cf(CF_META, META_TREE)?.as_deref() == Some(TREE_IN_MEMORY);
        match placement {
            TreePlacement::Memory => {
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
                let mut resident = ResidentTree::default();
                if let Some(head) = head {
                    resident.nodes = self.rebuild_tree(head)?;
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

    /// The nodes of the tree at `head`, built from the key index (the head's entries by key),
    /// and checked against the head's state root.
    fn rebuild_tree(&self, head: &BlockHeader) -> Result<NodeShards, StoreError> {
        let started = std::time::Instant::now();
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_KEYS), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(backend)?;
            let corrupt = || StoreError::Corrupt(format!("key index entry {}", hex(&key)));
            let key = Hash32(key[..].try_into().map_err(|_| corrupt())?);
            let value = Hash32(value[..].try_into().map_err(|_| corrupt())?);
            entries.push((key, value));
        }
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

    /// The tree nodes held in memory (`None`: the tree is on disk).
    pub fn resident_nodes(&self) -> Option<usize> {
        self.resident.as_ref().map(|r| shared(r).nodes.len())
    }

    /// Tree nodes and state values held in memory now.
    pub fn cached_entries(&self) -> (usize, usize) {
        (
            self.nodes.as_ref().map_or(0, Cache::len),
            self.values.as_ref().map_or(0, Cache::len),
        )
    }

    /// The fill of the tree-node and state-value caches (`None`: no such cache).
    pub fn cache_fill(&self) -> (Option<CacheFill>, Option<CacheFill>) {
        fn fill<V: Clone>(c: &Option<Cache<V>>) -> Option<CacheFill> {
            c.as_ref().map(|c| CacheFill {
                entries: c.len(),
                capacity: c.capacity(),
            })
        }
        (fill(&self.nodes), fill(&self.values))
    }

    /// An integer property of one column family (a property RocksDB cannot give reads as 0).
    fn int_property(&self, family: &str, property: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(family), property)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Each column family's table, live-data, memtable and table-reader bytes, from RocksDB's
    /// properties.
    pub fn family_sizes(&self) -> Vec<FamilySize> {
        FAMILIES
            .iter()
            .map(|name| FamilySize {
                name,
                sst_bytes: self.int_property(name, "rocksdb.total-sst-files-size"),
                live_bytes: self.int_property(name, "rocksdb.estimate-live-data-size"),
                memtable_bytes: self.int_property(name, "rocksdb.cur-size-all-mem-tables"),
                table_readers_bytes: self.int_property(name, "rocksdb.estimate-table-readers-mem"),
            })
            .collect()
    }

    /// Compaction RocksDB estimates it still has to do, all families together.
    pub fn pending_compaction_bytes(&self) -> u64 {
        FAMILIES
            .iter()
            .map(|name| self.int_property(name, "rocksdb.estimate-pending-compaction-bytes"))
            .sum()
    }

    /// Bytes RocksDB's block cache holds now (at most `block_cache_mb`, unless pinned
    /// blocks overflow it): with the memtables and the node cache, what bounds a node's memory.
    pub fn block_cache_bytes(&self) -> u64 {
        self.block_cache.get_usage() as u64
    }

    /// What RocksDB counted since the store was opened: block-cache lookups by kind of block,
    /// Bloom-filter skips, and the bytes logged, flushed and compacted.
    pub fn io(&self) -> StoreIo {
        use rocksdb::statistics::Ticker;
        let count = |ticker| self.options.get_ticker_count(ticker);
        let use_ = |block, [hit, miss, insert]: [Ticker; 3]| BlockCacheUse {
            block,
            hits: count(hit),
            misses: count(miss),
            inserted_bytes: count(insert),
        };
        StoreIo {
            block_cache: [
                use_(
                    "data",
                    [
                        Ticker::BlockCacheDataHit,
                        Ticker::BlockCacheDataMiss,
                        Ticker::BlockCacheDataBytesInsert,
                    ],
                ),
                use_(
                    "index",
                    [
                        Ticker::BlockCacheIndexHit,
                        Ticker::BlockCacheIndexMiss,
                        Ticker::BlockCacheIndexBytesInsert,
                    ],
                ),
                use_(
                    "filter",
                    [
                        Ticker::BlockCacheFilterHit,
                        Ticker::BlockCacheFilterMiss,
                        Ticker::BlockCacheFilterBytesInsert,
                    ],
                ),
            ],
            filter_skips: count(Ticker::BloomFilterUseful),
            wal_bytes: count(Ticker::WalFileBytes),
            flush_bytes: count(Ticker::FlushWriteBytes),
            compaction_read_bytes: count(Ticker::CompactReadBytes),
            compaction_write_bytes: count(Ticker::CompactWriteBytes),
            stall_micros: count(Ticker::StallMicros),
        }
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

    /// Rewrite a version-2 or -3 database in version 4, in place. Every root still whole
    /// (from the last pruned height to the head) is walked: its nodes are copied under their
    /// [`NodeKey`]s, its leaves' values get the height they were written at, and the head's
    /// entries are indexed by key. Nodes under bare hashes, the values no kept root uses and
    /// the old stale records are then deleted; the kept roots' nodes and values that the head
    /// does not use are recorded stale at the head, so pruning deletes them once the head is
    /// `keep` heights behind. Idempotent until the new format is written last: a crash repeats
    /// it. Memory: about 100 bytes per node of the kept roots, for the walk's visited set.
    fn migrate(&self, head: &BlockHeader) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let (nodes, values, keys) = (self.cf(CF_NODES), self.cf(CF_VALUES), self.cf(CF_KEYS));
        let head_height = head.height.0;
        let mut roots = Vec::new();
        for height in self.pruned_upto()?..head_height {
            let header = match height {
                0 => self.genesis()?,
                h => self.header(h)?,
            };
            let header =
                header.ok_or_else(|| StoreError::Corrupt(format!("no header at {height}")))?;
            roots.push(header.state_root);
        }
        // The head's root first: what it reaches is live, the rest of the kept roots stale.
        roots.push(head.state_root);
        roots.reverse();
        let mut visited: DigestSet<NodeKey> = Default::default();
        let mut head_leaves: DigestSet<Hash32> = Default::default();
        let mut stale_leaves: DigestSet<Hash32> = Default::default();
        let mut stale = TreeBatch::default();
        let mut batch = WriteBatch::default();
        for (i, root) in roots.iter().enumerate() {
            let mut pending = vec![(*root, Position::ROOT)];
            while let Some((at, pos)) = pending.pop() {
                let key = NodeKey::new(pos, at);
                if at == state_tree::EMPTY || !visited.insert(key) {
                    continue;
                }
                let missing = || StoreError::Missing {
                    what: "node",
                    hash: at,
                };
                // Under its new key if an interrupted migration got that far.
                let record = match self.get_cf(CF_NODES, &key.to_bytes())? {
                    Some(record) => record,
                    None => self.get_cf(CF_NODES, at.as_bytes())?.ok_or_else(missing)?,
                };
                let (node, written_at) = split_node_record(&at, &record)?;
                batch.put_cf(nodes, key.to_bytes(), &record);
                if i > 0 {
                    stale.stale.push(key);
                }
                match node {
                    Node::Internal { left, right } => {
                        pending.push((left, pos.child(false)));
                        pending.push((right, pos.child(true)));
                    }
                    Node::Leaf { key: entry, value } => {
                        if i == 0 {
                            head_leaves.insert(at);
                            batch.put_cf(keys, entry.as_bytes(), value.as_bytes());
                        } else if !head_leaves.contains(&at) {
                            stale_leaves.insert(at);
                        }
                        let stored =
                            self.get_cf(CF_VALUES, at.as_bytes())?
                                .ok_or(StoreError::Missing {
                                    what: "value",
                                    hash: at,
                                })?;
                        if state_tree::value_hash(&stored) == value {
                            batch.put_cf(values, at.as_bytes(), value_record(&stored, written_at));
                        } else if split_height(&stored)
                            .is_none_or(|(v, _)| state_tree::value_hash(v) != value)
                        {
                            // Neither the old record nor one an interrupted migration wrote.
                            return Err(StoreError::Corrupt(format!("value of leaf {at}")));
                        }
                    }
                }
                if batch.len() >= 100_000 {
                    self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
                }
            }
        }
        self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
        // What no kept root reaches, and the old keys and records, go now.
        let mut deleted = 0usize;
        for (family, keep) in [(CF_NODES, None), (CF_VALUES, Some(&stale_leaves))] {
            let handle = self.cf(family);
            for item in self.db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (k, _) = item.map_err(backend)?;
                let obsolete = match keep {
                    None => k.len() == 32,
                    Some(stale_leaves) => {
                        let leaf =
                            Hash32(k[..].try_into().map_err(|_| {
                                StoreError::Corrupt(format!("value key {}", hex(&k)))
                            })?);
                        !head_leaves.contains(&leaf) && !stale_leaves.contains(&leaf)
                    }
                };
                if obsolete {
                    batch.delete_cf(handle, &k);
                    deleted += 1;
                }
                if batch.len() >= 100_000 {
                    self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
                }
            }
        }
        for item in self
            .db
            .iterator_cf(self.cf(CF_STALE), rocksdb::IteratorMode::Start)
        {
            batch.delete_cf(self.cf(CF_STALE), item.map_err(backend)?.0);
        }
        stale.stale.sort();
        stale.stale_values = stale_leaves.into_iter().collect();
        stale.stale_values.sort();
        if !stale.stale.is_empty() || !stale.stale_values.is_empty() {
            batch.put_cf(
                self.cf(CF_STALE),
                be(head_height),
                stale_record(&stale.stale, &stale.stale_values),
            );
        }
        batch.put_cf(self.cf(CF_META), META_FORMAT, [FORMAT]);
        self.write(batch)?;
        tracing::info!(
            roots = roots.len(),
            nodes = visited.len(),
            deleted,
            seconds = started.elapsed().as_secs_f64(),
            "state store rewritten in format {FORMAT}"
        );
        Ok(())
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
            for (key, node) in &tree.nodes {
                cache.insert(key.hash, *node);
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
            // Not taken back if the write fails: that is fatal for the node (see above).
            exclusive(resident).insert(tree);
        }
        let mut batch = WriteBatch::default();
        self.put_tree(&mut batch, h, tree);
        batch.put_cf(self.cf(CF_BLOCKS), be(h), block.encode());
        batch.put_cf(self.cf(CF_COMMITS), be(h), certificate);
        let txs = self.cf(CF_TXS);
        for (i, tx) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                height: h,
                index: i as u32,
            };
            batch.put_cf(txs, tx.id().0.as_bytes(), codec::encode(&loc));
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

    /// The validator set in the state after `height`: the one that signs `height + 1`. Read
    /// from the sets recorded at genesis and at every change, so it survives pruning.
    pub fn validators_after(&self, height: u64) -> Result<ValidatorSet, StoreError> {
        let mut key = META_VALIDATORS.to_vec();
        key.extend_from_slice(&be(height));
        let mut iter = self.db.iterator_cf(
            self.cf(CF_META),
            rocksdb::IteratorMode::From(&key, rocksdb::Direction::Reverse),
        );
        let (k, v) = iter
            .next()
            .transpose()
            .map_err(backend)?
            .filter(|(k, _)| k.starts_with(META_VALIDATORS))
            .ok_or_else(|| StoreError::Corrupt("no validator set recorded".into()))?;
        decode_value(&v).map_err(|e| StoreError::Corrupt(format!("validator set {}: {e}", hex(&k))))
    }

    /// The last height whose stale state is deleted (0: none yet).
    pub fn pruned_upto(&self) -> Result<u64, StoreError> {
        Ok(self
            .get_cf(CF_META, META_PRUNED)?
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Delete the tree nodes (and leaf values) that went stale at heights up to
    /// `head - keep`, so that the state of the last `keep` heights stays readable. Does one
    /// bounded step, the next height still to prune (call again until `upto` stops moving).
    /// Idempotent: a crash mid-step repeats it. A node written again after it went stale is
    /// kept. A tree held in memory drops its stale nodes of every height up to `head - keep`
    /// at each step (a height at a time, so that readers wait at most one height's removal).
    pub fn prune(&self, keep: u64) -> Result<Pruned, StoreError> {
        let (head, tracked_from) = {
            let mut writing = self.lock_writes();
            // Under the write lock the head does not move: every later commit is tracked.
            let head = self.head()?.map_or(0, |h| h.height.0);
            (head, *writing.tracked_from.get_or_insert(head + 1))
        };
        let done = self.pruned_upto()?;
        let target = head.saturating_sub(keep);
        let mut dropped = 0;
        if let Some(resident) = &self.resident {
            while let Some(nodes) = exclusive(resident).prune_oldest(target) {
                dropped += nodes;
            }
        }
        if target <= done {
            return Ok(Pruned {
                nodes: dropped,
                upto: done,
                ..Pruned::default()
            });
        }
        // The next height's stale record.
        let mut next = None;
        let mut iter = self.db.iterator_cf(
            self.cf(CF_STALE),
            rocksdb::IteratorMode::From(&be(done + 1), rocksdb::Direction::Forward),
        );
        if let Some(item) = iter.next() {
            let (k, v) = item.map_err(backend)?;
            let corrupt = || StoreError::Corrupt(format!("stale record {}", hex(&k)));
            let at = u64::from_be_bytes(k[..].try_into().map_err(|_| corrupt())?);
            if at <= target {
                let (keys, values) = split_stale_record(&v).ok_or_else(corrupt)?;
                next = Some((at, keys, values));
            }
        }
        drop(iter);
        // No stale record up to the target: every height up to it is done.
        let Some((upto, mut keys, values)) = next else {
            self.set_pruned(None, target)?;
            return Ok(Pruned {
                nodes: dropped,
                upto: target,
                ..Pruned::default()
            });
        };
        if self.resident.is_some() {
            // Recorded while the tree was stored: the `nodes` family was emptied since.
            keys.clear();
        }
        let tracked = upto >= tracked_from;
        let mut deleted = Pruned {
            nodes: dropped,
            upto,
            ..Pruned::default()
        };
        for chunk in keys.chunks(PRUNE_CHUNK) {
            deleted.nodes += if tracked {
                self.delete_tracked(chunk, upto, |s| &mut s.at, CF_NODES, NodeKey::to_bytes)?
            } else {
                let bytes: Vec<_> = chunk.iter().map(NodeKey::to_bytes).collect();
                self.delete_stale(CF_NODES, &bytes, upto)?
            };
        }
        for chunk in values.chunks(PRUNE_CHUNK) {
            deleted.values += if tracked {
                self.delete_tracked(chunk, upto, |s| &mut s.values, CF_VALUES, |h| h.0)?
            } else {
                let bytes: Vec<_> = chunk.iter().map(|h| h.0).collect();
                self.delete_stale(CF_VALUES, &bytes, upto)?
            };
        }
        self.set_pruned(Some(upto), upto)?;
        Ok(deleted)
    }

    /// Mark heights up to `upto` pruned, deleting the stale record of `record` (not synced:
    /// after a crash the step is simply done again).
    fn set_pruned(&self, record: Option<u64>, upto: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        if let Some(height) = record {
            batch.delete_cf(self.cf(CF_STALE), be(height));
        }
        batch.put_cf(self.cf(CF_META), META_PRUNED, be(upto));
        self.db.write(batch).map_err(backend)
    }

    /// Delete the records under `keys` (sorted) in family `cf` that went stale at `stale_at`
    /// and were not written again since: each record ends with the height it was last written
    /// at. The records are read in one batch, in key order, without filling the block cache
    /// (one point read each, into the block cache the head's nodes need, was most of a
    /// validator's CPU once the state had grown past the caches). Holds the write lock, so no
    /// commit writes one of them meanwhile.
    fn delete_stale<K: AsRef<[u8]>>(
        &self,
        cf: &str,
        keys: &[K],
        stale_at: u64,
    ) -> Result<usize, StoreError> {
        let _writing = self.lock_writes();
        let family = self.cf(cf);
        let mut read = rocksdb::ReadOptions::default();
        read.fill_cache(false);
        let records = self
            .db
            .batched_multi_get_cf_opt(family, keys.iter(), true, &read);
        let mut batch = WriteBatch::default();
        let mut deleted = 0;
        for (key, record) in keys.iter().zip(records) {
            if let Some(bytes) = record.map_err(backend)? {
                let (_, written_at) = split_height(&bytes).ok_or_else(|| {
                    StoreError::Corrupt(format!("{cf} record {}", hex(key.as_ref())))
                })?;
                if written_at <= stale_at {
                    batch.delete_cf(family, key);
                    deleted += 1;
                }
            }
        }
        self.db.write(batch).map_err(backend)?;
        Ok(deleted)
    }

    /// Delete the records of `stale` in family `cf` that went stale at `stale_at` and were not
    /// written again since, as the tracked map `tracked` tells: no record is read. Holds the
    /// write lock.
    fn delete_tracked<T: Eq + std::hash::Hash, const N: usize>(
        &self,
        stale: &[T],
        stale_at: u64,
        tracked: impl Fn(&mut StaleNodes) -> &mut DigestMap<T, u64>,
        cf: &str,
        key: impl Fn(&T) -> [u8; N],
    ) -> Result<usize, StoreError> {
        let mut writing = self.lock_writes();
        let family = self.cf(cf);
        let mut batch = WriteBatch::default();
        let mut deleted = Vec::new();
        for item in stale {
            if tracked(&mut writing).get(item) == Some(&stale_at) {
                batch.delete_cf(family, key(item));
                deleted.push(item);
            }
        }
        self.db.write(batch).map_err(backend)?;
        // Only once deleted: after a failed write the step is done again.
        for item in &deleted {
            tracked(&mut writing).remove(*item);
        }
        Ok(deleted.len())
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

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn the_families_memtables_add_up_to_the_budget() {
        for total in [DEFAULT_MEMTABLES_BYTES, 16 << 20, 1 << 30] {
            let sum: usize = FAMILIES.iter().map(|f| write_buffer_bytes(f, total)).sum();
            assert!(sum <= total, "{sum} > {total}");
            assert!(
                sum > total - MEMTABLE_SHARES * FAMILIES.len(),
                "{sum} of {total}"
            );
        }
        assert_eq!(
            write_buffer_bytes(CF_NODES, DEFAULT_MEMTABLES_BYTES),
            64 << 20
        );
    }

    #[test]
    fn block_cache_shards_hold_whole_index_and_filter_blocks() {
        // The default cache: 4 shards of 16 MiB, not RocksDB's 64 of 1 MiB.
        assert_eq!(block_cache_shard_bits(DEFAULT_BLOCK_CACHE_BYTES), 2);
        // Small caches are one shard; large ones stop at RocksDB's 64.
        assert_eq!(block_cache_shard_bits(1 << 20), 0);
        assert_eq!(block_cache_shard_bits(16 << 20), 0);
        assert_eq!(block_cache_shard_bits(1 << 30), 6);
        assert_eq!(block_cache_shard_bits(64 << 30), 6);
        // Whatever the capacity, a shard's high-priority half (RocksDB's default ratio, 0.5)
        // holds the index and filter of several full-size tables (~1 MB together for a 64 MiB
        // table of ~110-byte tree nodes at 10 bits per key).
        let per_table = 64 * 1024 * 1024 / 110 * 10 / 8 + 256 * 1024;
        for capacity in [DEFAULT_BLOCK_CACHE_BYTES, 100 << 20, 1 << 30, 8 << 30] {
            let shard = capacity >> block_cache_shard_bits(capacity);
            assert!(shard / 2 >= 4 * per_table, "{capacity}: shard of {shard}");
        }
    }
}
