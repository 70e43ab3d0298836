//! State snapshots: the state at one committed height, cut into chunks a joining node checks one
//! at a time against the state root of that height's header.
//!
//! The state tree's key space is cut at a fixed depth `d`: chunk `i` holds every entry whose key
//! hash starts with the `d` bits of `i`, in key order. A [`Manifest`] lists, for each of the
//! `2^d` chunks, the root of its subtree and how many entries it holds; combined the way the
//! compact tree combines subtrees, they make the state root, so a manifest is checked against a
//! committed header before any chunk is fetched. Each chunk is then checked alone: its entries
//! build the subtree its manifest line names, or it is refused (and the peer that sent it with
//! it). A node never holds more than one chunk it has not checked.
//!
//! What it is not: how snapshots travel or where they are kept (the node's), nor what makes
//! the header trusted (a commit by the validator set the verifier's trust leads to, as for
//! receipts). The format is in `docs/spec/state.md` ("Snapshots").

use crate::codec::{self, DecodeError};
use crate::hash::Hash32;
use crate::state_tree::{self, EMPTY, Node, NodeKey, Position};
use borsh::{BorshDeserialize, BorshSerialize};

/// Entries a chunk is cut for, on average: about a megabyte of today's values.
pub const TARGET_CHUNK_ENTRIES: u64 = 4096;
/// The deepest cut: 65,536 chunks, enough for about 270 million entries at the target size.
pub const MAX_DEPTH: u8 = 16;
/// Largest encoded chunk accepted.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;
/// Largest encoded manifest accepted (`2^16` lines of 40 bytes, and the rest).
pub const MAX_MANIFEST_BYTES: usize = (1 << MAX_DEPTH) * 40 + 1024;

/// What a snapshot holds, chunk by chunk.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Manifest {
    /// The committed height whose state it is.
    pub height: u64,
    /// The depth of the cut: there are `2^depth` chunks.
    pub depth: u8,
    /// Chunk `i`'s subtree: its root and its number of entries.
    pub chunks: Vec<ChunkLine>,
}

/// One chunk's line in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChunkLine {
    /// The root of the subtree holding exactly the chunk's entries, built at the chunk's
    /// position ([`EMPTY`] for none; the leaf's hash for one).
    pub root: Hash32,
    /// How many entries the chunk holds.
    pub entries: u64,
}

/// The entries of `lines` together (saturating: counts come from peers).
fn total(lines: &[ChunkLine]) -> u64 {
    lines
        .iter()
        .fold(0u64, |sum, c| sum.saturating_add(c.entries))
}

impl ChunkLine {
    /// The line of chunk `index` at `depth` holding `entries` (key hash, value hash; sorted,
    /// all in the chunk).
    pub fn of(depth: u8, index: u32, entries: &[(Hash32, Hash32)]) -> ChunkLine {
        ChunkLine {
            root: state_tree::build_at(position(depth, index), entries, &mut |_, _| {}),
            entries: entries.len() as u64,
        }
    }
}

/// One state entry: its key hash and its value.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Entry {
    /// The key hash (the entry's path in the tree).
    pub key: Hash32,
    /// The value's bytes.
    pub value: Vec<u8>,
}

/// A chunk: its entries in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Chunk {
    /// The entries, sorted by key, no key twice.
    pub entries: Vec<Entry>,
}

/// Why a manifest or a chunk is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a manifest or not a chunk.
    #[error("malformed snapshot data: {0}")]
    Malformed(String),
    /// The manifest does not make the header's state root.
    #[error("the manifest makes state root {got}, the header has {expected}")]
    WrongRoot {
        /// The header's.
        expected: Hash32,
        /// The manifest's.
        got: Hash32,
    },
    /// The chunk does not hold what its manifest line says.
    #[error("chunk {index} does not match the manifest: {why}")]
    WrongChunk {
        /// Which chunk.
        index: u32,
        /// What differs.
        why: String,
    },
}

/// The cut for a state of `entries` entries: the shallowest depth whose chunks hold at most
/// [`TARGET_CHUNK_ENTRIES`] on average, at most [`MAX_DEPTH`].
pub fn depth_for(entries: u64) -> u8 {
    let mut depth = 0u8;
    while depth < MAX_DEPTH && entries > TARGET_CHUNK_ENTRIES << depth {
        depth += 1;
    }
    depth
}

/// The chunk a key hash falls in at `depth`: the key's first `depth` bits.
pub fn chunk_of(key: &Hash32, depth: u8) -> u32 {
    if depth == 0 {
        return 0;
    }
    let first = u32::from_be_bytes(key.as_bytes()[..4].try_into().expect("4 bytes"));
    first >> (32 - u32::from(depth))
}

/// The tree position of chunk `index`'s subtree at `depth`.
fn position(depth: u8, index: u32) -> Position {
    let path = if depth == 0 {
        0
    } else {
        index << (32 - u32::from(depth))
    };
    Position {
        depth: depth.into(),
        path,
    }
}

impl Chunk {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode a chunk from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Chunk, DecodeError> {
        codec::decode(bytes, MAX_CHUNK_BYTES)
    }
}

impl Manifest {
    /// The manifest of a state: `entries` are all of its (key hash, value hash) in key order,
    /// cut at the depth [`depth_for`] their number gives.
    pub fn of(height: u64, entries: &[(Hash32, Hash32)]) -> Manifest {
        Manifest::cut(height, depth_for(entries.len() as u64), entries)
    }

    /// The manifest of a state (all its entries, in key order) cut at `depth` (at most
    /// [`MAX_DEPTH`]).
    pub fn cut(height: u64, depth: u8, entries: &[(Hash32, Hash32)]) -> Manifest {
        let mut chunks = Vec::with_capacity(1 << depth);
        let mut rest = entries;
        for index in 0..(1u32 << depth) {
            let end = rest.partition_point(|(k, _)| chunk_of(k, depth) == index);
            let (mine, after) = rest.split_at(end);
            chunks.push(ChunkLine::of(depth, index, mine));
            rest = after;
        }
        Manifest {
            height,
            depth,
            chunks,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode a manifest from untrusted bytes, its shape checked (one line per chunk).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, SnapshotError> {
        let m: Manifest = codec::decode(bytes, MAX_MANIFEST_BYTES)
            .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        if m.depth > MAX_DEPTH || m.chunks.len() != 1 << m.depth {
            return Err(SnapshotError::Malformed(format!(
                "{} chunk lines for depth {}",
                m.chunks.len(),
                m.depth
            )));
        }
        if m.chunks
            .iter()
            .try_fold(0u64, |sum, c| sum.checked_add(c.entries))
            .is_none()
        {
            return Err(SnapshotError::Malformed(
                "the chunks' entry counts overflow".into(),
            ));
        }
        Ok(m)
    }

    /// How many entries the state holds.
    pub fn entries(&self) -> u64 {
        total(&self.chunks)
    }

    /// The state root the chunks make together, with the nodes above the cut (each under its
    /// key) handed to `put`.
    pub fn root(&self, put: &mut impl FnMut(NodeKey, Node)) -> Hash32 {
        self.combine(Position::ROOT, 0, self.chunks.len(), put).0
    }

    /// Check the manifest against the state root of its height's committed header.
    pub fn verify(&self, state_root: &Hash32) -> Result<(), SnapshotError> {
        let got = self.root(&mut |_, _| {});
        if got != *state_root {
            return Err(SnapshotError::WrongRoot {
                expected: *state_root,
                got,
            });
        }
        Ok(())
    }

    /// The subtree over chunks `from..to` at `pos`: its hash and its number of entries. A
    /// side with no entries is [`EMPTY`]; a subtree of one entry is that entry's leaf, moved
    /// up (a leaf's hash does not depend on where it sits), as the compact tree places it.
    fn combine(
        &self,
        pos: Position,
        from: usize,
        to: usize,
        put: &mut impl FnMut(NodeKey, Node),
    ) -> (Hash32, u64) {
        if to - from == 1 {
            let line = self.chunks[from];
            return (line.root, line.entries);
        }
        let mid = from + (to - from) / 2;
        let (left, l) = self.combine(pos.child(false), from, mid, put);
        let (right, r) = self.combine(pos.child(true), mid, to, put);
        match l.saturating_add(r) {
            0 => (EMPTY, 0),
            1 => (if l == 1 { left } else { right }, 1),
            n => {
                let node = Node::Internal { left, right };
                let hash = node.hash();
                put(NodeKey::new(pos, hash), node);
                (hash, n)
            }
        }
    }

    /// Check chunk `index` against its line, and hand each of its tree nodes (under the key the
    /// whole tree stores it at) to `put`. Refused unless its entries are in key order, each
    /// falls in the chunk, and together they build the line's root.
    pub fn check_chunk(
        &self,
        index: u32,
        chunk: &Chunk,
        put: &mut impl FnMut(NodeKey, Node),
    ) -> Result<(), SnapshotError> {
        let wrong = |why: String| SnapshotError::WrongChunk { index, why };
        let line = self
            .chunks
            .get(index as usize)
            .ok_or_else(|| wrong(format!("no chunk {index} at depth {}", self.depth)))?;
        if chunk.entries.len() as u64 != line.entries {
            return Err(wrong(format!(
                "{} entries, the manifest says {}",
                chunk.entries.len(),
                line.entries
            )));
        }
        let mut hashed = Vec::with_capacity(chunk.entries.len());
        for (i, e) in chunk.entries.iter().enumerate() {
            if chunk_of(&e.key, self.depth) != index {
                return Err(wrong(format!("key {} is not in it", e.key)));
            }
            if i > 0 && chunk.entries[i - 1].key >= e.key {
                return Err(wrong(format!("key {} is out of order", e.key)));
            }
            hashed.push((e.key, state_tree::value_hash(&e.value)));
        }
        let mut nodes = Vec::new();
        let root = state_tree::build_at(position(self.depth, index), &hashed, &mut |k, n| {
            nodes.push((k, n))
        });
        if root != line.root {
            return Err(wrong(format!(
                "its entries make {root}, the manifest says {}",
                line.root
            )));
        }
        if let [(key, value)] = hashed[..] {
            // A lone entry's leaf sits as high as the chunks around it leave it.
            let pos = self.lone_leaf_position(index);
            put(NodeKey::new(pos, root), Node::Leaf { key, value });
        } else {
            for (k, n) in nodes {
                put(k, n);
            }
        }
        Ok(())
    }

    /// Where the one entry of chunk `index` sits in the whole tree: at the highest ancestor of
    /// the chunk whose subtree holds nothing else.
    fn lone_leaf_position(&self, index: u32) -> Position {
        let mut depth = self.depth;
        while depth > 0 {
            let span = 1usize << (self.depth - depth + 1);
            let from = (index as usize / span) * span;
            if total(&self.chunks[from..from + span]) != 1 {
                break;
            }
            depth -= 1;
        }
        let shift = self.depth - depth;
        position(depth, index >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state(keys: &[[u8; 32]]) -> Vec<Entry> {
        let mut entries: Vec<Entry> = keys
            .iter()
            .map(|k| Entry {
                key: Hash32(*k),
                value: k[..3].to_vec(),
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        entries.dedup_by_key(|e| e.key);
        entries
    }

    fn hashed(entries: &[Entry]) -> Vec<(Hash32, Hash32)> {
        entries
            .iter()
            .map(|e| (e.key, state_tree::value_hash(&e.value)))
            .collect()
    }

    /// The chunks of `entries` cut at `depth`.
    fn chunks(entries: &[Entry], depth: u8) -> Vec<Chunk> {
        let mut out = vec![Chunk::default(); 1 << depth];
        for e in entries {
            out[chunk_of(&e.key, depth) as usize]
                .entries
                .push(e.clone());
        }
        out
    }

    fn manifest_at(entries: &[Entry], depth: u8) -> Manifest {
        Manifest::cut(1, depth, &hashed(entries))
    }

    proptest! {
        /// Whatever the state and the cut: the manifest makes the tree's root, every chunk
        /// checks, and the nodes the chunks and the manifest hand out are exactly the tree's.
        #[test]
        fn a_snapshot_rebuilds_exactly_the_tree(
            keys in prop::collection::vec(any::<[u8; 32]>(), 0..60),
            clustered in any::<bool>(),
            depth in 0u8..6,
        ) {
            let mut keys = keys;
            if clustered {
                // Most keys share their first byte: lone leaves sit high, chunks are empty.
                for k in keys.iter_mut().skip(1) { k[0] = 0x5a; }
            }
            let entries = state(&keys);
            let mut want_nodes = Vec::new();
            let root = state_tree::build(&hashed(&entries), &mut |k, n| want_nodes.push((k, n)));
            let m = manifest_at(&entries, depth);
            prop_assert!(m.verify(&root).is_ok());
            let mut got_nodes = Vec::new();
            m.root(&mut |k, n| got_nodes.push((k, n)));
            for (i, c) in chunks(&entries, depth).iter().enumerate() {
                m.check_chunk(i as u32, c, &mut |k, n| got_nodes.push((k, n))).unwrap();
            }
            want_nodes.sort_by_key(|(k, _)| *k);
            got_nodes.sort_by_key(|(k, _)| *k);
            prop_assert_eq!(&got_nodes, &want_nodes);
        }

        /// A chunk with one entry changed, left out, added or moved to another chunk is refused.
        #[test]
        fn a_changed_chunk_is_refused(
            keys in prop::collection::vec(any::<[u8; 32]>(), 2..60),
            pick in any::<prop::sample::Index>(),
            how in 0u8..4,
        ) {
            let entries = state(&keys);
            prop_assume!(entries.len() >= 2);
            let m = manifest_at(&entries, 2);
            let mut all = chunks(&entries, 2);
            let nonempty: Vec<usize> = (0..all.len()).filter(|i| !all[*i].entries.is_empty()).collect();
            let i = nonempty[pick.index(nonempty.len())];
            let c = &mut all[i];
            match how {
                0 => c.entries[0].value.push(1),
                1 => {
                    c.entries.pop();
                }
                2 => {
                    let mut e = c.entries[0].clone();
                    e.key.0[31] ^= 1;
                    prop_assume!(c.entries.iter().all(|x| x.key != e.key));
                    c.entries.push(e);
                    c.entries.sort_by_key(|e| e.key);
                }
                // The first bit picks the chunk at depth 2: the key lands in another one.
                _ => c.entries[0].key.0[0] ^= 0x80,
            }
            let checked = m.check_chunk(i as u32, &all[i], &mut |_, _| ());
            prop_assert!(checked.is_err());
        }
    }

    #[test]
    fn the_cut_deepens_with_the_state() {
        assert_eq!(depth_for(0), 0);
        assert_eq!(depth_for(TARGET_CHUNK_ENTRIES), 0);
        assert_eq!(depth_for(TARGET_CHUNK_ENTRIES + 1), 1);
        assert_eq!(depth_for(1_000_000), 8);
        assert_eq!(depth_for(u64::MAX), MAX_DEPTH);
        let key = Hash32([0b1011_0000; 32]);
        assert_eq!(chunk_of(&key, 0), 0);
        assert_eq!(chunk_of(&key, 1), 1);
        assert_eq!(chunk_of(&key, 4), 0b1011);
    }

    #[test]
    fn a_manifest_of_another_state_is_refused_and_junk_does_not_decode() {
        let entries = state(&[[1; 32], [2; 32], [200; 32]]);
        let m = Manifest::of(5, &hashed(&entries));
        assert!(m.verify(&Hash32([9; 32])).is_err());
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        let mut bad = m.clone();
        bad.depth = 3;
        assert!(Manifest::decode(&bad.encode()).is_err());
        assert!(Manifest::decode(b"junk").is_err());
        // Counts a peer made up that overflow together (found by fuzzing).
        let mut huge = Manifest::cut(5, 1, &[]);
        huge.chunks[0].entries = u64::MAX;
        huge.chunks[1].entries = 2;
        assert!(Manifest::decode(&huge.encode()).is_err());
        assert_eq!(huge.entries(), u64::MAX);
        assert!(huge.verify(&Hash32::ZERO).is_err());
        assert!(Chunk::decode(&[0xff; 8]).is_err());
    }
}
