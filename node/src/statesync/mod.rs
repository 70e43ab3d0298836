//! State sync: the snapshots a node takes and offers its peers, and a new node joining from
//! them instead of replaying every block since genesis (CometBFT's state sync is the model).
//!
//! A snapshot is the state at a committed height in chunks ([`cachet_chain::snapshot`]), with
//! the few blocks a node keeps below it ([`history`]). A joining node trusts no peer: the
//! history is checked against the genesis trust as a receipt would be, the manifest against
//! the state root of the header it ends with, each chunk against its manifest line.
//!
//! Modules: [`protocol`] (the messages on the wire), [`snapshots`] (taking, keeping and serving
//! them), [`history`] (the kept blocks and their check), [`join`] (the joining node).
//!
//! It is not value sync (Malachite's, in [`crate::app`]), which takes over from the snapshot's
//! height.

pub mod history;
pub mod join;
pub mod protocol;
pub mod snapshots;
