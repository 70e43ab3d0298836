//! What the store reports about itself for the metrics: cache fills, column-family sizes,
//! RocksDB's counters.

use super::Store;
use super::locks::shared;
use super::schema::FAMILIES;
use crate::cache::Cache;
use crate::metrics::{BlockCacheUse, CacheFill, FamilySize, StoreIo};

impl Store {
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
    pub(super) fn int_property(&self, family: &str, property: &str) -> u64 {
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
}
