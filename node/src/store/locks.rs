//! The store's locks: the sequence lock that says which root the key index holds, and lock
//! access that survives a panic elsewhere.

use cachet_chain::hash::Hash32;
use std::sync::RwLock;

/// The root whose entries `CF_KEYS` holds, as a sequence lock: a commit clears `root` and bumps
/// `epoch` before it writes the new head, and sets both after. A lookup that saw the same
/// epoch and its own root on both sides read the index of that root, not a newer one; any
/// other lookup walks the tree instead (a reader of an older root, or one overlapping a
/// commit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct IndexedRoot {
    pub(super) root: Option<Hash32>,
    pub(super) epoch: u64,
}

/// Read access to a lock's data; a panic elsewhere while holding it leaves the data as
/// consistent as the panicking code left it, and every writer here completes its changes.
pub(super) fn shared<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// Write access to a lock's data (see [`shared`]).
pub(super) fn exclusive<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
