//! Blocks and their headers.
//!
//! A header commits to everything a verifier needs: the chain, the height and time, the
//! parent, the transactions (`tx_root`), the state *after* this block's transactions
//! (`state_root`), the validator set that signs this block (`validators_hash`) and the one that
//! signs the next (`next_validators_hash`). Height 0 is the genesis header: it is not signed,
//! it is trusted through the genesis file.

use crate::codec::{self, DecodeError, limits};
use crate::crypto::PublicKey;
use crate::hash::{Domain, Hash32};
use crate::ids::{ChainId, Height, Timestamp};
use crate::merkle;
use crate::tx::Transaction;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: ChainId,
    /// Height; the genesis header is 0.
    pub height: Height,
    /// Block time, from the proposer, strictly after the parent's.
    pub time: Timestamp,
    /// Hash of the parent header; [`Hash32::ZERO`] at genesis.
    pub parent: Hash32,
    /// The proposing validator; `None` at genesis.
    pub proposer: Option<PublicKey>,
    /// Merkle root over `leaf_hash(encode(tx))` of the transactions, in order.
    pub tx_root: Hash32,
    /// Number of transactions.
    pub tx_count: u32,
    /// State root after applying this block.
    pub state_root: Hash32,
    /// Hash of the validator set that signs this block.
    pub validators_hash: Hash32,
    /// Hash of the validator set that signs the next block.
    pub next_validators_hash: Hash32,
}

impl BlockHeader {
    /// `H_block_header(encode(header))`: the block's identity.
    pub fn hash(&self) -> Hash32 {
        Domain::BlockHeader.hash(&codec::encode(self))
    }
}

/// A block: a header and its transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution order.
    pub txs: Vec<Transaction>,
}

impl BorshDeserialize for Block {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        Ok(Block {
            header: BlockHeader::deserialize_reader(reader)?,
            txs: codec::read_bounded_vec(reader, limits::MAX_BLOCK_TXS, "block transactions")?,
        })
    }
}

impl Block {
    /// Decode a block from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        let block: Block = codec::decode(bytes, limits::MAX_BLOCK_BYTES)?;
        for tx in &block.txs {
            // Counted, not encoded: a proposal of thousands of transactions is decoded by every
            // validator.
            let len =
                borsh::object_length(tx).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            if len > limits::MAX_TX_BYTES {
                return Err(DecodeError::TooLarge {
                    len,
                    max: limits::MAX_TX_BYTES,
                });
            }
        }
        Ok(block)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The block's identity (its header hash).
    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }
}

/// The transaction root of `txs`.
pub fn tx_root(txs: &[Transaction]) -> Hash32 {
    let leaves: Vec<Hash32> = txs
        .iter()
        .map(|tx| merkle::leaf_hash(&codec::encode(tx)))
        .collect();
    merkle::root_of(&leaves)
}
