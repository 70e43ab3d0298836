//! The state tree's nodes held in memory: all of the head's ([`TreePlacement::Memory`]) or
//! those of its top levels ([`TreePlacement::Derived`]), and those that went stale at heights
//! not pruned yet, in shards that grow one at a time.
//!
//! It is not the move between disk and memory or the rebuild at open ([`super::placement`]),
//! nor the reading of the levels below the top from the key index ([`super::tree`]).

use cachet_chain::hash::DigestMap;
use cachet_chain::state_tree::{Node, NodeKey, TreeBatch};
use std::collections::VecDeque;

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
    /// The top levels in memory (`[storage] tree_top_levels`), every node below them derived
    /// when read from the key index, which holds the head's entries by key anyway: the
    /// subtree under one position at that depth (a bucket) is rebuilt from its entries, and
    /// kept in the node cache. No tree writes, compaction or pruning reads, and memory bounded
    /// by the levels, not the state (ADR 0016). Older versions are held only for the heights
    /// not pruned yet, and do not outlive the process.
    Derived,
}

impl TreePlacement {
    /// The name configuration files and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            TreePlacement::Disk => "disk",
            TreePlacement::Memory => "memory",
            TreePlacement::Derived => "derived",
        }
    }
}

impl std::str::FromStr for TreePlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disk" => Ok(TreePlacement::Disk),
            "memory" => Ok(TreePlacement::Memory),
            "derived" => Ok(TreePlacement::Derived),
            other => Err(format!(
                "{other:?} is none of \"disk\", \"memory\" and \"derived\""
            )),
        }
    }
}

/// The state tree's nodes held in memory: the head's (all, or those above `levels`), and those
/// that went stale at heights not pruned yet (below `levels` too: kept for a reader of a recent
/// root, which the key index no longer describes). A tree of N entries has about 2.4 N nodes
/// (a leaf each, and an internal node at every prefix two keys share); the map holds 104 bytes
/// a node at a load between 7/16 and 7/8, so 120-240 bytes a node (ADR 0005).
#[derive(Debug, Default)]
pub(super) struct ResidentTree {
    /// Only the head's nodes at depths below this are held ([`TreePlacement::Derived`]);
    /// `None`: all of them.
    pub(super) levels: Option<usize>,
    pub(super) nodes: NodeShards,
    /// The nodes that went stale at each height not pruned yet, oldest first.
    pub(super) stale: VecDeque<(u64, Vec<NodeKey>)>,
    /// Each stale node not written again since: the height it went stale at. A node can come
    /// back (an entry set back to an earlier value); pruning removes only those whose entry
    /// here is the height being pruned.
    pub(super) stale_at: DigestMap<NodeKey, u64>,
}

impl ResidentTree {
    /// Hold `tree`'s new nodes: before its height is written, so that a reader of the new
    /// head finds them (a reader of an older root never looks them up).
    pub(super) fn insert(&mut self, tree: &TreeBatch) {
        debug_assert_eq!(tree.nodes.len(), tree.depths.len(), "a depth for each node");
        for ((key, node), depth) in tree.nodes.iter().zip(&tree.depths) {
            if self
                .levels
                .is_none_or(|levels| usize::from(*depth) < levels)
            {
                self.nodes.insert(*key, *node);
            } else {
                // Below the top now (a leaf that moved down under the same key), derived from
                // the key index from here on.
                self.nodes.remove(key);
            }
            self.stale_at.remove(key);
        }
    }

    /// Hold nodes of the head below the top levels that `tree` makes stale, read before its
    /// height is written: a reader of the old root still finds them once the key index has
    /// moved on. They go with the height's other stale nodes ([`ResidentTree::went_stale`]).
    pub(super) fn keep_stale(&mut self, nodes: Vec<(NodeKey, Node)>) {
        for (key, node) in nodes {
            self.nodes.insert(key, node);
        }
    }

    /// Does the map hold this node?
    pub(super) fn holds(&self, key: &NodeKey) -> bool {
        self.nodes.shard(key).contains_key(key)
    }

    /// After `height` is written: the nodes it made stale wait for pruning.
    pub(super) fn went_stale(&mut self, height: u64, tree: &TreeBatch) {
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
    pub(super) fn prune_oldest(&mut self, upto: u64) -> Option<usize> {
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

/// Shards of tree nodes by key. A hash map doubles its table when full and holds the old one
/// and the new one until it has moved every entry: one map of 11 million nodes (4.5 M
/// entries) went from 2 to over 5 GB at that moment, and the kernel killed a node of four on a
/// 24 GB machine. Shards grow one at a time, each by 1/[`NODE_SHARDS`] of the whole.
#[derive(Debug)]
pub(super) struct NodeShards(Vec<DigestMap<NodeKey, Node>>);

impl NodeShards {
    pub(super) fn shard(&self, key: &NodeKey) -> &DigestMap<NodeKey, Node> {
        &self.0[usize::from(key.hash.as_bytes()[0])]
    }

    pub(super) fn shard_mut(&mut self, key: &NodeKey) -> &mut DigestMap<NodeKey, Node> {
        &mut self.0[usize::from(key.hash.as_bytes()[0])]
    }

    pub(super) fn get(&self, key: &NodeKey) -> Option<Node> {
        self.shard(key).get(key).copied()
    }

    pub(super) fn insert(&mut self, key: NodeKey, node: Node) {
        self.shard_mut(&key).insert(key, node);
    }

    pub(super) fn remove(&mut self, key: &NodeKey) {
        self.shard_mut(key).remove(key);
    }

    pub(super) fn len(&self) -> usize {
        self.0.iter().map(|shard| shard.len()).sum()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&NodeKey, &Node)> {
        self.0.iter().flatten()
    }
}

/// Shards of [`NodeShards`], chosen by a node hash's first byte (uniform: BLAKE3's output).
pub(super) const NODE_SHARDS: usize = 256;

impl Default for NodeShards {
    fn default() -> Self {
        NodeShards((0..NODE_SHARDS).map(|_| DigestMap::default()).collect())
    }
}
