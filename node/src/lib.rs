//! `cachet-node`: one consortium node.
//!
//! What it will be: the Malachite (Tendermint) application, the mempool and transaction gossip
//! over libp2p, RocksDB storage of blocks, commits and the state tree, sync and crash recovery,
//! and metrics. It is filled by the consortium-node issue; until then this crate is empty on
//! purpose and exports nothing.
//!
//! What it is not: the rules (`cachet-contracts`) or the data model (`cachet-chain`).
