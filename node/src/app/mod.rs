//! The consensus host: the application side of Malachite. [`App::run`] is a thin match over
//! the engine's messages; each arm hands off to the module that owns that part of a height:
//! [`propose`](self) (our proposals), [`receive`](self) (others' proposals, executed before we
//! vote), [`commit`](self) (decided and finalized blocks) and [`sync`](self) (blocks for and
//! from peers catching up).
//!
//! - `GetValue` (we propose): reap the mempool, build and execute a block with
//!   `cachet-contracts`, keep it, reply with its hash and stream it as signed parts.
//! - `ReceivedProposalPart`: re-assemble a proposer's stream, check the proposer's signature
//!   on it, re-execute the block against our committed state, and tell consensus whether it is
//!   valid. A validator never votes for a block it did not execute itself.
//! - `Decided`: write the block, its certificate and the state it produces in one atomic batch.
//!   (Every message that writes first waits while the disk is below its reserve: [`crate::disk`].)
//! - `Finalized`: keep the final certificate and any equivocation evidence, and start the next
//!   height with the validator set the new state names.
//! - `GetDecidedValues` / `ProcessSyncedValue`: serve and accept committed blocks for peers that
//!   are catching up; a synced block is executed like any proposal before it is committed.
//!
//! It is not the rules (`cachet-contracts` executes every block) nor storage ([`crate::store`]);
//! the committed head it moves lives in [`Shared`], where the RPC-facing API reads it.

use crate::context::{Address, CachetContext, Height, ProposalPart, ValidatorSet};
use crate::shared::Shared;
use crate::signing::SharedValidatorKey;
use bytes::Bytes;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::hash::Hash32;
use cachet_chain::state::{StateKey, ValidatorSet as ChainValidatorSet, decode_value};
use cachet_chain::state_tree;
use cachet_contracts::Executed;
use malachite_app::types::core::{HeightParams, LinearTimeouts, Round};
use malachite_app::types::streaming::StreamId;
use malachite_app::types::{LocallyProposedValue, PeerId};
use malachite_app_channel::{AppMsg, Channels};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, error, info};

mod budget;
mod commit;
mod propose;
mod receive;
mod sync;

/// Bytes of block per proposal part.
const PART_BYTES: usize = 256 * 1024;

/// A proposal we have executed and may commit.
struct Candidate {
    block: Block,
    executed: Executed,
}

/// A stream of parts being re-assembled.
#[derive(Default)]
struct PartStream {
    parts: BTreeMap<u64, ProposalPart>,
    fin_sequence: Option<u64>,
}

/// Consensus-side state of the node.
pub struct App {
    shared: Arc<Shared>,
    key: SharedValidatorKey,
    address: Address,
    timeouts: LinearTimeouts,
    block_time: Duration,
    max_block_txs: usize,
    /// How long our proposer may spend building a block.
    build_budget: Duration,
    /// The build's cost per transaction after the last candidate, measured in our last build.
    build_after_per_tx: Duration,
    /// The height consensus is working on.
    height: u64,
    /// Executed proposals of the current height, by block id.
    candidates: HashMap<Hash32, Candidate>,
    /// Which (round, proposer, pol round) each candidate came in.
    candidate_rounds: Vec<(Round, Address, Round, Hash32)>,
    streams: HashMap<(PeerId, StreamId), PartStream>,
    /// Complete proposals for heights we have not reached yet.
    future: BTreeMap<u64, Vec<(Round, Address, Round, Block)>>,
    /// How long a proposer with an empty mempool waits for a transaction.
    idle_block: Duration,
    /// Our proposal, asked for while the mempool was empty: made when a transaction arrives
    /// or its deadline passes.
    waiting: Option<WaitingProposal>,
}

/// What the application loop woke up for.
enum Wake {
    Message(Option<Box<AppMsg<CachetContext>>>),
    /// A transaction arrived for the proposal we wait to make, or its deadline passed.
    Propose,
}

/// A `GetValue` not answered yet.
struct WaitingProposal {
    height: u64,
    round: Round,
    deadline: tokio::time::Instant,
    reply: malachite_app_channel::Reply<LocallyProposedValue<CachetContext>>,
}

fn stream_id(height: u64, round: Round) -> StreamId {
    let mut b = height.to_be_bytes().to_vec();
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(Bytes::from(b))
}

fn parts_hash(parts: &[ProposalPart]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        if !matches!(p, ProposalPart::Fin { .. }) {
            h.update(&borsh::to_vec(p).expect("in-memory encoding cannot fail"));
        }
    }
    Hash32(*h.finalize().as_bytes())
}

impl App {
    /// Consensus state for a node signing with `key`, a height taking at least `block_time`.
    pub fn new(
        shared: Arc<Shared>,
        key: SharedValidatorKey,
        config: &crate::config::Consensus,
        block_time: Duration,
    ) -> App {
        let ms = Duration::from_millis;
        let timeouts = LinearTimeouts {
            propose: ms(config.timeout_propose_ms),
            propose_delta: ms(config.timeout_delta_ms),
            prevote: ms(config.timeout_prevote_ms),
            prevote_delta: ms(config.timeout_delta_ms),
            precommit: ms(config.timeout_precommit_ms),
            precommit_delta: ms(config.timeout_delta_ms),
            rebroadcast: ms(config.timeout_propose_ms
                + config.timeout_prevote_ms
                + config.timeout_precommit_ms),
            max_timeout: ms(60_000),
        };
        App {
            address: Address(key.public()),
            key,
            shared,
            timeouts,
            block_time,
            max_block_txs: config.max_block_txs,
            build_budget: ms(config.build_budget_ms),
            build_after_per_tx: Duration::ZERO,
            height: 0,
            candidates: HashMap::new(),
            candidate_rounds: Vec::new(),
            streams: HashMap::new(),
            future: BTreeMap::new(),
            idle_block: ms(config.idle_block_ms),
            waiting: None,
        }
    }

    fn head(&self) -> BlockHeader {
        self.shared.head()
    }

    /// The validator set in the state of `header`.
    fn validators_at(&self, header: &BlockHeader) -> eyre::Result<ChainValidatorSet> {
        let bytes = state_tree::get(
            &*self.shared.store,
            &header.state_root,
            &StateKey::Validators.hash(),
        )?
        .ok_or_else(|| eyre::eyre!("state has no validator set"))?;
        Ok(decode_value(&bytes)?)
    }

    /// The validator set that signs height `head + 1`.
    fn next_validators(&self) -> eyre::Result<ValidatorSet> {
        Ok(ValidatorSet::from(&self.validators_at(&self.head())?))
    }

    fn params(&self) -> eyre::Result<HeightParams<CachetContext>> {
        Ok(HeightParams::new(
            self.next_validators()?,
            self.timeouts,
            Some(self.block_time),
        ))
    }

    /// Run until consensus stops.
    pub async fn run(mut self, channels: &mut Channels<CachetContext>) -> eyre::Result<()> {
        loop {
            let wake = match self.waiting.as_ref().map(|w| w.deadline) {
                None => Wake::Message(channels.consensus.recv().await.map(Box::new)),
                Some(deadline) => {
                    let shared = self.shared.clone();
                    tokio::select! {
                        msg = channels.consensus.recv() => Wake::Message(msg.map(Box::new)),
                        () = shared.mempool.wait_for_transactions(deadline) => Wake::Propose,
                    }
                }
            };
            let result = match wake {
                Wake::Message(None) => break,
                Wake::Message(Some(msg)) => self.handle(*msg, channels).await,
                Wake::Propose => match self.waiting.take() {
                    Some(w) => self.answer(w, channels).await,
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                // Storage failures are fatal: a node that may have diverged must stop.
                error!(error = %e, "application failed; stopping");
                return Err(e);
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: AppMsg<CachetContext>,
        channels: &mut Channels<CachetContext>,
    ) -> eyre::Result<()> {
        let writes = matches!(
            msg,
            AppMsg::Decided { .. }
                | AppMsg::Finalized { .. }
                | AppMsg::GetValue { .. }
                | AppMsg::ProcessSyncedValue { .. }
        );
        if writes {
            // Below the disk reserve nothing is written: consensus goes on without this node
            // until space is freed, and catches it up then.
            self.shared.disk.wait_for_room().await;
        }
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let _ = reply.send(self.ready()?);
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                let _ = reply_value.send(self.started_round(height.0, round)?);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                self.get_value(height.0, round, timeout, reply, channels)
                    .await?;
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address: _,
                value_id,
            } => {
                self.stream(height.0, round, valid_round, &value_id.0, channels)
                    .await?;
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let _ = reply.send(self.received_part(published_by.unwrap_or(from), part));
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                // A node that joined by snapshot holds no blocks below it.
                let _ = reply.send(Height(self.shared.store.base()? + 1));
            }
            AppMsg::Decided {
                certificate,
                extensions: _,
                reply,
            } => {
                self.commit(&certificate)?;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                extensions: _,
                evidence,
                reply,
            } => {
                let _ = reply.send(self.finalized(&certificate, &evidence)?);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range.start().0, range.end().0)?);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let _ = reply.send(self.synced_value(height.0, round, proposer, &value_bytes));
            }
        }
        Ok(())
    }

    /// Consensus starts: at the height after our head, with the set that signs it.
    fn ready(&mut self) -> eyre::Result<(Height, HeightParams<CachetContext>)> {
        let start = self.head().height.0 + 1;
        self.start_height(start);
        info!(height = start, "consensus ready");
        Ok((Height(start), self.params()?))
    }

    fn start_height(&mut self, height: u64) {
        if self.height != height {
            self.height = height;
            self.candidates.clear();
            self.candidate_rounds.clear();
            self.streams.retain(|_, s| match s.parts.get(&0) {
                Some(ProposalPart::Init { height: h, .. }) => h.0 >= height,
                _ => true,
            });
            self.future.retain(|h, _| *h >= height);
        }
    }
}
