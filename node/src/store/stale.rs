//! What pruning has to delete, tracked in memory: the stale tree nodes and values of the heights
//! not pruned yet, and what one pruning step did.
//!
//! It is not pruning itself ([`super::prune`]).

use cachet_chain::hash::{DigestMap, Hash32};
use cachet_chain::state_tree::{NodeKey, TreeBatch};

/// The stale tree nodes and values of heights not pruned yet, tracked from the first pruning
/// step on, so that pruning deletes them without reading them. A node or value can be written
/// again after it went stale (an entry set back to an earlier value), and only its record says
/// so: pruning read one record per stale node to find out, 13% of a validator's CPU under load
/// on a 600k state. Here a commit that writes one drops it from its map instead. 60–90 bytes
/// per stale node awaiting pruning (those of about `state_history_heights` heights: a few hundred
/// thousand under load); an archive, which never prunes, tracks nothing.
#[derive(Debug, Default)]
pub(super) struct StaleNodes {
    /// The first tracked height (`None`: no pruning step yet). Stale nodes of earlier heights
    /// went stale before this process tracked them: pruning reads their records.
    pub(super) tracked_from: Option<u64>,
    /// Each tracked stale node not written again since: the height it went stale at.
    pub(super) at: DigestMap<NodeKey, u64>,
    /// Each tracked stale value not written again since: the height it went stale at.
    pub(super) values: DigestMap<Hash32, u64>,
}

impl StaleNodes {
    /// After `height` is durably written with `tree` (its nodes too, if `nodes_stored`).
    pub(super) fn committed(&mut self, height: u64, tree: &TreeBatch, nodes_stored: bool) {
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
