//! Others' proposals: re-assemble a proposer's stream of parts, check its signature, and
//! execute the block against our committed state before saying whether it is valid. A validator
//! never votes for a block it did not execute itself, nor for one stamped too far ahead of its
//! clock; a block that comes with a commit certificate is judged by the rules alone.

use super::{App, Candidate, parts_hash};
use crate::clock::{MAX_DRIFT_MS, now_ms};
use crate::context::{Address, BlockId, BlockValue, CachetContext, Height, ProposalPart};
use crate::signing::verify_parts;
use cachet_chain::block::Block;
use cachet_contracts::{Signatures, execute_block};
use malachite_app::types::core::{Round, Validity};
use malachite_app::types::streaming::StreamMessage;
use malachite_app::types::{PeerId, ProposedValue};
use malachite_engine::util::streaming::StreamContent;
use tracing::{error, warn};

/// How a block reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// Proposed for a round we vote in: its time must not be ahead of our clock.
    Proposed,
    /// Synced with a commit certificate consensus has verified: more than two thirds of the
    /// validators took its time, whatever our clock says.
    Certified,
}

impl App {
    /// A round starts: forget a proposal we were still waiting to make for another round, and
    /// answer with the proposals of this round we hold already (received before we reached the
    /// height, or kept across a restart), executed.
    pub(super) fn started_round(
        &mut self,
        height: u64,
        round: Round,
    ) -> eyre::Result<Vec<ProposedValue<CachetContext>>> {
        if self
            .waiting
            .as_ref()
            .is_some_and(|w| (w.height, w.round) != (height, round))
        {
            self.waiting = None;
        }
        if height != self.height {
            self.start_height(height);
        }
        let mut values = Vec::new();
        // Proposals that arrived before we reached this height.
        if let Some(waiting) = self.future.remove(&height) {
            for (r, p, pol, block) in waiting {
                if let Some(v) = self.consider(r, p, pol, block, Arrival::Proposed)
                    && r == round
                {
                    values.push(v);
                }
            }
        }
        // Our own or received proposals kept across a restart.
        for (r, id, bytes) in self.shared.store.undecided(height)? {
            if r as i64 != round.as_i64() || self.candidates.contains_key(&id) {
                continue;
            }
            if let Ok(block) = Block::decode(&bytes) {
                let Some(proposer) = block.header.proposer else {
                    continue;
                };
                if let Some(v) = self.consider(
                    round,
                    Address(proposer),
                    Round::Nil,
                    block,
                    Arrival::Proposed,
                ) {
                    values.push(v);
                }
            }
        }
        Ok(values)
    }

    /// Take one part; when a stream is complete, check and execute its block.
    pub(super) fn received_part(
        &mut self,
        from: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<CachetContext>> {
        let key = (from, msg.stream_id.clone());
        let stream = self.streams.entry(key.clone()).or_default();
        if stream.parts.len() > 4096 {
            // A stream larger than any valid block: drop it.
            self.streams.remove(&key);
            return None;
        }
        match msg.content {
            StreamContent::Data(part) => {
                stream.parts.insert(msg.sequence, part);
            }
            StreamContent::Fin => stream.fin_sequence = Some(msg.sequence),
        }
        let fin = stream.fin_sequence?;
        if stream.parts.len() as u64 != fin {
            return None;
        }
        let stream = self.streams.remove(&key)?;
        let parts: Vec<ProposalPart> = stream.parts.into_values().collect();
        let (
            Some(ProposalPart::Init {
                height,
                round,
                pol_round,
                proposer,
                block_len,
            }),
            Some(ProposalPart::Fin { signature }),
        ) = (parts.first().cloned(), parts.last().cloned())
        else {
            warn!(%from, "malformed proposal stream");
            return None;
        };
        if !verify_parts(
            &proposer.0,
            &self.shared.chain_id,
            &parts_hash(&parts),
            &signature,
        ) {
            warn!(%from, %proposer, "proposal stream signature does not verify");
            return None;
        }
        let mut bytes = Vec::with_capacity(block_len as usize);
        for p in &parts[1..parts.len() - 1] {
            let ProposalPart::Data(d) = p else {
                return None;
            };
            bytes.extend_from_slice(d);
        }
        let block = Block::decode(&bytes).ok()?;
        if height.0 >= self.height && pol_round == Round::Nil && proposer != self.address {
            // Fresh from its proposer's clock (a re-proposal keeps an older time).
            self.shared.clock_skew.observe(block.header.time.0);
        }
        if height.0 > self.height {
            self.future
                .entry(height.0)
                .or_default()
                .push((round, proposer, pol_round, block));
            return None;
        }
        if height.0 < self.height {
            return None;
        }
        self.consider(round, proposer, pol_round, block, Arrival::Proposed)
    }

    /// Execute a block of the current height and say whether it is valid.
    pub(super) fn consider(
        &mut self,
        round: Round,
        proposer: Address,
        pol_round: Round,
        block: Block,
        arrival: Arrival,
    ) -> Option<ProposedValue<CachetContext>> {
        let id = block.hash();
        let head = self.head();
        let validity = if self.candidates.contains_key(&id) {
            Validity::Valid
        } else if block.header.proposer != Some(proposer.0) {
            warn!(%proposer, "block names another proposer");
            Validity::Invalid
        } else if arrival == Arrival::Proposed && block.header.time.0 > now_ms() + MAX_DRIFT_MS {
            warn!(
                time = block.header.time.0,
                ahead_ms = block.header.time.0 - now_ms(),
                "proposed block time is too far ahead of our clock: not voting for it"
            );
            Validity::Invalid
        } else {
            let started = std::time::Instant::now();
            // Signatures this node already verified at admission are not verified again; the
            // rest are batch-verified here, and a bad one makes the block invalid.
            let (positions, unseen): (Vec<usize>, Vec<_>) = block
                .txs
                .iter()
                .enumerate()
                .filter(|(_, tx)| !self.shared.mempool.contains_verified(tx))
                .map(|(i, tx)| (i, (tx.body.key, tx.signing_message(), tx.signature)))
                .unzip();
            let executed = match cachet_chain::crypto::verify_many(&unseen) {
                Ok(()) => execute_block(
                    &*self.shared.store,
                    &head,
                    &block,
                    Signatures::AlreadyVerified,
                ),
                Err(i) => Err(cachet_contracts::BlockError::Tx {
                    index: positions[i],
                    error: cachet_contracts::TxError::BadSignature,
                }),
            };
            self.shared
                .metrics
                .execute_seconds
                .observe(started.elapsed());
            match executed {
                Ok(executed) => {
                    if let Err(e) = self.shared.store.put_undecided(
                        self.height,
                        round.as_u32().unwrap_or(0),
                        &id,
                        &block.encode(),
                    ) {
                        error!(error = %e, "cannot keep proposal");
                        return None;
                    }
                    self.candidates.insert(id, Candidate { block, executed });
                    Validity::Valid
                }
                Err(e) => {
                    warn!(error = %e, block = %BlockId(id), "invalid proposal");
                    Validity::Invalid
                }
            }
        };
        self.candidate_rounds.push((round, proposer, pol_round, id));
        Some(ProposedValue {
            height: Height(self.height),
            round,
            valid_round: pol_round,
            proposer,
            value: BlockValue(BlockId(id)),
            validity,
        })
    }
}
