//! A bounded cache for immutable, content-addressed entries (state-tree nodes and values).
//!
//! CLOCK ("second chance") per shard: entries sit in at most `capacity / SHARDS` slots, each
//! with a `used` bit that a lookup sets. An insert into a full shard sweeps a hand over the
//! slots, clearing bits, and takes the first slot whose bit was already clear. A hit is one
//! hash lookup and a bit; once a shard is full nothing is allocated or freed. That matters
//! when the state outgrows the cache: the earlier design (two generations, the young one
//! becoming the old one when full) rebuilt a map at every turnover, and a uniform spread of
//! receipts over a large tree turned it over constantly.
//!
//! Entries never change under their key (the key is their hash), so a cached entry is never
//! stale. It is not an LRU: an entry used once since the hand last passed is as safe as one
//! used a thousand times, which is the right bias for tree walks (the upper levels are used
//! between every two passes, the deep ones rarely).

use cachet_chain::hash::Hash32;
use hashbrown::HashTable;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Where a key sits in its shard's table. Keys are BLAKE3 outputs, already uniform: eight of
/// their bytes are a hash (SipHash over all 32 was a tenth of a node's CPU under load). Bytes
/// 8..16, as the shard is chosen by byte 0. Not the seeded `hash::DigestHashing` that maps of
/// issuer-chosen ids use: its five multiplies made these lookups 10–20% slower in the
/// `node_cache` bench, and these keys are not an issuer's to grind: the records it writes hold
/// the height they were executed at, unknown when it signs (its agency record, which does not,
/// has one next value, fixed by its nonce), and inner nodes hash everyone's entries.
fn table_hash(key: &Hash32) -> u64 {
    u64::from_le_bytes(key.0[8..16].try_into().expect("8 bytes"))
}

struct Slot<V> {
    key: Hash32,
    value: V,
    /// Looked up since the hand last passed.
    used: bool,
}

struct Shard<V> {
    /// Each indexed entry's slot number, found by the key's [`table_hash`] and confirmed
    /// against the slot's key. The key lives in the slot only: 5 bytes per bucket here with
    /// the control byte, 5 MB for a full default cache of 600k entries, which mostly stays in
    /// the CPU's caches, so a hit misses them about once, at its slot. A map from key to slot
    /// number (37 bytes per bucket, 39 MB) missed them at the key as well: reads took twice as
    /// long, and were 9% of a node serving receipts from a large state.
    index: HashTable<u32>,
    /// Grows to `per_shard` and never shrinks.
    slots: Vec<Slot<V>>,
    /// Slots emptied by `remove`, filled before the hand evicts anything. While any is listed,
    /// the hand does not move, so it only ever passes slots that hold an indexed entry.
    free: Vec<u32>,
    hand: usize,
}

impl<V> Shard<V> {
    /// The slot holding `key`.
    fn find(&self, key: &Hash32) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(table_hash(key), |&at| slots[at as usize].key == *key)
            .map(|&at| at as usize)
    }

    /// Drop slot `at` from the index (its key is `key`).
    fn unindex(&mut self, key: &Hash32, at: usize) {
        if let Ok(entry) = self
            .index
            .find_entry(table_hash(key), |&i| i as usize == at)
        {
            entry.remove();
        }
    }

    fn insert(&mut self, per_shard: usize, key: Hash32, value: V) {
        if let Some(at) = self.find(&key) {
            // The same key is the same entry: only its use counts.
            self.slots[at].used = true;
            return;
        }
        let slot = Slot {
            key,
            value,
            used: false,
        };
        let at = if let Some(at) = self.free.pop() {
            self.slots[at as usize] = slot;
            at as usize
        } else if self.slots.len() < per_shard {
            if self.slots.len() == self.slots.capacity() {
                // Double, but never past the bound: a full shard holds no spare room.
                let more = self.slots.len().max(64).min(per_shard - self.slots.len());
                self.slots.reserve_exact(more);
            }
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            // Every slot holds an entry (the free list is empty), so this ends within two laps.
            loop {
                let at = self.hand;
                self.hand = (self.hand + 1) % self.slots.len();
                if std::mem::take(&mut self.slots[at].used) {
                    continue;
                }
                let evicted = self.slots[at].key;
                self.unindex(&evicted, at);
                self.slots[at] = slot;
                break at;
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(table_hash(&key), at as u32, |&i| {
            table_hash(&slots[i as usize].key)
        });
    }
}

/// A sharded CLOCK cache holding at most `capacity` entries (rounded down to a multiple of
/// the shard count, and at least one per shard).
pub struct Cache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    per_shard: usize,
}

impl<V: Clone> Cache<V> {
    /// An empty cache for up to `capacity` entries. Memory is taken as entries arrive.
    pub fn new(capacity: usize) -> Cache<V> {
        let per_shard = (capacity / SHARDS).clamp(1, u32::MAX as usize);
        Cache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        index: HashTable::new(),
                        slots: Vec::new(),
                        free: Vec::new(),
                        hand: 0,
                    })
                })
                .collect(),
            per_shard,
        }
    }

    fn shard(&self, key: &Hash32) -> std::sync::MutexGuard<'_, Shard<V>> {
        // Keys are hashes: any byte spreads them evenly.
        self.shards[key.0[0] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The entry under `key`, if cached.
    pub fn get(&self, key: &Hash32) -> Option<V> {
        let mut shard = self.shard(key);
        let at = shard.find(key)?;
        let slot = &mut shard.slots[at];
        slot.used = true;
        Some(slot.value.clone())
    }

    /// Drop the entry under `key`, if cached.
    pub fn remove(&self, key: &Hash32) {
        let mut shard = self.shard(key);
        if let Some(at) = shard.find(key) {
            shard.unindex(key, at);
            shard.free.push(at as u32);
        }
    }

    /// Cache `value` under `key`.
    pub fn insert(&self, key: Hash32, value: V) {
        self.shard(&key).insert(self.per_shard, key, value);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).index.len())
            .sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this cache holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u32) -> Hash32 {
        Hash32(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn keeps_what_is_used_and_stays_bounded() {
        let cache = Cache::new(SHARDS * 100);
        for i in 0..10_000 {
            cache.insert(key(i), i);
            // Key 0 is used all along: it must survive every sweep.
            assert_eq!(cache.get(&key(0)), Some(0));
            assert!(cache.len() <= cache.capacity(), "{}", cache.len());
        }
        assert_eq!(cache.capacity(), SHARDS * 100);
        // Recent entries are there; the oldest ones are gone.
        assert_eq!(cache.get(&key(9_999)), Some(9_999));
        assert_eq!(cache.get(&key(1)), None);
    }

    #[test]
    fn a_used_working_set_survives_a_stream_of_entries_used_once() {
        // A quarter of the slots hold entries each read once in every 256 inserts of new ones
        // (the upper levels of a tree, say); a long stream of entries read once must not push
        // them out. A FIFO would lose all of them.
        let cache = Cache::new(SHARDS * 64);
        let hot: Vec<u32> = (0..SHARDS as u32 * 16).collect();
        for &i in &hot {
            cache.insert(key(i), i);
        }
        for cold in 1_000_000..1_020_000 {
            cache.insert(key(cold), cold);
            let i = hot[cold as usize % hot.len()];
            assert_eq!(cache.get(&key(i)), Some(i), "hot entry {i} lost");
        }
    }

    #[test]
    fn removed_entries_are_gone_and_their_slots_reused() {
        let cache = Cache::new(SHARDS * 10);
        for i in 0..400 {
            cache.insert(key(i), i);
        }
        let held: Vec<u32> = (0..400).filter(|&i| cache.get(&key(i)).is_some()).collect();
        assert_eq!(held.len(), cache.len());
        for i in 0..400 {
            cache.remove(&key(i));
        }
        assert!(cache.is_empty(), "{} left", cache.len());
        // The emptied slots take new entries before anything is evicted.
        for i in 1_000..1_000 + SHARDS as u32 * 2 {
            cache.insert(key(i), i);
        }
        for i in 1_000..1_000 + SHARDS as u32 * 2 {
            assert_eq!(cache.get(&key(i)), Some(i));
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8),
        Get(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Insert),
            3 => any::<u8>().prop_map(Op::Get),
            1 => any::<u8>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a model that knows only what was inserted and removed: the cache never
        /// answers with a wrong value or a removed entry, always holds what was just inserted,
        /// and never holds more than its capacity.
        #[test]
        fn never_wrong_never_over_capacity(
            capacity in 1usize..80,
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            let cache = Cache::new(capacity);
            let mut present = std::collections::HashSet::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        cache.insert(key(k.into()), u32::from(k) * 7);
                        present.insert(k);
                        prop_assert_eq!(cache.get(&key(k.into())), Some(u32::from(k) * 7));
                    }
                    Op::Get(k) => {
                        if let Some(v) = cache.get(&key(k.into())) {
                            prop_assert!(present.contains(&k), "{} was never inserted or was removed", k);
                            prop_assert_eq!(v, u32::from(k) * 7);
                        }
                    }
                    Op::Remove(k) => {
                        cache.remove(&key(k.into()));
                        present.remove(&k);
                        prop_assert_eq!(cache.get(&key(k.into())), None);
                    }
                }
                prop_assert!(cache.len() <= cache.capacity());
                prop_assert!(cache.len() <= present.len());
            }
        }
    }
}
