//! The authenticated state: a binary sparse Merkle tree over 256-bit key hashes, with
//! membership and non-membership proofs.
//!
//! The tree is *compact*: a subtree holding one entry is just that entry's leaf, placed at the
//! highest position its key path allows; an empty subtree is [`EMPTY`] (32 zero bytes). So a
//! tree of N entries has depth about log2(N), and the root depends only on the set of entries,
//! never on the order they were written in.
//!
//! ```text
//! leaf     = blake3(0x02 || key_hash || value_hash)
//! internal = blake3(0x03 || left || right)       // bit 0 of the path goes left
//! ```
//! A path bit at depth `d` is bit `d` of the key hash, most significant bit of byte 0 first.
//! No internal node has two empty children, or one empty child and one leaf child.
//!
//! A node is stored under its [`NodeKey`]: the first bits of its path, then its hash. Keys in
//! that order keep a subtree's nodes together, so a store sorted by key (RocksDB) reads a
//! walk's deep nodes from a few neighbouring blocks instead of one random block each. A value
//! is stored under the hash of its leaf (once per entry, going with it). Every root ever
//! committed stays readable and provable while its nodes are kept. Storage is behind
//! [`TreeStore`]; an update returns a [`TreeBatch`] of new nodes and values that the owner
//! writes atomically (the node writes it in the same RocksDB batch as the block), and the
//! nodes and values the new root no longer uses, which an owner that keeps only recent roots
//! may delete once no reader needs the old ones.

use crate::hash::{DigestMap, Domain, Hash32};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// The hash of an empty subtree.
pub const EMPTY: Hash32 = Hash32::ZERO;

const LEAF_PREFIX: u8 = 0x02;
const INTERNAL_PREFIX: u8 = 0x03;
const KEY_BITS: usize = 256;

/// A stored tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Node {
    /// One entry: the hash of its key and the hash of its value.
    Leaf {
        /// The key hash (the path).
        key: Hash32,
        /// The value hash.
        value: Hash32,
    },
    /// Two subtrees, either of which may be [`EMPTY`] (not both).
    Internal {
        /// Subtree for path bit 0.
        left: Hash32,
        /// Subtree for path bit 1.
        right: Hash32,
    },
}

impl Node {
    /// The node's hash.
    pub fn hash(&self) -> Hash32 {
        match self {
            Node::Leaf { key, value } => leaf_hash(key, value),
            Node::Internal { left, right } => internal_hash(left, right),
        }
    }
}

fn leaf_hash(key: &Hash32, value: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF_PREFIX]);
    h.update(key.as_bytes());
    h.update(value.as_bytes());
    Hash32(*h.finalize().as_bytes())
}

fn internal_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[INTERNAL_PREFIX]);
    h.update(left.as_bytes());
    h.update(right.as_bytes());
    Hash32(*h.finalize().as_bytes())
}

/// The hash of a stored value.
pub fn value_hash(value: &[u8]) -> Hash32 {
    Domain::StateValue.hash(value)
}

/// Path bits in a [`NodeKey`]: enough for the deep nodes of a tree of billions of entries to
/// sort by their subtree.
pub const NODE_KEY_PATH_BITS: usize = 32;

/// Where a node is stored: the first [`NODE_KEY_PATH_BITS`] bits of its path (those it has,
/// most significant first, then zeros), then its hash. Not part of any hash or proof: a store's
/// layout only. Ordered as its bytes, so the nodes of a subtree sort together, each after the
/// root of that subtree. A leaf that moves (up when its sibling goes, down when a new key
/// shares its path) changes key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// The path's first bits, zero-padded.
    pub path: u32,
    /// The node's hash.
    pub hash: Hash32,
}

impl NodeKey {
    /// Bytes of [`NodeKey::to_bytes`].
    pub const LEN: usize = 4 + 32;

    /// The key of the node `hash` at `pos`.
    pub fn new(pos: Position, hash: Hash32) -> NodeKey {
        NodeKey {
            path: pos.path,
            hash,
        }
    }

    /// The path's bits (big-endian), then the hash.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut bytes = [0; Self::LEN];
        bytes[..4].copy_from_slice(&self.path.to_be_bytes());
        bytes[4..].copy_from_slice(self.hash.as_bytes());
        bytes
    }

    /// The key `to_bytes` wrote, if `bytes` is one.
    pub fn from_bytes(bytes: &[u8]) -> Option<NodeKey> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        Some(NodeKey {
            path: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
            hash: Hash32(bytes[4..].try_into().expect("32 bytes")),
        })
    }
}

/// A position in the tree: its depth and the first bits of its path (as in [`NodeKey`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Edges from the root.
    pub depth: usize,
    /// The path's first [`NODE_KEY_PATH_BITS`] bits, zero-padded.
    pub path: u32,
}

impl Position {
    /// The root's position.
    pub const ROOT: Position = Position { depth: 0, path: 0 };

    /// The child on side `bit` (true: right).
    pub fn child(self, bit: bool) -> Position {
        let path = if bit && self.depth < NODE_KEY_PATH_BITS {
            self.path | (1 << (NODE_KEY_PATH_BITS - 1 - self.depth))
        } else {
            self.path
        };
        Position {
            depth: self.depth + 1,
            path,
        }
    }

    /// The child on `key`'s path.
    pub fn toward(self, key: &Hash32) -> Position {
        self.child(key.bit(self.depth))
    }
}

/// A storage failure. Fatal for the caller: state that cannot be read cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A node or value the tree refers to is not in the store.
    #[error("state store is missing {what} {hash}")]
    Missing {
        /// "node" or "value".
        what: &'static str,
        /// Its hash.
        hash: Hash32,
    },
    /// Stored bytes do not decode or do not match their hash.
    #[error("state store is corrupt: {0}")]
    Corrupt(String),
    /// The backend failed (I/O).
    #[error("state store failed: {0}")]
    Backend(String),
}

/// Read access to tree nodes by key, and to values by the hash of their leaf.
pub trait TreeStore {
    /// The node stored under `key`, if any.
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError>;
    /// The value of the leaf with this hash, if stored.
    fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError>;
    /// The value hash of `key` in the tree at `root`, answered from an index of that root's
    /// entries by key when the store keeps one (`Some(None)`: absent), so that a read is one
    /// lookup instead of a walk from the root. `None` (the default): no index for `root`, walk.
    fn indexed(&self, _root: &Hash32, _key: &Hash32) -> Result<Option<Option<Hash32>>, StoreError> {
        Ok(None)
    }
}

impl<T: TreeStore + ?Sized> TreeStore for &T {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        (**self).node(key)
    }
    fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).value(leaf)
    }
    fn indexed(&self, root: &Hash32, key: &Hash32) -> Result<Option<Option<Hash32>>, StoreError> {
        (**self).indexed(root, key)
    }
}

/// What an update changes in storage, to be written together.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeBatch {
    /// New nodes by key (sorted).
    pub nodes: Vec<(NodeKey, Node)>,
    /// The depth of each of `nodes`, in the same order (a [`NodeKey`] keeps only the first
    /// bits of a path, not its length): for an owner that keeps the top levels apart.
    pub depths: Vec<u16>,
    /// New values by the hash of their leaf.
    pub values: Vec<(Hash32, Vec<u8>)>,
    /// Keys of the old root's nodes that the new root does not use (sorted). A stale node may
    /// come back later (an entry set back to an earlier value), so an owner that deletes stale
    /// nodes must not delete one written again since it went stale.
    pub stale: Vec<NodeKey>,
    /// The leaves (by hash) of the old root whose values the new root does not use (sorted).
    /// Apart from `stale`: a leaf that moves changes key and keeps its value. Likewise a value
    /// may be written again later.
    pub stale_values: Vec<Hash32>,
    /// The changed entries, sorted by key hash: key hash → new value hash (`None`: deleted),
    /// for an owner that indexes the new root's entries by key.
    pub entries: Vec<(Hash32, Option<Hash32>)>,
}

/// An in-memory [`TreeStore`] that keeps every version, for tests, tools and light clients.
#[derive(Debug, Default, Clone)]
pub struct MemoryTreeStore {
    nodes: DigestMap<NodeKey, Node>,
    values: DigestMap<Hash32, Vec<u8>>,
}

impl MemoryTreeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the nodes and values of `batch`.
    pub fn write(&mut self, batch: TreeBatch) {
        self.nodes.extend(batch.nodes);
        self.values.extend(batch.values);
    }

    /// Number of stored nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

impl TreeStore for MemoryTreeStore {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        Ok(self.nodes.get(key).copied())
    }
    fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.values.get(leaf).cloned())
    }
}

fn load<S: TreeStore>(store: &S, key: &NodeKey) -> Result<Node, StoreError> {
    store.node(key)?.ok_or(StoreError::Missing {
        what: "node",
        hash: key.hash,
    })
}

/// Where the walk along a key's path ended.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub enum ProofTerminal {
    /// An empty subtree: the key is absent.
    Empty,
    /// A leaf: the key itself (present) or another key sharing the path so far (absent).
    Leaf {
        /// The leaf's key hash.
        key: Hash32,
        /// The leaf's value hash.
        value: Hash32,
    },
}

/// A proof of what the tree holds for one key: present with a value hash, or absent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, Serialize, Deserialize)]
pub struct StateProof {
    /// Sibling hashes from the root downward (`siblings[d]` is the sibling at depth `d + 1`).
    pub siblings: Vec<Hash32>,
    /// Where the path ended.
    pub terminal: ProofTerminal,
}

impl BorshDeserialize for StateProof {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        Ok(StateProof {
            siblings: crate::codec::read_bounded_vec(reader, KEY_BITS, "state proof")?,
            terminal: ProofTerminal::deserialize_reader(reader)?,
        })
    }
}

impl StateProof {
    /// The root this proof leads to for `key`, with the value hash it shows for `key`
    /// (`None` = absent). `None` overall when the proof is malformed for this key.
    pub fn resolve(&self, key: &Hash32) -> Option<(Hash32, Option<Hash32>)> {
        let depth = self.siblings.len();
        if depth > KEY_BITS {
            return None;
        }
        let (mut acc, shown) = match self.terminal {
            ProofTerminal::Empty => (EMPTY, None),
            ProofTerminal::Leaf { key: k, value } => {
                // A leaf on this path must share the path's first `depth` bits.
                if (0..depth).any(|d| k.bit(d) != key.bit(d)) {
                    return None;
                }
                (leaf_hash(&k, &value), (k == *key).then_some(value))
            }
        };
        for d in (0..depth).rev() {
            let sibling = &self.siblings[d];
            acc = if key.bit(d) {
                internal_hash(sibling, &acc)
            } else {
                internal_hash(&acc, sibling)
            };
        }
        Some((acc, shown))
    }

    /// Does this proof show that `key` maps to a value with hash `value` under `root`?
    pub fn verify_membership(&self, root: &Hash32, key: &Hash32, value: &Hash32) -> bool {
        self.resolve(key) == Some((*root, Some(*value)))
    }

    /// Does this proof show that `key` is absent under `root`?
    pub fn verify_absence(&self, root: &Hash32, key: &Hash32) -> bool {
        self.resolve(key) == Some((*root, None))
    }
}

/// The value hash stored for `key` under `root`, if any.
pub fn get_value_hash<S: TreeStore>(
    store: &S,
    root: &Hash32,
    key: &Hash32,
) -> Result<Option<Hash32>, StoreError> {
    Ok(find_leaf(store, root, key)?.map(|(_, value)| value))
}

/// The hash of `key`'s leaf under `root` and its value hash, if the key is present.
fn find_leaf<S: TreeStore>(
    store: &S,
    root: &Hash32,
    key: &Hash32,
) -> Result<Option<(Hash32, Hash32)>, StoreError> {
    if let Some(found) = store.indexed(root, key)? {
        return Ok(found.map(|value| (leaf_hash(key, &value), value)));
    }
    let (mut at, mut pos) = (*root, Position::ROOT);
    for depth in 0..=KEY_BITS {
        if at == EMPTY {
            return Ok(None);
        }
        match load(store, &NodeKey::new(pos, at))? {
            Node::Leaf { key: k, value } => return Ok((k == *key).then_some((at, value))),
            Node::Internal { left, right } => {
                if depth == KEY_BITS {
                    break;
                }
                at = if key.bit(depth) { right } else { left };
                pos = pos.toward(key);
            }
        }
    }
    Err(StoreError::Corrupt("tree deeper than 256 levels".into()))
}

/// The value stored for `key` under `root`, if any.
pub fn get<S: TreeStore>(
    store: &S,
    root: &Hash32,
    key: &Hash32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some((leaf, vh)) = find_leaf(store, root, key)? else {
        return Ok(None);
    };
    leaf_value(store, &leaf, &vh).map(Some)
}

/// The stored value of `leaf`, checked against the value hash `vh` the leaf holds.
fn leaf_value<S: TreeStore>(store: &S, leaf: &Hash32, vh: &Hash32) -> Result<Vec<u8>, StoreError> {
    let value = store.value(leaf)?.ok_or(StoreError::Missing {
        what: "value",
        hash: *leaf,
    })?;
    if value_hash(&value) != *vh {
        return Err(StoreError::Corrupt(format!(
            "value {vh} does not match its hash"
        )));
    }
    Ok(value)
}

/// A proof of what `root` holds for `key`.
pub fn prove<S: TreeStore>(
    store: &S,
    root: &Hash32,
    key: &Hash32,
) -> Result<StateProof, StoreError> {
    let mut siblings = Vec::new();
    let (mut at, mut pos) = (*root, Position::ROOT);
    for depth in 0..=KEY_BITS {
        if at == EMPTY {
            return Ok(StateProof {
                siblings,
                terminal: ProofTerminal::Empty,
            });
        }
        match load(store, &NodeKey::new(pos, at))? {
            Node::Leaf { key: k, value } => {
                return Ok(StateProof {
                    siblings,
                    terminal: ProofTerminal::Leaf { key: k, value },
                });
            }
            Node::Internal { left, right } => {
                if depth == KEY_BITS {
                    break;
                }
                if key.bit(depth) {
                    siblings.push(left);
                    at = right;
                } else {
                    siblings.push(right);
                    at = left;
                }
                pos = pos.toward(key);
            }
        }
    }
    Err(StoreError::Corrupt("tree deeper than 256 levels".into()))
}

/// The value stored for `key` under `root` together with the proof of it, from one walk: what
/// [`get`] and [`prove`] return, for a reader that needs both (a receipt) and would otherwise
/// walk the same path twice.
pub fn get_with_proof<S: TreeStore>(
    store: &S,
    root: &Hash32,
    key: &Hash32,
) -> Result<(Option<Vec<u8>>, StateProof), StoreError> {
    let proof = prove(store, root, key)?;
    let ProofTerminal::Leaf { key: k, value: vh } = &proof.terminal else {
        return Ok((None, proof));
    };
    if k != key {
        return Ok((None, proof));
    }
    let value = leaf_value(store, &leaf_hash(k, vh), vh)?;
    Ok((Some(value), proof))
}

/// Apply `changes` (key hash → new value, `None` deletes) to the tree at `root`. Returns the new
/// root and the nodes and values to store, with the nodes gone stale. `changes` must be sorted
/// by key hash with no duplicates (a `BTreeMap`'s iteration order).
pub fn update<S: TreeStore>(
    store: &S,
    root: &Hash32,
    changes: &[(Hash32, Option<Vec<u8>>)],
) -> Result<(Hash32, TreeBatch), StoreError> {
    debug_assert!(
        changes.windows(2).all(|w| w[0].0 < w[1].0),
        "changes must be sorted"
    );
    let mut batch = TreeBatch::default();
    let mut hashed = Vec::with_capacity(changes.len());
    for (key, value) in changes {
        let vh = value.as_ref().map(|v| {
            let vh = value_hash(v);
            batch.values.push((leaf_hash(key, &vh), v.clone()));
            vh
        });
        hashed.push((*key, vh));
    }
    let mut updater = Updater {
        store,
        created: DigestMap::default(),
        replaced: Vec::new(),
        stale_values: Vec::new(),
    };
    let new_root = updater.update(*root, Position::ROOT, &hashed)?;
    let Updater {
        created,
        mut replaced,
        mut stale_values,
        ..
    } = updater;
    // A node can be replaced on one path and rebuilt identically in the same place (an entry
    // set to the value it had): it is still in use.
    replaced.retain(|k| !created.contains_key(k));
    replaced.sort();
    replaced.dedup();
    batch.stale = replaced;
    stale_values.sort();
    batch.stale_values = stale_values;
    let mut nodes: Vec<_> = created.into_iter().collect();
    nodes.sort_by_key(|(k, _)| *k);
    (batch.nodes, batch.depths) = nodes
        .into_iter()
        .map(|(key, (node, depth))| ((key, node), depth))
        .unzip();
    batch.entries = hashed;
    Ok((new_root, batch))
}

/// The tree holding exactly `entries` (key hash, value hash; sorted by key, no duplicates),
/// built from nothing: its root, with every node handed to `put` under its key. These are the
/// nodes that [`update`] would leave reachable from that root, however the entries were
/// written (the tree depends only on its entries), so a store that keeps no nodes can rebuild
/// them from an index of the entries by key. Hashes each node once and reads nothing.
pub fn build(entries: &[(Hash32, Hash32)], put: &mut impl FnMut(NodeKey, Node)) -> Hash32 {
    debug_assert!(
        entries.windows(2).all(|w| w[0].0 < w[1].0),
        "entries must be sorted"
    );
    build_at(Position::ROOT, entries, put)
}

/// The canonical subtree for `entries` (sorted, distinct keys, all on `pos`'s path) rooted at
/// `pos`, every node handed to `put` under its key. With two or more entries it is the node at
/// `pos` of any tree holding exactly these entries below `pos`; a lone entry's leaf sits there
/// only if nothing else is below `pos`'s parent (see [`build`]).
pub fn build_at(
    pos: Position,
    entries: &[(Hash32, Hash32)],
    put: &mut impl FnMut(NodeKey, Node),
) -> Hash32 {
    build_positioned(pos, entries, &mut |_, key, node| put(key, node))
}

/// [`build_at`], each node handed over with its position.
fn build_positioned(
    pos: Position,
    entries: &[(Hash32, Hash32)],
    put: &mut impl FnMut(Position, NodeKey, Node),
) -> Hash32 {
    let node = match entries {
        [] => return EMPTY,
        [(key, value)] => Node::Leaf {
            key: *key,
            value: *value,
        },
        _ => {
            let split = entries.partition_point(|(k, _)| !k.bit(pos.depth));
            let left = build_positioned(pos.child(false), &entries[..split], put);
            let right = build_positioned(pos.child(true), &entries[split..], put);
            // With two or more entries, a side that got them all is itself internal, so no
            // collapse is needed here.
            Node::Internal { left, right }
        }
    };
    let hash = node.hash();
    put(pos, NodeKey::new(pos, hash), node);
    hash
}

/// What a subtree below the top levels holds, as the levels above need it: nothing, one entry
/// (its leaf moves up to where the subtree's parent needs it), or two or more (the subtree's
/// own root stays where it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subtree {
    /// No entry.
    Empty,
    /// One entry: its key hash and value hash.
    Lone {
        /// The key hash.
        key: Hash32,
        /// The value hash.
        value: Hash32,
    },
    /// Two or more entries under this root (an internal node).
    Internal(Hash32),
}

impl Subtree {
    /// The subtree of `entries` (sorted, distinct keys, all on `pos`'s path) at `pos`.
    pub fn of(pos: Position, entries: &[(Hash32, Hash32)]) -> Subtree {
        match entries {
            [] => Subtree::Empty,
            [(key, value)] => Subtree::Lone {
                key: *key,
                value: *value,
            },
            _ => Subtree::Internal(build_at(pos, entries, &mut |_, _| {})),
        }
    }

    fn hash(&self) -> Hash32 {
        match self {
            Subtree::Empty => EMPTY,
            Subtree::Lone { key, value } => leaf_hash(key, value),
            Subtree::Internal(hash) => *hash,
        }
    }
}

/// The bucket, in a tree cut at `levels` (≤ [`NODE_KEY_PATH_BITS`]), of whatever lies on
/// `path` (a [`NodeKey`]'s path, or a state key's hash's first four bytes, big-endian): its
/// first `levels` bits.
pub fn bucket_index(levels: usize, path: u32) -> u32 {
    debug_assert!((1..=NODE_KEY_PATH_BITS).contains(&levels));
    path >> (NODE_KEY_PATH_BITS - levels)
}

/// The position of bucket `index` of a tree cut at `levels` (≤ [`NODE_KEY_PATH_BITS`]): the
/// subtree whose path starts with the `levels` bits of `index`.
pub fn bucket_position(levels: usize, index: u32) -> Position {
    debug_assert!((1..=NODE_KEY_PATH_BITS).contains(&levels) && u64::from(index) < 1 << levels);
    Position {
        depth: levels,
        path: index << (NODE_KEY_PATH_BITS - levels),
    }
}

/// The tree's top `levels` levels (1 ≤ `levels` ≤ [`NODE_KEY_PATH_BITS`]) from what each
/// bucket below them holds (`buckets`: bucket index → its [`Subtree`], sorted by index, empty
/// ones left out). Every node the full tree has at a depth below `levels` is handed to `put`,
/// and the root returned is the full tree's: what [`build`] over the buckets' entries gives,
/// without holding them all at once.
pub fn build_top(
    levels: usize,
    buckets: &[(u32, Subtree)],
    put: &mut impl FnMut(NodeKey, Node),
) -> Hash32 {
    debug_assert!((1..=NODE_KEY_PATH_BITS).contains(&levels));
    debug_assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
    match top_at(Position::ROOT, levels, buckets, put) {
        Subtree::Lone { key, value } => {
            let node = Node::Leaf { key, value };
            let hash = node.hash();
            put(NodeKey::new(Position::ROOT, hash), node);
            hash
        }
        other => other.hash(),
    }
}

fn top_at(
    pos: Position,
    levels: usize,
    buckets: &[(u32, Subtree)],
    put: &mut impl FnMut(NodeKey, Node),
) -> Subtree {
    if pos.depth == levels {
        return buckets.first().map_or(Subtree::Empty, |(_, s)| *s);
    }
    if buckets.is_empty() {
        return Subtree::Empty;
    }
    let bit = levels - 1 - pos.depth;
    let split = buckets.partition_point(|(index, _)| (index >> bit) & 1 == 0);
    let left = top_at(pos.child(false), levels, &buckets[..split], put);
    let right = top_at(pos.child(true), levels, &buckets[split..], put);
    match (left, right) {
        (Subtree::Empty, lone) | (lone, Subtree::Empty)
            if !matches!(lone, Subtree::Internal(_)) =>
        {
            lone
        }
        (left, right) => {
            // A lone entry beside something else is a leaf right below this node (a bucket's
            // own root when that is at `levels`: not a top node).
            for (side, subtree) in [(false, left), (true, right)] {
                if let Subtree::Lone { key, value } = subtree
                    && pos.depth + 1 < levels
                {
                    let node = Node::Leaf { key, value };
                    put(NodeKey::new(pos.child(side), node.hash()), node);
                }
            }
            let node = Node::Internal {
                left: left.hash(),
                right: right.hash(),
            };
            let hash = node.hash();
            put(NodeKey::new(pos, hash), node);
            Subtree::Internal(hash)
        }
    }
}

/// Every entry under `root` (key hash, value hash), in key order, each node read checked: its
/// encoding hashes to the hash it is stored and referred to under, and a leaf lies on its own
/// key's path. For consistency checks: it reads the whole tree once.
pub fn walk<S: TreeStore>(store: &S, root: &Hash32) -> Result<Vec<(Hash32, Hash32)>, StoreError> {
    let mut entries = Vec::new();
    let mut stack = vec![(Position::ROOT, *root, Vec::<bool>::new())];
    // Right pushed before left: entries come out in key order.
    while let Some((pos, hash, path)) = stack.pop() {
        if hash == EMPTY {
            continue;
        }
        if pos.depth > KEY_BITS {
            return Err(StoreError::Corrupt("tree deeper than 256 levels".into()));
        }
        let node = load(store, &NodeKey::new(pos, hash))?;
        if node.hash() != hash {
            return Err(StoreError::Corrupt(format!(
                "node {hash} at depth {} does not match its hash",
                pos.depth
            )));
        }
        match node {
            Node::Leaf { key, value } => {
                if path.iter().enumerate().any(|(d, bit)| key.bit(d) != *bit) {
                    return Err(StoreError::Corrupt(format!(
                        "leaf of key {key} at depth {} is off its path",
                        pos.depth
                    )));
                }
                entries.push((key, value));
            }
            Node::Internal { left, right } => {
                for (bit, child) in [(true, right), (false, left)] {
                    let mut p = path.clone();
                    p.push(bit);
                    stack.push((pos.child(bit), child, p));
                }
            }
        }
    }
    Ok(entries)
}

struct Updater<'a, S> {
    store: &'a S,
    /// New nodes, with their depth.
    created: DigestMap<NodeKey, (Node, u16)>,
    /// Keys of stored nodes on the changed paths, which the new root may no longer use.
    replaced: Vec<NodeKey>,
    /// The stored leaves whose entry changes or goes: their values are stale. (A leaf whose
    /// entry stays keeps its value, also when it moves.)
    stale_values: Vec<Hash32>,
}

impl<S: TreeStore> Updater<'_, S> {
    fn node(&self, key: &NodeKey) -> Result<Node, StoreError> {
        match self.created.get(key) {
            Some((n, _)) => Ok(*n),
            None => load(self.store, key),
        }
    }

    fn put(&mut self, pos: Position, node: Node) -> Hash32 {
        let h = node.hash();
        self.created
            .insert(NodeKey::new(pos, h), (node, pos.depth as u16));
        h
    }

    /// The subtree at `pos` (whose node is `at`) with `changes` applied. What it returns is
    /// stored, or created, at `pos`.
    fn update(
        &mut self,
        at: Hash32,
        pos: Position,
        changes: &[(Hash32, Option<Hash32>)],
    ) -> Result<Hash32, StoreError> {
        if changes.is_empty() {
            return Ok(at);
        }
        if pos.depth > KEY_BITS {
            return Err(StoreError::Corrupt("tree deeper than 256 levels".into()));
        }
        if at == EMPTY {
            let entries: Vec<(Hash32, Hash32)> = changes
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect();
            return Ok(self.build(pos, &entries));
        }
        // Every stored node on a changed path is rebuilt or dropped; the new root keeps it
        // only if it comes out the same in the same place (checked against what was created).
        let key = NodeKey::new(pos, at);
        self.replaced.push(key);
        match self.node(&key)? {
            Node::Leaf { key, value } => {
                let mut entries: Vec<(Hash32, Hash32)> = changes
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| (*k, v)))
                    .collect();
                match changes.binary_search_by_key(&key, |(k, _)| *k) {
                    Ok(i) if changes[i].1 != Some(value) => self.stale_values.push(at),
                    Ok(_) => {}
                    Err(_) => {
                        let i = entries.partition_point(|(k, _)| *k < key);
                        entries.insert(i, (key, value));
                    }
                }
                Ok(self.build(pos, &entries))
            }
            Node::Internal { left, right } => {
                let split = changes.partition_point(|(k, _)| !k.bit(pos.depth));
                let l = self.update(left, pos.child(false), &changes[..split])?;
                let r = self.update(right, pos.child(true), &changes[split..])?;
                self.join(pos, l, r)
            }
        }
    }

    /// The canonical subtree for `entries` (sorted, distinct keys) rooted at `pos`.
    fn build(&mut self, pos: Position, entries: &[(Hash32, Hash32)]) -> Hash32 {
        build_positioned(pos, entries, &mut |pos, key, node| {
            self.created.insert(key, (node, pos.depth as u16));
        })
    }

    /// Join the two updated subtrees under `pos`, collapsing a lone leaf upward (to `pos`'s
    /// key: a move, if the bit it leaves behind was a 1).
    fn join(&mut self, pos: Position, l: Hash32, r: Hash32) -> Result<Hash32, StoreError> {
        let lone = match (l == EMPTY, r == EMPTY) {
            (true, true) => return Ok(EMPTY),
            (true, false) => Some((r, pos.child(true))),
            (false, true) => Some((l, pos.child(false))),
            (false, false) => None,
        };
        if let Some((child, at)) = lone {
            let from = NodeKey::new(at, child);
            let node = self.node(&from)?;
            if let Node::Leaf { .. } = node {
                let to = NodeKey::new(pos, child);
                // Created below in this update, or stored: then it is stale where it was
                // (unless it is where it goes: a leaf moving up from a left child keeps its path
                // bits, so its key; it is then rewritten, and not stale).
                if self.created.remove(&from).is_none() {
                    self.replaced.push(from);
                }
                // New at its new depth, also when its key stays: an owner that keeps levels
                // apart must see it move.
                self.created.insert(to, (node, pos.depth as u16));
                return Ok(child);
            }
        }
        Ok(self.put(pos, Node::Internal { left: l, right: r }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn key(i: u32) -> Hash32 {
        Domain::StateKey.hash(&i.to_le_bytes())
    }

    fn apply(
        store: &mut MemoryTreeStore,
        root: Hash32,
        changes: &BTreeMap<Hash32, Option<Vec<u8>>>,
    ) -> Hash32 {
        let list: Vec<_> = changes.iter().map(|(k, v)| (*k, v.clone())).collect();
        let (root, batch) = update(&*store, &root, &list).unwrap();
        store.write(batch);
        root
    }

    #[test]
    fn empty_tree_proves_absence() {
        let store = MemoryTreeStore::new();
        let p = prove(&store, &EMPTY, &key(1)).unwrap();
        assert!(p.verify_absence(&EMPTY, &key(1)));
        assert_eq!(get(&store, &EMPTY, &key(1)).unwrap(), None);
    }

    #[test]
    fn single_entry_is_a_leaf_at_the_root_and_delete_empties() {
        let mut store = MemoryTreeStore::new();
        let mut c = BTreeMap::new();
        c.insert(key(1), Some(b"one".to_vec()));
        let root = apply(&mut store, EMPTY, &c);
        assert_eq!(root, leaf_hash(&key(1), &value_hash(b"one")));
        c.insert(key(1), None);
        assert_eq!(apply(&mut store, root, &c), EMPTY);
    }

    #[test]
    fn collapses_when_a_sibling_is_deleted() {
        let mut store = MemoryTreeStore::new();
        let mut c = BTreeMap::new();
        for i in 0..3 {
            c.insert(key(i), Some(vec![i as u8]));
        }
        let r3 = apply(&mut store, EMPTY, &c);
        let mut d = BTreeMap::new();
        d.insert(key(1), None);
        d.insert(key(2), None);
        let r1 = apply(&mut store, r3, &d);
        assert_eq!(r1, leaf_hash(&key(0), &value_hash(&[0])));
    }

    #[test]
    fn walk_reads_every_entry_in_key_order_and_finds_a_tampered_node() {
        let mut store = MemoryTreeStore::new();
        let c: BTreeMap<_, _> = (0..200).map(|i| (key(i), Some(vec![i as u8]))).collect();
        let root = apply(&mut store, EMPTY, &c);
        let expected: Vec<_> = c
            .iter()
            .map(|(k, v)| (*k, value_hash(v.as_ref().unwrap())))
            .collect();
        assert_eq!(walk(&store, &root).unwrap(), expected);
        assert_eq!(walk(&store, &EMPTY).unwrap(), vec![]);
        // A leaf whose stored value hash was changed no longer hashes to its key.
        let (leaf_key, _) = store
            .nodes
            .iter()
            .find(|(_, n)| matches!(n, Node::Leaf { .. }))
            .map(|(k, n)| (*k, *n))
            .unwrap();
        let mut tampered = store.clone();
        tampered.nodes.insert(
            leaf_key,
            Node::Leaf {
                key: key(0),
                value: Hash32([7; 32]),
            },
        );
        assert!(matches!(
            walk(&tampered, &root),
            Err(StoreError::Corrupt(_))
        ));
        // A missing node is named.
        let mut missing = store.clone();
        missing.nodes.remove(&leaf_key);
        assert!(matches!(
            walk(&missing, &root),
            Err(StoreError::Missing { what: "node", .. })
        ));
    }

    /// The sorted changes that `ops` (key index, value byte or delete) make, applied to `model`
    /// too.
    fn changes_of(
        ops: &[(u32, Option<u8>)],
        model: &mut BTreeMap<Hash32, Vec<u8>>,
    ) -> Vec<(Hash32, Option<Vec<u8>>)> {
        let mut changes = BTreeMap::new();
        for (k, v) in ops {
            let v = v.map(|b| vec![b; 3]);
            changes.insert(key(*k), v.clone());
            match v {
                Some(v) => model.insert(key(*k), v),
                None => model.remove(&key(*k)),
            };
        }
        changes.into_iter().collect()
    }

    /// Every version's nodes, and the latest root's entries by key.
    #[derive(Default)]
    struct IndexedStore {
        tree: MemoryTreeStore,
        latest: Hash32,
        index: HashMap<Hash32, Hash32>,
    }

    impl TreeStore for IndexedStore {
        fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
            self.tree.node(key)
        }
        fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
            self.tree.value(leaf)
        }
        fn indexed(
            &self,
            root: &Hash32,
            key: &Hash32,
        ) -> Result<Option<Option<Hash32>>, StoreError> {
            Ok((*root == self.latest).then(|| self.index.get(key).copied()))
        }
    }

    impl IndexedStore {
        fn commit(&mut self, root: Hash32, batch: TreeBatch) {
            for (key, value) in &batch.entries {
                match value {
                    Some(v) => self.index.insert(*key, *v),
                    None => self.index.remove(key),
                };
            }
            self.tree.write(batch);
            self.latest = root;
        }
    }

    /// A store that deletes stale nodes and values `keep` versions after they went stale,
    /// unless written again since: what a pruning node does.
    #[derive(Default)]
    struct PruningStore {
        nodes: HashMap<NodeKey, (Node, u64)>,
        values: HashMap<Hash32, (Vec<u8>, u64)>,
        stale: std::collections::BTreeSet<(u64, NodeKey)>,
        stale_values: std::collections::BTreeSet<(u64, Hash32)>,
    }

    impl TreeStore for PruningStore {
        fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
            Ok(self.nodes.get(key).map(|(n, _)| *n))
        }
        fn value(&self, leaf: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.values.get(leaf).map(|(v, _)| v.clone()))
        }
    }

    /// Delete the entries of `stored` that went stale up to `upto` (by `stale`) and were not
    /// written again since.
    fn prune_stale<K: Ord + Copy + std::hash::Hash, V>(
        stale: &mut std::collections::BTreeSet<(u64, K)>,
        stored: &mut HashMap<K, (V, u64)>,
        upto: u64,
    ) {
        while let Some(&(version, key)) = stale.first() {
            if version > upto {
                break;
            }
            stale.pop_first();
            if stored.get(&key).is_some_and(|(_, born)| *born <= version) {
                stored.remove(&key);
            }
        }
    }

    impl PruningStore {
        fn commit(&mut self, version: u64, batch: TreeBatch) {
            for (k, n) in batch.nodes {
                self.nodes.insert(k, (n, version));
            }
            for (h, v) in batch.values {
                self.values.insert(h, (v, version));
            }
            self.stale
                .extend(batch.stale.into_iter().map(|k| (version, k)));
            self.stale_values
                .extend(batch.stale_values.into_iter().map(|h| (version, h)));
        }

        fn prune(&mut self, upto: u64) {
            prune_stale(&mut self.stale, &mut self.nodes, upto);
            prune_stale(&mut self.stale_values, &mut self.values, upto);
        }

        /// Keys of the nodes reachable from `root`, and the hashes of its leaves.
        fn reachable(&self, root: Hash32, out: &mut Vec<NodeKey>, leaves: &mut Vec<Hash32>) {
            let mut pending = vec![(root, Position::ROOT)];
            while let Some((at, pos)) = pending.pop() {
                if at == EMPTY {
                    continue;
                }
                let key = NodeKey::new(pos, at);
                out.push(key);
                match self.nodes.get(&key).expect("reachable node").0 {
                    Node::Internal { left, right } => {
                        pending.push((left, pos.child(false)));
                        pending.push((right, pos.child(true)));
                    }
                    Node::Leaf { .. } => leaves.push(at),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Deleting the stale nodes of versions older than the last `keep` leaves those versions
        /// whole, and once every stale node is gone, exactly the latest root's nodes and values
        /// remain. Few keys and values, so that entries often return to earlier values.
        #[test]
        fn pruning_stale_nodes_keeps_recent_roots_whole_and_nothing_else(
            ops in prop::collection::vec((0u32..12, prop::option::of(0u8..3)), 1..150),
            chunk in 1usize..8,
            keep in 0u64..4,
        ) {
            let mut store = PruningStore::default();
            let mut roots = vec![EMPTY];
            let mut models = vec![BTreeMap::<Hash32, Vec<u8>>::new()];
            for (i, part) in ops.chunks(chunk).enumerate() {
                let version = i as u64 + 1;
                let mut model = models.last().unwrap().clone();
                let list = changes_of(part, &mut model);
                let (root, batch) = update(&store, roots.last().unwrap(), &list).unwrap();
                // The batch names exactly the old root's nodes (by key) and leaves' values
                // that the new root does not use.
                let (mut old, mut old_leaves) = (Vec::new(), Vec::new());
                store.reachable(*roots.last().unwrap(), &mut old, &mut old_leaves);
                let mut with = store.nodes.clone();
                with.extend(batch.nodes.iter().map(|(k, n)| (*k, (*n, version))));
                let (mut new, mut new_leaves) = (Vec::new(), Vec::new());
                PruningStore { nodes: with, ..Default::default() }
                    .reachable(root, &mut new, &mut new_leaves);
                let mut gone: Vec<NodeKey> =
                    old.iter().filter(|k| !new.contains(k)).copied().collect();
                gone.sort();
                prop_assert_eq!(&batch.stale, &gone);
                let mut gone_values: Vec<Hash32> =
                    old_leaves.iter().filter(|h| !new_leaves.contains(h)).copied().collect();
                gone_values.sort();
                prop_assert_eq!(&batch.stale_values, &gone_values);
                store.commit(version, batch);
                store.prune(version.saturating_sub(keep));
                roots.push(root);
                models.push(model);
                // The last `keep` versions and the newest read in full.
                for back in 0..=(keep as usize).min(roots.len() - 1) {
                    let at = roots.len() - 1 - back;
                    for k in 0..12 {
                        prop_assert_eq!(
                            get(&store, &roots[at], &key(k)).unwrap(),
                            models[at].get(&key(k)).cloned()
                        );
                    }
                }
            }
            store.prune(u64::MAX);
            let (mut live, mut leaves) = (Vec::new(), Vec::new());
            store.reachable(*roots.last().unwrap(), &mut live, &mut leaves);
            live.sort();
            let mut stored: Vec<NodeKey> = store.nodes.keys().copied().collect();
            stored.sort();
            prop_assert_eq!(stored, live, "stored nodes are exactly the latest root's");
            leaves.sort();
            let mut values: Vec<Hash32> = store.values.keys().copied().collect();
            values.sort();
            prop_assert_eq!(values, leaves, "one value per leaf of the latest root");
            prop_assert_eq!(store.values.len(), models.last().unwrap().len());
        }

        /// A tree built from its entries alone is the tree that a history of updates (inserts,
        /// changes, deletes, entries set back to earlier values) left: the same root and
        /// exactly the same nodes under the same keys, as pruning every stale node leaves them.
        #[test]
        fn a_tree_built_from_its_entries_is_the_one_updates_left(
            ops in prop::collection::vec((0u32..40, prop::option::of(0u8..3)), 1..200),
            chunk in 1usize..16,
        ) {
            let mut store = PruningStore::default();
            let mut root = EMPTY;
            let mut model = BTreeMap::new();
            for (i, part) in ops.chunks(chunk).enumerate() {
                let list = changes_of(part, &mut model);
                let (next, batch) = update(&store, &root, &list).unwrap();
                store.commit(i as u64 + 1, batch);
                root = next;
            }
            store.prune(u64::MAX);
            let entries: Vec<(Hash32, Hash32)> =
                model.iter().map(|(k, v)| (*k, value_hash(v))).collect();
            let (mut built, mut twice) = (HashMap::new(), 0);
            let built_root = build(&entries, &mut |key, node| {
                twice += usize::from(built.insert(key, node).is_some());
            });
            prop_assert_eq!(built_root, root);
            prop_assert_eq!(twice, 0, "each node is built once");
            let updated: HashMap<NodeKey, Node> =
                store.nodes.iter().map(|(k, (n, _))| (*k, *n)).collect();
            prop_assert_eq!(built, updated);
        }

        /// The top `levels` levels built from what each bucket below them holds are exactly
        /// the full tree's nodes above that depth, under the same root; and every node an
        /// update creates comes with the depth it has in the tree.
        #[test]
        fn the_top_built_from_buckets_is_the_full_trees_and_batches_know_depths(
            ops in prop::collection::vec((0u32..300, prop::option::of(0u8..3)), 1..300),
            chunk in 1usize..64,
            levels in 1usize..12,
        ) {
            let mut store = MemoryTreeStore::new();
            let mut root = EMPTY;
            let mut model = BTreeMap::new();
            let mut created = Vec::new();
            for part in ops.chunks(chunk) {
                let list = changes_of(part, &mut model);
                let (next, batch) = update(&store, &root, &list).unwrap();
                prop_assert_eq!(batch.depths.len(), batch.nodes.len());
                created = batch.nodes.iter().map(|(k, _)| *k).zip(batch.depths.iter().copied()).collect();
                store.write(batch);
                root = next;
            }
            let entries: Vec<(Hash32, Hash32)> =
                model.iter().map(|(k, v)| (*k, value_hash(v))).collect();
            let mut depth_of = HashMap::new();
            let mut top = HashMap::new();
            build_positioned(Position::ROOT, &entries, &mut |pos, key, node| {
                depth_of.insert(key, pos.depth as u16);
                if pos.depth < levels {
                    top.insert(key, node);
                }
            });
            for (key, depth) in created {
                prop_assert_eq!(depth_of.get(&key), Some(&depth), "a new node's depth");
            }
            let bucket = |k: &Hash32| u32::from_be_bytes(k.as_bytes()[..4].try_into().unwrap()) >> (32 - levels);
            let mut buckets = Vec::new();
            for group in entries.chunk_by(|a, b| bucket(&a.0) == bucket(&b.0)) {
                let index = bucket(&group[0].0);
                buckets.push((index, Subtree::of(bucket_position(levels, index), group)));
            }
            let (mut built, mut twice) = (HashMap::new(), 0);
            let built_root = build_top(levels, &buckets, &mut |key, node| {
                twice += usize::from(built.insert(key, node).is_some());
            });
            prop_assert_eq!(built_root, root);
            prop_assert_eq!(twice, 0, "each node once");
            prop_assert_eq!(built, top);
        }

        /// A node's key holds the first bits of its path, which every key below it shares, and
        /// zeros past its depth; so a subtree's nodes sort together, each after its root. Leaves
        /// moved up by deletions and down by inserts are found under their new keys.
        #[test]
        fn node_keys_hold_the_paths_that_every_key_below_shares(
            n in 1u32..400,
            deleted in prop::collection::vec(0u32..400, 0..200),
            added in 400u32..600,
        ) {
            let mut store = MemoryTreeStore::new();
            let all: BTreeMap<_, _> = (0..n).map(|i| (key(i), Some(vec![1]))).collect();
            let mut root = apply(&mut store, EMPTY, &all);
            let gone: BTreeMap<_, _> = deleted.iter().map(|i| (key(*i), None)).collect();
            root = apply(&mut store, root, &gone);
            let more: BTreeMap<_, _> = (400..added).map(|i| (key(i), Some(vec![2]))).collect();
            root = apply(&mut store, root, &more);
            let prefix = |k: &Hash32, depth: usize| {
                let bits = depth.min(NODE_KEY_PATH_BITS);
                let first = u32::from_be_bytes(k.as_bytes()[..4].try_into().unwrap());
                if bits == 0 { 0 } else { first & (u32::MAX << (32 - bits)) }
            };
            let mut pending = vec![(root, Position::ROOT)];
            let mut leaves = 0;
            while let Some((at, pos)) = pending.pop() {
                if at == EMPTY {
                    continue;
                }
                match store.node(&NodeKey::new(pos, at)).unwrap().expect("stored at its position") {
                    Node::Leaf { key: k, .. } => {
                        prop_assert_eq!(pos.path, prefix(&k, pos.depth));
                        leaves += 1;
                    }
                    Node::Internal { left, right } => {
                        pending.push((left, pos.child(false)));
                        pending.push((right, pos.child(true)));
                    }
                }
            }
            let expected = (0..n).filter(|i| !deleted.contains(i)).count() + (added - 400) as usize;
            prop_assert_eq!(leaves, expected);
        }

        /// A store that indexes the latest root's entries by key, from each batch's `entries`,
        /// reads every root as the walk does: the latest through the index, older ones by
        /// walking.
        #[test]
        fn an_index_of_the_latest_entries_reads_like_the_walk(
            ops in prop::collection::vec((0u32..20, prop::option::of(0u8..3)), 1..100),
            chunk in 1usize..10,
        ) {
            let mut store = IndexedStore::default();
            let mut roots = vec![EMPTY];
            let mut models = vec![BTreeMap::<Hash32, Vec<u8>>::new()];
            for part in ops.chunks(chunk) {
                let mut model = models.last().unwrap().clone();
                let list = changes_of(part, &mut model);
                let (root, batch) = update(&store, roots.last().unwrap(), &list).unwrap();
                store.commit(root, batch);
                roots.push(root);
                models.push(model);
                for (at, model) in roots.iter().zip(&models) {
                    for k in 0..20 {
                        prop_assert_eq!(get(&store, at, &key(k)).unwrap(), model.get(&key(k)).cloned());
                    }
                }
            }
            prop_assert_eq!(store.index.len(), models.last().unwrap().len());
        }

        /// The root depends only on the final set of entries, not on how it was written.
        #[test]
        fn root_is_history_independent(
            ops in prop::collection::vec((0u32..60, prop::option::of(any::<u8>())), 1..120),
            chunk in 1usize..20,
        ) {
            let mut store = MemoryTreeStore::new();
            let mut root = EMPTY;
            let mut model: BTreeMap<Hash32, Vec<u8>> = BTreeMap::new();
            for part in ops.chunks(chunk) {
                let mut c = BTreeMap::new();
                for (k, v) in part {
                    let v = v.map(|b| vec![b; 3]);
                    c.insert(key(*k), v.clone());
                    match v { Some(v) => { model.insert(key(*k), v); } None => { model.remove(&key(*k)); } }
                }
                root = apply(&mut store, root, &c);
            }
            // Write the final set in one batch into a fresh tree.
            let mut fresh = MemoryTreeStore::new();
            let all: BTreeMap<_, _> = model.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
            let direct = apply(&mut fresh, EMPTY, &all);
            prop_assert_eq!(root, direct);
            for i in 0..60 {
                prop_assert_eq!(get(&store, &root, &key(i)).unwrap(), model.get(&key(i)).cloned());
            }
        }

        /// One walk gives what `get` and `prove` give apart, at every root of a history, for
        /// present and absent keys alike.
        #[test]
        fn get_with_proof_is_get_and_prove(
            ops in prop::collection::vec((0u32..30, prop::option::of(0u8..4)), 1..100),
            chunk in 1usize..12,
        ) {
            let mut store = MemoryTreeStore::new();
            let mut roots = vec![EMPTY];
            let mut model = BTreeMap::new();
            for part in ops.chunks(chunk) {
                let list = changes_of(part, &mut model);
                let (root, batch) = update(&store, roots.last().unwrap(), &list).unwrap();
                store.write(batch);
                roots.push(root);
            }
            for root in &roots {
                for k in 0..40 {
                    let (value, proof) = get_with_proof(&store, root, &key(k)).unwrap();
                    prop_assert_eq!(value, get(&store, root, &key(k)).unwrap());
                    prop_assert_eq!(proof, prove(&store, root, &key(k)).unwrap());
                }
            }
        }

        /// Every membership and non-membership proof verifies, and any flipped byte breaks it.
        #[test]
        fn proofs_verify_and_any_flip_fails(
            n in 0u32..80,
            probe in 0u32..120,
            flip in any::<prop::sample::Index>(),
        ) {
            let mut store = MemoryTreeStore::new();
            let c: BTreeMap<_, _> = (0..n).map(|i| (key(i), Some(i.to_le_bytes().to_vec()))).collect();
            let root = apply(&mut store, EMPTY, &c);
            let k = key(probe);
            let proof = prove(&store, &root, &k).unwrap();
            let bytes = crate::codec::encode(&proof);
            let decoded: StateProof = crate::codec::decode(&bytes, 1 << 16).unwrap();
            prop_assert_eq!(&decoded, &proof);
            let present = probe < n;
            if present {
                let vh = value_hash(&probe.to_le_bytes());
                prop_assert!(proof.verify_membership(&root, &k, &vh));
                prop_assert!(!proof.verify_absence(&root, &k));
                prop_assert!(!proof.verify_membership(&root, &k, &value_hash(b"other")));
            } else {
                prop_assert!(proof.verify_absence(&root, &k));
            }
            // Flip one bit anywhere in the encoded proof: it no longer proves the same thing.
            let mut bad = bytes.clone();
            let i = flip.index(bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            if let Ok(p) = crate::codec::decode::<StateProof>(&bad, 1 << 16) {
                prop_assert!(p.resolve(&k) != proof.resolve(&k));
            }
        }
    }
}
