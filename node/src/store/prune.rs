//! Pruning: deleting the tree nodes and values that went stale more than `keep` heights ago,
//! and the blocks older than a horizon that no receipt needs, one bounded step at a time.

use super::Store;
use super::locks::exclusive;
use super::schema::*;
use super::stale::{Pruned, StaleNodes};
use cachet_chain::hash::DigestMap;
use cachet_chain::state_tree::{NodeKey, StoreError};
use rocksdb::WriteBatch;

/// Stale nodes looked at under one hold of the write lock. Pruning holds it while it reads
/// each node's height and deletes, so a commit waits for at most one chunk (a few
/// milliseconds at this size).
const PRUNE_CHUNK: usize = 2_000;

impl Store {
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
}

/// Heights whose blocks one step of [`Store::prune_blocks`] deletes at most.
const BLOCK_PRUNE_STEP: u64 = 512;

/// The fewest transactions pruned before their blocks' space is reclaimed (about 15 MB of
/// blocks and 5 MB of index at bench sizes).
pub const COMPACT_AFTER_TXS: u64 = 100_000;

impl Store {
    /// Delete the blocks, commit certificates and transaction-index entries of the heights
    /// more than `keep` below the head, but for those receipts and checkpoint advances carry
    /// (the blocks that changed the validator set, the checkpoints' blocks): one bounded step,
    /// which moves the store's [`base`](Store::base) up; the new base (call again until it
    /// stops moving). Nothing above `keep_from` goes either: the node's oldest snapshot, whose
    /// joiners follow the chain from there by asking for the blocks after it. Not synced: a
    /// step a crash undid is done again.
    pub fn prune_blocks(&self, keep: u64, keep_from: Option<u64>) -> Result<u64, StoreError> {
        let head = self.head()?.map_or(0, |h| h.height.0);
        let base = self.base()?;
        let target = head
            .saturating_sub(keep)
            .min(base + BLOCK_PRUNE_STEP)
            .min(keep_from.unwrap_or(u64::MAX));
        if target <= base {
            return Ok(base);
        }
        let mut kept: std::collections::BTreeSet<u64> =
            self.validator_set_changes()?.into_iter().collect();
        kept.extend(self.checkpoint_heights()?);
        let mut batch = WriteBatch::default();
        let (blocks, commits, txs) = (self.cf(CF_BLOCKS), self.cf(CF_COMMITS), self.cf(CF_TXS));
        for h in base.max(1)..target {
            if kept.contains(&h) {
                continue;
            }
            if let Some(block) = self.block(h)? {
                for tx in &block.txs {
                    batch.delete_cf(txs, tx.id().0.as_bytes());
                }
                self.pruned_txs
                    .fetch_add(block.txs.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            batch.delete_cf(blocks, be(h));
            batch.delete_cf(commits, be(h));
        }
        batch.put_cf(self.cf(CF_META), META_BASE, be(target));
        self.db.write(batch).map_err(backend)?;
        Ok(target)
    }

    /// Whether [`Store::compact_pruned_blocks`] is due: pruning has deleted, since the last
    /// one (in this process), at least [`COMPACT_AFTER_TXS`] transactions and a quarter of
    /// those the index still holds. Compacting the index rewrites it whole, so the rule keeps that to at most four
    /// times what was deleted, and the deleted blocks' space to a quarter of the kept ones'.
    pub fn pruned_blocks_compaction_due(&self) -> bool {
        let deleted = self.pruned_txs.load(std::sync::atomic::Ordering::Relaxed);
        let held = self.int_property(CF_TXS, "rocksdb.estimate-num-keys");
        deleted >= COMPACT_AFTER_TXS.max(held / 4)
    }

    /// Compact what [`Store::prune_blocks`] deleted up to `base`: the families it deletes from
    /// take their keys once (heights, transaction ids) and are never written at the old ones
    /// again, so no compaction RocksDB schedules by itself would meet the deletions there, and
    /// the deleted blocks would keep their disk space. Blocks and certificates are compacted
    /// up to `base` only; the transaction index, keyed by hash, whole.
    pub fn compact_pruned_blocks(&self, base: u64) {
        self.pruned_txs
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let past = be(base + 1);
        for family in [CF_BLOCKS, CF_COMMITS] {
            self.db
                .compact_range_cf(self.cf(family), None::<&[u8]>, Some(&past[..]));
        }
        self.db
            .compact_range_cf(self.cf(CF_TXS), None::<&[u8]>, None::<&[u8]>);
    }
}
