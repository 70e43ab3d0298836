//! What a receipt verifier trusts, and how it comes to trust it.
//!
//! A verifier pins a **trust root**: the 32-byte hash of one committed block header — the
//! genesis header, or a later *checkpoint*. A [`TrustAnchor`] is the data that root stands
//! for, which anyone (a node, a web page, a file) may hand over because it is checked against
//! the root: the header itself, the validator set that signs the blocks after it, and every
//! kind's policy in the header's state with its state proof. A checked anchor becomes the
//! [`Trust`] that `receipt::verify` takes. The format is in `docs/spec/receipt.md`
//! ("Trust roots").
//!
//! What it is not: a way to find a root. The root comes from outside the chain (printed on a
//! certificate, compiled into a verify page, a consortium's announcement); nothing a node says
//! can make a verifier trust another one.

use crate::block::BlockHeader;
use crate::codec::{self, DecodeError, bounded_vec, limits};
use crate::genesis::GenesisDoc;
use crate::hash::Hash32;
use crate::ids::{CertKind, ChainId, Height};
use crate::state::{KindPolicy, StateKey, ValidatorSet, decode_value};
use crate::state_tree::{self, StateProof, StoreError, TreeStore, value_hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest encoded anchor accepted.
pub const MAX_ANCHOR_BYTES: usize = 64 * 1024;

/// What a verifier trusts: a chain id, the validator set whose signatures count for the blocks
/// after `height`, and the kind policies (for each kind's maximum receipt age).
#[derive(Clone, Debug)]
pub struct Trust {
    /// The chain.
    pub chain_id: ChainId,
    /// The height of the trusted header (0 for the genesis): receipts must be above it, and
    /// carry only the validator-set changes after it.
    pub height: Height,
    /// The validator set that signs the block after `height`.
    pub validators: ValidatorSet,
    /// Policies (for the maximum receipt age per kind).
    pub policies: BTreeMap<CertKind, KindPolicy>,
}

impl Trust {
    /// Trust a genesis document (a verifier that holds the consortium's genesis file).
    pub fn from_genesis(doc: &GenesisDoc) -> Result<Trust, crate::genesis::GenesisError> {
        Ok(Trust {
            chain_id: doc.chain_id.clone(),
            height: Height(0),
            validators: doc.validator_set()?,
            policies: doc.policies.clone(),
        })
    }

    /// The longest a receipt about `kind` is trusted (for an unknown certificate, the smallest
    /// of all kinds').
    pub fn max_age(&self, kind: Option<CertKind>) -> u64 {
        match kind.and_then(|k| self.policies.get(&k)) {
            Some(p) => p.max_receipt_age_ms,
            None => self
                .policies
                .values()
                .map(|p| p.max_receipt_age_ms)
                .min()
                .unwrap_or(0),
        }
    }
}

/// One kind's policy as the anchor's state holds it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct PolicyProof {
    /// The kind.
    pub kind: CertKind,
    /// Encoded [`KindPolicy`].
    pub policy: Vec<u8>,
    /// Membership proof of `StateKey::Policy(kind)` against the header's state root.
    pub proof: StateProof,
}

bounded_vec!(
    /// The policies of an anchor, by kind.
    PolicyProofs,
    PolicyProof,
    limits::MAX_SET_LEN
);

/// The data a trust root stands for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TrustAnchor {
    /// The trusted header; the root is its hash.
    pub header: BlockHeader,
    /// The set named by its `next_validators_hash`.
    pub validators: ValidatorSet,
    /// Every kind's policy in its state, in increasing kind order.
    pub policies: PolicyProofs,
}

/// Why an anchor is not the one a root stands for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Not an anchor.
    #[error("malformed trust anchor: {0}")]
    Malformed(String),
    /// Its header is not the one the root names.
    #[error("the trust anchor's header hashes to {got}, not to the trusted root {root}")]
    WrongRoot {
        /// Pinned.
        root: Hash32,
        /// The anchor's header hash.
        got: Hash32,
    },
    /// Its validator set is not the one its header names.
    #[error("the trust anchor's validator set is not the one its header names")]
    WrongValidators,
    /// A policy proof does not lead to the header's state root, or kinds repeat.
    #[error("the trust anchor's policy for {0} does not verify")]
    BadPolicy(String),
}

impl TrustAnchor {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode an anchor from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<TrustAnchor, DecodeError> {
        codec::decode(bytes, MAX_ANCHOR_BYTES)
    }

    /// The anchor of a committed `header` whose state `store` holds: the validator set that
    /// state names (the one that signs the next block) and every kind's policy in it, proven.
    pub fn build<S: TreeStore>(store: &S, header: BlockHeader) -> Result<TrustAnchor, StoreError> {
        let root = header.state_root;
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        let validators = state_tree::get(store, &root, &StateKey::Validators.hash())?
            .ok_or_else(|| StoreError::Corrupt("the state names no validator set".into()))?;
        let validators: ValidatorSet = decode_value(&validators).map_err(|e| corrupt(&e))?;
        let mut policies = Vec::new();
        for kind in CertKind::ALL {
            let (policy, proof) =
                state_tree::get_with_proof(store, &root, &StateKey::Policy(kind).hash())?;
            if let Some(policy) = policy {
                policies.push(PolicyProof {
                    kind,
                    policy,
                    proof,
                });
            }
        }
        Ok(TrustAnchor {
            header,
            validators,
            policies: PolicyProofs::new(policies).map_err(|e| corrupt(&e))?,
        })
    }

    /// The trust root this anchor stands for: its header's hash.
    pub fn root(&self) -> Hash32 {
        self.header.hash()
    }

    /// Check the anchor against a pinned `root` and make it a [`Trust`].
    pub fn trust(&self, root: &Hash32) -> Result<Trust, AnchorError> {
        let got = self.root();
        if got != *root {
            return Err(AnchorError::WrongRoot { root: *root, got });
        }
        if self.validators.hash() != self.header.next_validators_hash {
            return Err(AnchorError::WrongValidators);
        }
        let mut policies = BTreeMap::new();
        let mut last: Option<CertKind> = None;
        for p in self.policies.iter() {
            let bad = || AnchorError::BadPolicy(p.kind.to_string());
            if last.is_some_and(|l| p.kind <= l) {
                return Err(bad());
            }
            last = Some(p.kind);
            let key = StateKey::Policy(p.kind).hash();
            if !p
                .proof
                .verify_membership(&self.header.state_root, &key, &value_hash(&p.policy))
            {
                return Err(bad());
            }
            let policy: KindPolicy = decode_value(&p.policy).map_err(|_| bad())?;
            policies.insert(p.kind, policy);
        }
        Ok(Trust {
            chain_id: self.header.chain_id.clone(),
            height: self.header.height,
            validators: self.validators.clone(),
            policies,
        })
    }
}
