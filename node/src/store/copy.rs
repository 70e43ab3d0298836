//! Copies of a live store, and a store opened only to be read (a copy, or a stopped node's):
//! what backups, restores and the consistency check stand on.
//!
//! It is not the check itself ([`crate::fsck`]) nor the backup's manifest
//! ([`crate::backup`]).

use super::Store;
use super::schema::*;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::StoreError;
use rocksdb::{DB, Options};
use std::path::Path;

impl Store {
    /// A consistent copy of the database in `dir` (which must not exist yet), taken while the
    /// node runs: RocksDB's checkpoint, which hard-links the table files when `dir` is on the
    /// same file system (they are never rewritten in place) and copies them otherwise. Every
    /// commit is one atomic batch, so the copy holds whole committed heights only.
    pub fn copy_to(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(backend)
    }

    /// Open the database under `path` without writing to it: no migration, no move of the
    /// tree, no caches. Its tree's nodes are read from the `nodes` family, so a store that
    /// holds its tree in memory ([`Store::tree_in_memory`]) answers state reads from its key
    /// index only. Refused while a node has the database open, and a node cannot open it
    /// until this store is dropped: both take RocksDB's lock.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Backend(format!(
                "no database under {}",
                path.display()
            )));
        }
        let lock = lock_database(path)?;
        let opts = Options::default();
        let db = DB::open_cf_for_read_only(&opts, path, FAMILIES, false).map_err(backend)?;
        let store = Store {
            db,
            options: opts,
            nodes: None,
            resident: None,
            values: None,
            block_cache: rocksdb::Cache::new_lru_cache(8 << 20),
            writing: Default::default(),
            indexed: Default::default(),
            _lock: Some(lock),
            pruned_txs: Default::default(),
        };
        let format = store.get_cf(CF_META, META_FORMAT)?;
        if store.get_cf(CF_META, META_GENESIS)?.is_some() && format.as_deref() != Some(&[FORMAT]) {
            return Err(StoreError::Corrupt(format!(
                "the database under {} is in format {}; this node reads format {FORMAT} (start \
                 the node on it once to convert it)",
                path.display(),
                format.map_or(1, |f| f.first().copied().unwrap_or(0)),
            )));
        }
        Ok(store)
    }

    /// Are the tree's nodes held in memory (not stored)?
    pub fn tree_in_memory(&self) -> Result<bool, StoreError> {
        Ok(self.get_cf(CF_META, META_TREE)?.as_deref() == Some(TREE_IN_MEMORY))
    }

    /// The head's state entries as the key index holds them, `(key hash, value hash)` in key
    /// order.
    pub fn key_index(&self) -> Result<Vec<(Hash32, Hash32)>, StoreError> {
        let mut entries = Vec::new();
        self.each_key(|key, value| {
            entries.push((key, value));
            Ok(())
        })?;
        Ok(entries)
    }

    /// The head's state entries as the key index holds them, `(key hash, value hash)` in key
    /// order, each handed to `each` as it is read.
    pub(super) fn each_key(
        &self,
        mut each: impl FnMut(Hash32, Hash32) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_KEYS), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(backend)?;
            let corrupt = || StoreError::Corrupt(format!("key index entry {}", hex(&key)));
            let key = Hash32(key[..].try_into().map_err(|_| corrupt())?);
            let value = Hash32(value[..].try_into().map_err(|_| corrupt())?);
            each(key, value)?;
        }
        Ok(())
    }
}

/// Take the lock RocksDB takes on a database it opens to write (an `fcntl` write lock on its
/// `LOCK` file, which a read-only open does not take): held, it keeps a node from opening the
/// database; refused, a node has it open.
fn lock_database(path: &Path) -> Result<std::fs::File, StoreError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.join("LOCK"))
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.join("LOCK").display())))?;
    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            StoreError::Backend(format!(
                "the database under {} is in use (a node runs on it): stop the node, or check a \
                 backup of it",
                path.display()
            ))
        },
    )?;
    Ok(file)
}
