//! `cachet-node`: one consortium node.
//!
//! What it is: the Malachite (Tendermint) application of Cachet — its consensus types and
//! codecs ([`context`], [`codec`], [`signing`]), the loop that proposes blocks from the
//! mempool, re-executes proposals with `cachet-contracts` before voting, and commits decided
//! blocks ([`app`]); the [`mempool`] and its libp2p transaction [`gossip`]; RocksDB [`store`]
//! of blocks, commit certificates and the state tree; the operator's [`metrics`]; and
//! [`node::start`], which wires them with the JSON-RPC.
//!
//! What it is not: the rules (`cachet-contracts`) or the data model (`cachet-chain`).

pub mod app;
pub mod cache;
pub mod codec;
pub mod config;
pub mod context;
pub mod gossip;
pub mod mempool;
pub mod metrics;
pub mod node;
pub mod receipts;
pub mod signing;
pub mod store;

pub use config::NodeConfig;
pub use node::{RunningNode, Shared, start};
