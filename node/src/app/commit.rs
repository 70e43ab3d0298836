//! Decided and finalized blocks: write the block, its certificate and the state it produces in
//! one atomic batch, move the head, and start the next height.

use super::{App, Candidate};
use crate::context::{BlockId, CachetContext, Height};
use crate::metrics::Source;
use cachet_chain::block::Block;
use cachet_contracts::{Signatures, execute_block};
use malachite_app::types::MisbehaviorEvidence;
use malachite_app::types::core::CommitCertificate;
use malachite_app_channel::app::engine::host::Next;
use tracing::{info, warn};

impl App {
    /// Commit the decided block.
    pub(super) fn commit(
        &mut self,
        certificate: &CommitCertificate<CachetContext>,
    ) -> eyre::Result<()> {
        let h = certificate.height.0;
        let head = self.head();
        if head.height.0 >= h {
            return Ok(());
        }
        let id = certificate.value_id.0;
        let candidate = match self.candidates.remove(&id) {
            Some(c) => c,
            None => {
                // After a restart the proposal may only be on disk.
                let bytes = self
                    .shared
                    .store
                    .undecided(h)?
                    .into_iter()
                    .find(|(_, i, _)| *i == id)
                    .map(|(_, _, b)| b)
                    .ok_or_else(|| {
                        eyre::eyre!(
                            "decided block {} at height {h} is unknown here",
                            BlockId(id)
                        )
                    })?;
                let block = Block::decode(&bytes)?;
                let executed = execute_block(
                    &*self.shared.store,
                    &head,
                    &block,
                    Signatures::AlreadyVerified,
                )?;
                Candidate { block, executed }
            }
        };
        let writing = std::time::Instant::now();
        self.shared.store.commit(
            &candidate.block,
            &borsh::to_vec(certificate)?,
            &candidate.executed,
        )?;
        self.shared.metrics.committed(
            certificate.round.as_u32().unwrap_or(0),
            candidate.block.txs.len(),
            writing.elapsed(),
        );
        let refused = candidate.executed.refused.iter();
        self.shared
            .metrics
            .admission(Source::Block, refused.map(|(_, e)| Some(e.name())));
        self.shared.set_head(candidate.block.header.clone());
        self.shared.keep_checkpoint(&candidate.block.header)?;
        self.shared
            .snapshots
            .after_commit(&self.shared.store, h, || self.shared.disk.free());
        self.shared
            .after_commit(&candidate.block, &candidate.executed);
        if candidate.block.header.next_validators_hash != candidate.block.header.validators_hash {
            let before = self.validators_at(&head)?;
            let after = candidate.executed.next_validators.clone();
            info!(
                height = h,
                validators = after.validators.len(),
                "the validator set changes at the next height"
            );
            let shared = self.shared.clone();
            tokio::spawn(async move { shared.drop_removed_validators(&before, &after).await });
        }
        info!(
            height = h,
            txs = candidate.block.txs.len(),
            block = %BlockId(id),
            signatures = certificate.commit_signatures.len(),
            "committed"
        );
        Ok(())
    }

    /// A height is final: keep its final certificate (it may carry more precommits than the
    /// decided one) and any equivocation evidence, and start the next height with the set the
    /// new state names.
    pub(super) fn finalized(
        &mut self,
        certificate: &CommitCertificate<CachetContext>,
        evidence: &MisbehaviorEvidence<CachetContext>,
    ) -> eyre::Result<Next<CachetContext>> {
        let h = certificate.height.0;
        if self.head().height.0 < h {
            // Decided did not commit (it cannot be skipped, but be safe): do it now.
            self.commit(certificate)?;
        }
        self.shared
            .store
            .update_certificate(h, &borsh::to_vec(certificate)?)?;
        self.shared.certificate_updated();
        if !evidence.is_empty() {
            warn!(height = h, ?evidence, "equivocation evidence");
            for (address, doubles) in evidence.votes.iter() {
                for (a, b) in doubles {
                    let record = borsh::to_vec(&(address, a, b))?;
                    self.shared.store.put_evidence(h, &record)?;
                }
            }
        }
        let next = h + 1;
        self.start_height(next);
        Ok(Next::Start(Height(next), self.params()?))
    }
}
