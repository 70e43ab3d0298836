//! How the store sizes RocksDB: caches, memtables, table blocks, Bloom filters, compaction
//! triggers and compression, per column family, each with the measurement that chose it. None
//! of it changes what is stored or read, only how fast and in how much memory.
//!
//! It is not the layout ([`super::schema`]).

use super::resident::TreePlacement;
use super::schema::{
    CF_BLOCKS, CF_COMMITS, CF_KEYS, CF_NODES, CF_STALE, CF_TXS, CF_UNDECIDED, CF_VALUES,
};
use rocksdb::{BlockBasedOptions, Options};

/// Decoded state-tree nodes kept in memory by default (~110 bytes each with their index, about
/// 64 MB when full): every transaction walks ~log2(entries) nodes, the upper ones shared by all,
/// and a receipt's walk on a state of 300k certificates stays in memory.
pub const DEFAULT_CACHED_NODES: usize = 600_000;
/// State values kept in memory by default (agency records, policies: read by every
/// transaction).
pub const DEFAULT_CACHED_VALUES: usize = 20_000;
/// Values larger than this are not cached.
pub(super) const MAX_CACHED_VALUE: usize = 4096;

/// RocksDB's block cache by default, shared by the column families.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 64 << 20;

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
    /// With [`TreePlacement::Derived`], the levels held in memory (1 to 32); the node cache
    /// holds what was read below them.
    pub tree_top_levels: usize,
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

impl Default for CacheSizes {
    fn default() -> Self {
        CacheSizes {
            nodes: DEFAULT_CACHED_NODES,
            values: DEFAULT_CACHED_VALUES,
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            memtables_bytes: DEFAULT_MEMTABLES_BYTES,
            tree: TreePlacement::Disk,
            tree_top_levels: DEFAULT_TREE_TOP_LEVELS,
        }
    }
}

/// The least memory budget ([`CacheSizes::within`]), in bytes: its memtables' share must still
/// flush files of a useful size.
pub const MIN_MEMORY_BUDGET_BYTES: usize = 256 << 20;

/// What a cached tree node takes, with its place in the cache's index (measured: about 110 B).
const CACHED_NODE_BYTES: usize = 110;
/// What a node of a derived tree's top takes in its map, at most (130-250 B measured).
const TOP_NODE_BYTES: usize = 250;
/// What a cached state value is taken to take: agency records and policies are a few hundred
/// bytes, and values above [`MAX_CACHED_VALUE`] are not cached.
const CACHED_VALUE_BYTES: usize = 1024;

/// How a budget is shared, in hundredths, for a tree on disk and a derived one: the memtables
/// (counted twice: a full set is held while it flushes), RocksDB's block cache, the node cache,
/// the value cache, and a derived tree's top. Each set adds up to 100. On disk, the node cache
/// keeps the upper levels every walk reads; derived, the top holds those and the node cache the
/// subtrees read last below it.
const DISK_SHARES: Shares = Shares {
    memtables: 40,
    block_cache: 20,
    nodes: 35,
    values: 5,
    top: 0,
};
const DERIVED_SHARES: Shares = Shares {
    memtables: 30,
    block_cache: 10,
    nodes: 20,
    values: 5,
    top: 35,
};

struct Shares {
    memtables: usize,
    block_cache: usize,
    nodes: usize,
    values: usize,
    top: usize,
}

impl CacheSizes {
    /// Sizes that keep the store within `budget` bytes of memory, for a tree on disk or a
    /// derived one: the memtables (twice, while full ones flush), the block cache, the node and
    /// value caches, and a derived tree's top levels (as many as `2^levels` nodes of the largest
    /// size fit in its share) each get a fixed share. A tree held in memory grows with the
    /// state, so no budget bounds it: refused, as is a budget under
    /// [`MIN_MEMORY_BUDGET_BYTES`].
    pub fn within(budget: usize, tree: TreePlacement) -> Result<CacheSizes, String> {
        if budget < MIN_MEMORY_BUDGET_BYTES {
            return Err(format!(
                "must be at least {} MiB",
                MIN_MEMORY_BUDGET_BYTES >> 20
            ));
        }
        let shares = match tree {
            TreePlacement::Disk => DISK_SHARES,
            TreePlacement::Derived => DERIVED_SHARES,
            TreePlacement::Memory => {
                return Err(
                    "a tree held in memory grows with the state, which no memory \
                     budget bounds: keep it on disk or derive it"
                        .into(),
                );
            }
        };
        let share = |hundredths: usize| budget / 100 * hundredths;
        let top_nodes = share(shares.top) / TOP_NODE_BYTES;
        Ok(CacheSizes {
            nodes: share(shares.nodes) / CACHED_NODE_BYTES,
            values: share(shares.values) / CACHED_VALUE_BYTES,
            block_cache_bytes: share(shares.block_cache),
            memtables_bytes: share(shares.memtables) / 2,
            tree,
            tree_top_levels: if top_nodes == 0 {
                DEFAULT_TREE_TOP_LEVELS
            } else {
                (top_nodes.ilog2() as usize).clamp(1, cachet_chain::state_tree::NODE_KEY_PATH_BITS)
            },
        })
    }

    /// The most memory these sizes let the store take, in bytes, once the state is larger than
    /// its caches (the estimate [`CacheSizes::within`] shares a budget by): what an operator
    /// adds to the process's own needs.
    pub fn most_bytes(&self) -> usize {
        let top = match self.tree {
            TreePlacement::Derived => (1usize << self.tree_top_levels.min(40)) * TOP_NODE_BYTES,
            _ => 0,
        };
        let nodes = match self.tree {
            TreePlacement::Memory => 0,
            _ => self.nodes * CACHED_NODE_BYTES,
        };
        2 * self.memtables_bytes
            + self.block_cache_bytes
            + nodes
            + self.values * CACHED_VALUE_BYTES
            + top
    }
}

/// The levels of the tree held in memory when it is derived: about 2^20 nodes of a large tree
/// (150-250 MB), buckets of about 10 entries at 10 million entries, 100 at 100 million.
pub const DEFAULT_TREE_TOP_LEVELS: usize = 20;

/// Each family's memtable: it is flushed to a level-0 file when full, so this is also the size
/// of that family's flushes. Sized by what a family takes in per anchor under load (tree nodes
/// about 1 KB, a record 200 B, the indexes under 100 B each): shares of `total` (182 shares, a
/// MiB each in the default), and never under RocksDB's 64 KiB. One budget for all families
/// together (RocksDB's write buffer manager, 64 MiB) flushed the
/// family with the oldest memtable whenever the total was reached: `values` in files of 4 MB,
/// `keys` and `txs` of 1-2 MB, each of which their level-0 compaction then merged with the
/// whole level below. With a budget each, they flush 21, 8 and 6 MB, and compaction rewrites
/// them 1.5 times instead of 2.4 (ADR 0006). The price is memory:
/// at most two memtables per family are held (one filling, one flushing), and a node under
/// load holds 100-250 MB more than with the shared 64 MiB.
pub(super) fn write_buffer_bytes(name: &str, total: usize) -> usize {
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
pub(super) const MEMTABLE_SHARES: usize = 64 + 32 + 5 * 16 + 4 + 2;

/// RocksDB's memtables by default, all families together: a MiB per share.
pub const DEFAULT_MEMTABLES_BYTES: usize = MEMTABLE_SHARES << 20;

/// The write-ahead log is deleted once every family it holds writes of has flushed them; a
/// family that takes in little (the head's record in `meta`, a certificate per height in
/// `commits`) would keep it growing. Past this size RocksDB flushes the families holding its
/// oldest part. It is also the most a restart replays.
pub(super) const MAX_WAL_BYTES: u64 = 256 << 20;

/// Families whose point lookups mostly miss the memtables (tree nodes and values written many
/// heights ago, keys and transactions never written): a Bloom filter over each memtable answers
/// those without a skip-list descent per memtable. In a late hold the descents (key compares)
/// were 15% of a validator's CPU, most of it under the tree walks to deep nodes.
pub(super) const MEMTABLE_FILTERED: [&str; 4] = [CF_NODES, CF_VALUES, CF_KEYS, CF_TXS];
/// Size of a memtable's Bloom filter, as a share of the memtable (a 64 MiB memtable of ~100-byte
/// entries gets about 16 bits per entry).
pub(super) const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// When RocksDB compacts a family's level 0, and when it slows and stops writes for it: the
/// level-0 files that trigger each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Level0Files {
    pub(super) compact: i32,
    pub(super) slow_writes: i32,
    pub(super) stop_writes: i32,
}

/// The families keyed by hash are written in random order, so each compaction of their level 0
/// rewrites the whole level below; and the shared write buffer of the time flushed the small
/// ones in files of a few megabytes (see [`write_buffer_bytes`]). At RocksDB's trigger of 4
/// files, compaction wrote `values`, `keys` and `txs` 9 times over and `nodes` twice: a quarter
/// of a validator's CPU under load. Collecting 12 files (8 for `nodes`, whose files are larger
/// and whose lookups are the most frequent) cut the bytes compacted by two thirds and
/// compaction's CPU by half, for the same bytes flushed (ADR 0006). Each extra file costs a lookup that misses it one more Bloom probe, in a filter
/// pinned in the cache. The other families keep RocksDB's defaults (`None`).
pub(super) fn level0_files(name: &str) -> Option<Level0Files> {
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
pub(super) const MIN_BLOCK_CACHE_SHARD_BYTES: usize = 16 << 20;

/// log2 of the block cache's shard count: shards of at least [`MIN_BLOCK_CACHE_SHARD_BYTES`],
/// and no more than RocksDB's own limit of 64 (each shard has its own lock).
pub(super) fn block_cache_shard_bits(capacity: usize) -> i32 {
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
/// (ADR 0006); 512 bytes did not separate from 1 KiB. The index grows
/// fourfold, to 1.5% of the data (about 5 MB for that state's tree), cached with the filters. The
/// other families keep RocksDB's 4 KiB: read by height or in ranges, or (`keys`, `txs`) not
/// measured with smaller blocks.
pub(super) fn data_block_bytes(name: &str) -> usize {
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
pub(super) fn family_options(
    name: &str,
    block_cache: &rocksdb::Cache,
    memtables: usize,
) -> Options {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::FAMILIES;

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
    fn a_budget_is_shared_within_itself_and_bounds_only_what_it_can() {
        for (budget, tree) in [
            (MIN_MEMORY_BUDGET_BYTES, TreePlacement::Disk),
            (MIN_MEMORY_BUDGET_BYTES, TreePlacement::Derived),
            (1 << 30, TreePlacement::Disk),
            (1 << 30, TreePlacement::Derived),
            (64 << 30, TreePlacement::Derived),
        ] {
            let sizes = CacheSizes::within(budget, tree).unwrap();
            assert_eq!(sizes.tree, tree);
            let most = sizes.most_bytes();
            assert!(most <= budget, "{tree:?} {budget}: {most}");
            // A derived top takes whole levels: up to half its share is left unused.
            assert!(most > budget / 4 * 3, "{tree:?} {budget}: only {most} used");
            assert!(sizes.memtables_bytes >= 16 << 20, "{sizes:?}");
            assert!(sizes.nodes > 0 && sizes.values > 0, "{sizes:?}");
        }
        for shares in [DISK_SHARES, DERIVED_SHARES] {
            let sum = shares.memtables + shares.block_cache + shares.nodes + shares.values;
            assert_eq!(sum + shares.top, 100);
        }
        // A derived tree's top grows a level for each doubling: a GiB holds the default's 20.
        let derived = |mib: usize| {
            CacheSizes::within(mib << 20, TreePlacement::Derived)
                .unwrap()
                .tree_top_levels
        };
        assert_eq!(derived(1024), DEFAULT_TREE_TOP_LEVELS);
        assert_eq!(derived(2048), DEFAULT_TREE_TOP_LEVELS + 1);
        assert_eq!(derived(512), DEFAULT_TREE_TOP_LEVELS - 1);
        let refused = CacheSizes::within(MIN_MEMORY_BUDGET_BYTES - 1, TreePlacement::Disk);
        assert!(refused.unwrap_err().contains("at least 256 MiB"));
        let refused = CacheSizes::within(1 << 30, TreePlacement::Memory);
        assert!(refused.unwrap_err().contains("grows with the state"));
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
