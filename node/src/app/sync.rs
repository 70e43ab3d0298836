//! Value sync: committed blocks served to peers that are catching up, and blocks from peers
//! accepted only once executed like any proposal.

use super::App;
use super::receive::Arrival;
use crate::context::CachetContext;
use bytes::Bytes;
use cachet_chain::block::Block;
use malachite_app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, Round, VoteExtensions,
};
use malachite_app::types::sync::RawDecidedValue;
use malachite_app_channel::app::engine::host::SyncedValueOutcome;

impl App {
    /// Committed blocks `from ..= to` (up to our head) with their certificates, for a peer.
    pub(super) fn decided_values(
        &self,
        from: u64,
        to: u64,
    ) -> eyre::Result<Vec<RawDecidedValue<CachetContext>>> {
        let mut out = Vec::new();
        let head = self.head().height.0;
        for h in from..=to.min(head) {
            let (Some(block), Some(cert)) = (
                self.shared.store.block_bytes(h)?,
                self.shared.store.certificate(h)?,
            ) else {
                break;
            };
            let cert: CommitCertificate<CachetContext> = borsh::from_slice(&cert)?;
            out.push(RawDecidedValue::new(
                Bytes::from(block),
                ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                    cert,
                    VoteExtensions::new(vec![]),
                ),
            ));
        }
        Ok(out)
    }

    /// A block a peer synced to us, its commit certificate verified: executed like any
    /// proposal, but taken whatever our clock says of its time; one that does not decode or
    /// does not execute is the peer's fault.
    pub(super) fn synced_value(
        &mut self,
        height: u64,
        round: Round,
        proposer: crate::context::Address,
        value_bytes: &[u8],
    ) -> SyncedValueOutcome<CachetContext> {
        match Block::decode(value_bytes) {
            Err(_) => SyncedValueOutcome::PeerFault,
            Ok(block) => {
                if height != self.height {
                    self.start_height(height);
                }
                match self.consider(round, proposer, Round::Nil, block, Arrival::Certified) {
                    Some(v) => SyncedValueOutcome::Verdict(v),
                    None => SyncedValueOutcome::PeerFault,
                }
            }
        }
    }
}
