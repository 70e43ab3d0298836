//! A chain in one process, in memory: genesis, then blocks built or checked with the same
//! functions the node uses, without consensus or storage. For tests, benchmarks and tools; the
//! node drives [`crate::build_block`] and [`crate::execute_block`] with RocksDB and consensus.

use crate::error::BlockError;
use crate::exec::{BuiltBlock, Signatures, build_block, execute_block};
use borsh::BorshDeserialize;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::crypto::PublicKey;
use cachet_chain::genesis::{GenesisDoc, GenesisError};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Timestamp;
use cachet_chain::state::{StateKey, decode_value};
use cachet_chain::state_tree::{self, MemoryTreeStore, StateProof, StoreError};
use cachet_chain::tx::Transaction;

/// An in-memory chain.
#[derive(Debug, Clone)]
pub struct LocalChain {
    store: MemoryTreeStore,
    headers: Vec<BlockHeader>,
}

impl LocalChain {
    /// Start from a genesis document.
    pub fn new(doc: &GenesisDoc) -> Result<LocalChain, GenesisError> {
        let (header, batch) = crate::genesis::genesis_state(doc)?;
        let mut store = MemoryTreeStore::new();
        store.write(batch);
        Ok(LocalChain {
            store,
            headers: vec![header],
        })
    }

    /// The latest header.
    pub fn head(&self) -> &BlockHeader {
        self.headers.last().expect("a chain has its genesis header")
    }

    /// Every header, from genesis.
    pub fn headers(&self) -> &[BlockHeader] {
        &self.headers
    }

    /// The tree store (every state ever committed).
    pub fn store(&self) -> &MemoryTreeStore {
        &self.store
    }

    /// Build the next block from `candidates` at `time`, commit it, and return it with the
    /// candidates it refused.
    pub fn propose(
        &mut self,
        time: Timestamp,
        proposer: PublicKey,
        candidates: Vec<Transaction>,
    ) -> Result<BuiltBlock, StoreError> {
        let built = build_block(
            &self.store,
            self.head(),
            time,
            proposer,
            candidates,
            Signatures::Verify,
        )?;
        self.store.write(built.executed.tree_batch.clone());
        self.headers.push(built.block.header.clone());
        Ok(built)
    }

    /// Check `block` against the head and commit it.
    pub fn apply(&mut self, block: &Block) -> Result<(), BlockError> {
        let executed = execute_block(&self.store, self.head(), block, Signatures::Verify)?;
        self.store.write(executed.tree_batch);
        self.headers.push(block.header.clone());
        Ok(())
    }

    /// The record under `key` in the latest state.
    pub fn get<T: BorshDeserialize>(&self, key: &StateKey) -> Result<Option<T>, StoreError> {
        self.get_at(&self.head().state_root, key)
    }

    /// The record under `key` in the state with `root`.
    pub fn get_at<T: BorshDeserialize>(
        &self,
        root: &Hash32,
        key: &StateKey,
    ) -> Result<Option<T>, StoreError> {
        state_tree::get(&self.store, root, &key.hash())?
            .map(|b| decode_value(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// The trust anchor of the head, as a node keeps it for a checkpoint.
    pub fn anchor(&self) -> Result<cachet_chain::trust::TrustAnchor, StoreError> {
        cachet_chain::trust::TrustAnchor::build(&self.store, self.head().clone())
    }

    /// The raw value and a proof for `key` in the latest state.
    pub fn prove(&self, key: &StateKey) -> Result<(Option<Vec<u8>>, StateProof), StoreError> {
        let root = self.head().state_root;
        let value = state_tree::get(&self.store, &root, &key.hash())?;
        let proof = state_tree::prove(&self.store, &root, &key.hash())?;
        Ok((value, proof))
    }
}
