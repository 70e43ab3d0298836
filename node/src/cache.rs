//! A bounded cache for immutable, content-addressed entries (state-tree nodes and values).
//!
//! Two generations per shard: lookups look in the young one, then in the old one (promoting
//! what they find); when the young one is full it becomes the old one and the old one is
//! dropped. That keeps what was used since the last turnover — close to LRU, at the cost of two
//! hash lookups on a miss — with no per-entry bookkeeping. Entries never change under their
//! key (the key is their hash), so a cached entry is never stale.

use cachet_chain::hash::Hash32;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Keys are BLAKE3 outputs, already uniform: eight of their bytes are a hash. (SipHash over
/// all 32 was a tenth of a node's CPU under load.)
#[derive(Default)]
struct KeyBytes(u64);

impl Hasher for KeyBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `Hash32` hashes as its 32-byte array; bytes 8..16 (the shard uses byte 0).
        let mut word = [0u8; 8];
        let take = bytes.len().min(16);
        let from = take.saturating_sub(8);
        word[..take - from].copy_from_slice(&bytes[from..take]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

type Map<V> = HashMap<Hash32, V, BuildHasherDefault<KeyBytes>>;

struct Generations<V> {
    young: Map<V>,
    old: Map<V>,
}

/// A sharded two-generation cache holding at most about `2 × capacity` entries.
pub struct Cache<V> {
    shards: Vec<Mutex<Generations<V>>>,
    per_shard: usize,
}

impl<V: Clone> Cache<V> {
    /// A cache that keeps at least the `capacity` most recently used entries (and at most
    /// twice as many).
    pub fn new(capacity: usize) -> Cache<V> {
        Cache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Generations {
                        young: Map::default(),
                        old: Map::default(),
                    })
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
        }
    }

    fn shard(&self, key: &Hash32) -> std::sync::MutexGuard<'_, Generations<V>> {
        // Keys are hashes: any byte spreads them evenly.
        self.shards[key.0[0] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The entry under `key`, if cached.
    pub fn get(&self, key: &Hash32) -> Option<V> {
        let mut g = self.shard(key);
        if let Some(v) = g.young.get(key) {
            return Some(v.clone());
        }
        let v = g.old.remove(key)?;
        Self::insert_young(&mut g, self.per_shard, *key, v.clone());
        Some(v)
    }

    /// Drop the entry under `key`, if cached.
    pub fn remove(&self, key: &Hash32) {
        let mut g = self.shard(key);
        if g.young.remove(key).is_none() {
            g.old.remove(key);
        }
    }

    /// Cache `value` under `key`.
    pub fn insert(&self, key: Hash32, value: V) {
        let mut g = self.shard(&key);
        Self::insert_young(&mut g, self.per_shard, key, value);
    }

    fn insert_young(g: &mut Generations<V>, per_shard: usize, key: Hash32, value: V) {
        if g.young.len() >= per_shard {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, value);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock().unwrap_or_else(|p| p.into_inner());
                g.young.len() + g.old.len()
            })
            .sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Hash32 {
        Hash32(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn keeps_what_is_used_and_stays_bounded() {
        let cache = Cache::new(SHARDS * 100);
        for i in 0..10_000 {
            cache.insert(key(i), i);
            // Key 0 is used all along: it must survive every turnover.
            assert_eq!(cache.get(&key(0)), Some(0));
        }
        assert!(cache.len() <= 2 * SHARDS * 100 + SHARDS, "{}", cache.len());
        // Recent entries are there; the oldest ones are gone.
        assert_eq!(cache.get(&key(9_999)), Some(9_999));
        assert_eq!(cache.get(&key(1)), None);
    }

    #[test]
    fn removed_entries_are_gone_from_either_generation() {
        let cache = Cache::new(SHARDS * 10);
        for i in 0..400 {
            cache.insert(key(i), i);
        }
        // Some of these are in the old generation by now, some in the young one.
        for i in 0..400 {
            cache.remove(&key(i));
        }
        assert!(cache.is_empty(), "{} left", cache.len());
    }
}
