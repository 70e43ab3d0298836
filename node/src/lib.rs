//! `cachet-node`: one consortium node.
//!
//! What it is: the Malachite (Tendermint) application of Cachet — its consensus types and
//! codecs ([`context`], [`codec`], [`signing`]), the loop that proposes blocks from the
//! mempool, re-executes proposals with `cachet-contracts` before voting, and commits decided
//! blocks ([`app`]); the [`mempool`] and its libp2p transaction [`gossip`]; RocksDB [`store`]
//! of blocks, commit certificates and the state tree; what the host and the RPC share
//! ([`shared`]); its [`clock`] and its [`disk`] reserve; who it keeps in touch with ([`membership`]); the node as the JSON-RPC sees it ([`api`], with [`receipts`]); the operator's
//! [`metrics`]; [`backup`] and [`fsck`], what an operator runs against a store; the
//! snapshots it offers and joining from them ([`statesync`]); and
//! [`start`](start()), which wires them together.
//!
//! Data flows one way: the RPC and the gossip admit transactions into the mempool; the consensus
//! host proposes from it, executes with `cachet-contracts`, commits to the store and moves the
//! head in [`shared`]; the API reads the committed state from there.
//!
//! What it is not: the rules (`cachet-contracts`) or the data model (`cachet-chain`).

pub mod api;
pub mod app;
pub mod backup;
pub mod cache;
pub mod clock;
pub mod codec;
pub mod config;
pub mod context;
pub mod disk;
pub mod fsck;
pub mod gossip;
pub mod health;
pub mod membership;
pub mod mempool;
pub mod metrics;
pub mod receipts;
pub mod shared;
pub mod signing;
pub mod start;
pub mod statesync;
pub mod store;

pub use config::NodeConfig;
pub use shared::Shared;
pub use start::{NodeKeys, RunningNode, start};
