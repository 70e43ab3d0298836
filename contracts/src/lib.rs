//! `cachet-contracts`: the rules of Cachet.
//!
//! What it is: the deterministic state transition `(state, block) -> (state', events)` that
//! every validator runs. It checks each transaction's envelope (chain id, expiry, signer, key,
//! signature, nonce) and then the rules of its action: the shared certificate lifecycle
//! ([`lifecycle`](crate) issue / supersede / revoke / approve / events / batches /
//! accreditation), one module per certificate kind, and governance by two thirds of the
//! validator agencies. A transaction whose envelope fails cannot be in a block; one whose
//! action is refused (or that expired) is refused *in* its block: its nonce is used and nothing
//! else changes.
//!
//! What it is not: storage, networking or consensus. Time comes from the block header, never
//! from a clock; state comes through [`cachet_chain::state_tree::TreeStore`].

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod ctx;
pub mod envelope;
mod error;
mod events;
pub mod example;
mod exec;
mod genesis;
mod governance;
mod kinds;
mod lifecycle;
pub mod local;
mod view;

pub use error::{BlockError, Failure, TxError};
pub use events::Event;
pub use exec::{BuiltBlock, Executed, Executor, Outcome, Signatures, build_block, execute_block};
pub use genesis::{anchor, genesis_state};
pub use local::LocalChain;
