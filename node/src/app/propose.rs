//! Our proposals: wait for a transaction or a deadline, build and execute a block from the
//! mempool within the build budget, keep it (it survives a restart), and stream it as signed
//! parts.

use super::budget::WithinBudget;
use super::{App, Candidate, PART_BYTES, WaitingProposal, parts_hash, stream_id};
use crate::clock::now_ms;
use crate::context::{BlockId, BlockValue, CachetContext, Height, ProposalPart};
use crate::signing::sign_parts;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Timestamp;
use cachet_contracts::{Signatures, build_block};
use malachite_app::types::LocallyProposedValue;
use malachite_app::types::core::Round;
use malachite_app::types::streaming::StreamMessage;
use malachite_app_channel::{Channels, NetworkMsg};
use malachite_engine::util::streaming::StreamContent;
use std::time::Duration;
use tracing::{debug, info};

impl App {
    /// A `GetValue`: with nothing to propose, wait a while for a transaction rather than make
    /// an empty block (an idle chain grows slowly, and the first transaction after a lull is
    /// proposed at once), never past half the time consensus allows us.
    pub(super) async fn get_value(
        &mut self,
        height: u64,
        round: Round,
        timeout: Duration,
        reply: malachite_app_channel::Reply<LocallyProposedValue<CachetContext>>,
        channels: &mut Channels<CachetContext>,
    ) -> eyre::Result<()> {
        let already_proposed = self.own_proposal(round).is_some();
        let wait = self.idle_block.min(timeout / 2);
        let w = WaitingProposal {
            height,
            round,
            deadline: tokio::time::Instant::now() + wait,
            reply,
        };
        if wait.is_zero() || already_proposed || !self.shared.mempool.is_empty() {
            self.answer(w, channels).await?;
        } else {
            self.waiting = Some(w);
        }
        Ok(())
    }

    /// Propose for a `GetValue`, unless consensus has moved past its height or round.
    pub(super) async fn answer(
        &mut self,
        w: WaitingProposal,
        channels: &mut Channels<CachetContext>,
    ) -> eyre::Result<()> {
        if w.height != self.head().height.0 + 1 || w.reply.is_closed() {
            return Ok(());
        }
        let value = self.propose(w.height, w.round)?;
        let _ = w
            .reply
            .send(LocallyProposedValue::new(Height(w.height), w.round, value));
        self.stream(w.height, w.round, Round::Nil, &value.0.0, channels)
            .await
    }

    /// The block we already proposed in `round` of this height (kept across a restart).
    pub(super) fn own_proposal(&self, round: Round) -> Option<Hash32> {
        self.candidate_rounds
            .iter()
            .find(|(r, p, _, _)| *r == round && *p == self.address)
            .map(|(_, _, _, id)| *id)
    }

    /// Build our proposal for (height, round), or return the one we built before.
    pub(super) fn propose(&mut self, height: u64, round: Round) -> eyre::Result<BlockValue> {
        if let Some(id) = self.own_proposal(round) {
            return Ok(BlockValue(BlockId(id)));
        }
        let head = self.head();
        if head.height.0 + 1 != height {
            eyre::bail!("asked to propose height {height} with head {}", head.height);
        }
        let started = std::time::Instant::now();
        let time = Timestamp(now_ms().max(head.time.0 + 1));
        let store = &*self.shared.store;
        let state_head = crate::mempool::Head {
            store,
            state_root: head.state_root,
            height: head.height,
            time: head.time,
            chain_id: &head.chain_id,
        };
        let candidates = self.shared.mempool.reap(self.max_block_txs, |a| {
            state_head.next_nonce(a).unwrap_or(u64::MAX)
        });
        let reaped = candidates.len();
        let mut candidates = WithinBudget::new(
            candidates.into_iter(),
            || started.elapsed(),
            self.build_budget,
            self.build_after_per_tx,
        );
        // Admission verified every signature in the pool.
        let built = build_block(
            store,
            &head,
            time,
            self.key.public(),
            candidates.by_ref(),
            Signatures::AlreadyVerified,
        )?;
        let left_for_later = reaped - built.block.txs.len() - built.left_out.len();
        for (id, e) in &built.left_out {
            debug!(tx = %id, error = %e, "left out of the block");
        }
        for (index, e) in &built.executed.refused {
            debug!(index, error = %e, "refused in the block");
        }
        let id = built.block.hash();
        store.put_undecided(
            height,
            round.as_u32().unwrap_or(0),
            &id,
            &built.block.encode(),
        )?;
        let build_time = started.elapsed();
        self.shared.metrics.build_seconds.observe(build_time);
        if let Some(sample) = candidates.after_per_tx(build_time, built.block.txs.len()) {
            // Smoothed, so that one build on a briefly idle or busy machine does not decide.
            self.build_after_per_tx = if self.build_after_per_tx.is_zero() {
                sample
            } else {
                (self.build_after_per_tx + sample) / 2
            };
        }
        info!(
            height,
            %round,
            txs = built.block.txs.len(),
            left_for_later,
            build_ms = build_time.as_millis() as u64,
            block = %BlockId(id),
            "proposing"
        );
        self.candidate_rounds
            .push((round, self.address, Round::Nil, id));
        self.candidates.insert(
            id,
            Candidate {
                block: built.block,
                executed: built.executed,
            },
        );
        Ok(BlockValue(BlockId(id)))
    }

    /// Publish the parts of candidate `id` (ours, or one we re-stream for a later round; one we
    /// do not hold is not streamed).
    pub(super) async fn stream(
        &self,
        height: u64,
        round: Round,
        pol_round: Round,
        id: &Hash32,
        channels: &mut Channels<CachetContext>,
    ) -> eyre::Result<()> {
        let Some(c) = self.candidates.get(id) else {
            return Ok(());
        };
        let bytes = c.block.encode();
        let mut parts = vec![ProposalPart::Init {
            height: Height(height),
            round,
            pol_round,
            proposer: self.address,
            block_len: bytes.len() as u32,
        }];
        parts.extend(
            bytes
                .chunks(PART_BYTES)
                .map(|c| ProposalPart::Data(c.to_vec())),
        );
        let signature = sign_parts(&*self.key, &self.shared.chain_id, &parts_hash(&parts))
            .map_err(|e| eyre::eyre!("the validator key cannot sign our proposal: {e}"))?;
        parts.push(ProposalPart::Fin { signature });
        let sid = stream_id(height, round);
        let n = parts.len() as u64;
        for (seq, part) in parts.into_iter().enumerate() {
            let msg = StreamMessage::new(sid.clone(), seq as u64, StreamContent::Data(part));
            channels
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await?;
        }
        channels
            .network
            .send(NetworkMsg::PublishProposalPart(StreamMessage::new(
                sid,
                n,
                StreamContent::Fin,
            )))
            .await?;
        Ok(())
    }
}
