//! Reading and writing state during execution: a block-level write set over the tree at the
//! parent root, and a transaction-level write set over that, so a refused transaction leaves
//! no trace.

use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::codec;
use cachet_chain::hash::Hash32;
use cachet_chain::state::{StateKey, decode_value};
use cachet_chain::state_tree::{self, StoreError, TreeStore};
use std::collections::BTreeMap;

/// Pending writes by key hash; `None` deletes. Sorted, as the tree update needs.
pub(crate) type WriteSet = BTreeMap<Hash32, Option<Vec<u8>>>;

/// The block's view: the tree at the parent root plus the writes of the transactions so far.
pub(crate) struct BlockView<'a, S> {
    pub(crate) store: &'a S,
    pub(crate) root: Hash32,
    pub(crate) writes: WriteSet,
}

impl<S: TreeStore> BlockView<'_, S> {
    fn read(&self, key: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => state_tree::get(self.store, &self.root, key),
        }
    }
}

/// One transaction's view: its own writes over the block's.
pub(crate) struct TxView<'v, 'a, S> {
    block: &'v BlockView<'a, S>,
    writes: WriteSet,
}

impl<'v, 'a, S: TreeStore> TxView<'v, 'a, S> {
    pub(crate) fn new(block: &'v BlockView<'a, S>) -> Self {
        TxView {
            block,
            writes: WriteSet::new(),
        }
    }

    /// The typed record under `key`.
    pub(crate) fn get<T: BorshDeserialize>(&self, key: &StateKey) -> Result<Option<T>, StoreError> {
        let h = key.hash();
        let bytes = match self.writes.get(&h) {
            Some(v) => v.clone(),
            None => self.block.read(&h)?,
        };
        bytes
            .map(|b| {
                decode_value(&b).map_err(|e| {
                    StoreError::Corrupt(format!("value of {key:?} does not decode: {e}"))
                })
            })
            .transpose()
    }

    /// Is anything stored under `key`?
    pub(crate) fn exists(&self, key: &StateKey) -> Result<bool, StoreError> {
        let h = key.hash();
        match self.writes.get(&h) {
            Some(v) => Ok(v.is_some()),
            None => Ok(self.block.read(&h)?.is_some()),
        }
    }

    /// Store `value` under `key`.
    pub(crate) fn put<T: BorshSerialize>(&mut self, key: &StateKey, value: &T) {
        self.writes.insert(key.hash(), Some(codec::encode(value)));
    }

    /// Remove whatever is under `key`.
    pub(crate) fn delete(&mut self, key: &StateKey) {
        self.writes.insert(key.hash(), None);
    }

    /// The writes, to merge into the block on success.
    pub(crate) fn into_writes(self) -> WriteSet {
        self.writes
    }
}
