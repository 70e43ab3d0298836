//! `cachet-chain`: the pure core of Cachet.
//!
//! What it is: the data model of the notarization chain (ids, keys, documents, transactions,
//! blocks, state records), its one canonical encoding, domain-separated hashing and signing,
//! Merkle batches, and the authenticated state tree with its proofs. A bank can embed it to
//! check a notarization without running a node.
//!
//! What it is not: it has no rules (who may issue what lives in `cachet-contracts`), no I/O
//! beyond reading bytes it is given, no async runtime, no database, no network.
//!
//! Module map:
//! - [`hash`], [`codec`]: digests, domains, the canonical encoding and its limits.
//! - [`ids`], [`crypto`], [`document`]: names, keys and signatures, document commitments.
//! - [`tx`], [`block`], [`state`], [`genesis`]: what goes on chain and what the state holds.
//! - [`merkle`], [`state_tree`]: batch/transaction trees and the sparse Merkle state tree.
//! - [`receipt`], [`trust`], [`checkpoint`], [`verdict`]: what a verifier checks, what it
//!   trusts, and how that trust moves forward.
//! - [`snapshot`]: the state at one height in chunks, each checked alone against its root.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod block;
pub mod checkpoint;
pub mod codec;
pub mod crypto;
pub mod document;
pub mod genesis;
pub mod hash;
pub mod ids;
pub mod merkle;
pub mod policy;
pub mod receipt;
pub mod snapshot;
pub mod state;
pub mod state_tree;
pub mod trust;
pub mod tx;
pub mod verdict;

pub use block::{Block, BlockHeader};
pub use codec::{DecodeError, decode, encode};
pub use crypto::{PublicKey, SecretKey, Signature};
pub use document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
pub use hash::{Domain, Hash32};
pub use ids::{AgencyId, CertKind, ChainId, Height, Timestamp};
pub use tx::{Action, Transaction, TxBody, TxId};
