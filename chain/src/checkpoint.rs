//! Moving a verifier's trust forward, from the root it pinned to a later checkpoint.
//!
//! A *checkpoint* is a committed header at a height the chain's parameters name
//! (`ChainParams::checkpoint_interval`); every node keeps its [`TrustAnchor`]. An [`Advance`]
//! carries a verifier from its [`Trust`] to such an anchor the way a receipt carries it to a
//! block: each validator-set change after the trusted height, signed by the set before it, then
//! the checkpoint's own commit by the set it reaches. A verifier that advanced takes receipts
//! that carry only the changes after the checkpoint, so a receipt's size does not grow with the
//! consortium's history. The format is in `docs/spec/receipt.md` ("Checkpoints").
//!
//! What it is not: a way to trust a root nobody can reach. An advance is checked against the
//! trust the verifier already holds; a node cannot make it trust another chain or another set.

use crate::codec::{self, DecodeError};
use crate::hash::Hash32;
use crate::receipt::{CommitProof, ReceiptError, Transitions, check_head};
use crate::trust::{AnchorError, Trust, TrustAnchor};
use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded advance accepted: its transitions are bounded like a receipt's.
pub const MAX_ADVANCE_BYTES: usize = 256 * 1024;

/// From a trusted height to a later checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Advance {
    /// Every validator-set change after the trusted height and below the checkpoint, in
    /// height order.
    pub transitions: Transitions,
    /// The checkpoint header's precommits, by the set the transitions lead to.
    pub commit: CommitProof,
    /// The checkpoint: its header, the set after it and every kind's policy.
    pub anchor: TrustAnchor,
}

/// Why an advance does not reach its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    /// Not an advance.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The checkpoint is not committed by the set the verifier's trust leads to.
    #[error("the checkpoint is not committed: {0}")]
    NotCommitted(ReceiptError),
    /// Its anchor is not what its header says.
    #[error(transparent)]
    Anchor(AnchorError),
}

impl Advance {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode an advance from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Advance, DecodeError> {
        codec::decode(bytes, MAX_ADVANCE_BYTES)
    }

    /// The root of the checkpoint it leads to.
    pub fn root(&self) -> Hash32 {
        self.anchor.root()
    }

    /// Check the advance from `trust`, and return the trust of the checkpoint with its root.
    /// The checkpoint must be above the trusted height.
    pub fn verify(&self, trust: &Trust) -> Result<(Trust, Hash32), AdvanceError> {
        check_head(&self.anchor.header, &self.commit, &self.transitions, trust)
            .map_err(AdvanceError::NotCommitted)?;
        let root = self.anchor.root();
        let advanced = self.anchor.trust(&root).map_err(AdvanceError::Anchor)?;
        Ok((advanced, root))
    }
}
