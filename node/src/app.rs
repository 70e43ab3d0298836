//! The application side of Malachite: answers the engine's messages.
//!
//! - `GetValue` (we propose): reap the mempool, build and execute a block with
//!   `cachet-contracts`, keep it, reply with its hash and stream it as signed parts.
//! - `ReceivedProposalPart`: re-assemble a proposer's stream, check the proposer's signature
//!   on it, re-execute the block against our committed state, and tell consensus whether it is
//!   valid. A validator never votes for a block it did not execute itself.
//! - `Decided`: write the block, its certificate and the state it produces in one atomic batch.
//! - `Finalized`: keep the final certificate and any equivocation evidence, and start the next
//!   height with the validator set the new state names.
//! - `GetDecidedValues` / `ProcessSyncedValue`: serve and accept committed blocks for peers that
//!   are catching up; a synced block is executed like any proposal before it is committed.

use crate::context::{
    Address, BlockId, BlockValue, CachetContext, Height, ProposalPart, ValidatorSet,
};
use crate::node::Shared;
use crate::signing::{sign_parts, verify_parts};
use bytes::Bytes;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::crypto::SecretKey;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Timestamp;
use cachet_chain::state::{StateKey, ValidatorSet as ChainValidatorSet, decode_value};
use cachet_chain::state_tree;
use cachet_contracts::{Executed, Signatures, build_block, execute_block};
use malachite_app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, HeightParams, LinearTimeouts, Round, Validity,
    VoteExtensions,
};
use malachite_app::types::streaming::{StreamId, StreamMessage};
use malachite_app::types::sync::RawDecidedValue;
use malachite_app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachite_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachite_app_channel::{AppMsg, Channels, NetworkMsg};
use malachite_engine::util::streaming::StreamContent;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, error, info, warn};

/// Bytes of block per proposal part.
const PART_BYTES: usize = 256 * 1024;
/// How far a proposed block time may be ahead of our clock.
const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

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
    key: SecretKey,
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

/// Blocks smaller than this do not update the proposer's estimate of the work per transaction
/// after its candidates.
const MIN_TXS_TO_MEASURE: usize = 256;

/// Candidates for a block, handed out while the build is expected to end within its budget.
///
/// A block sized only by a count outgrows the propose timeout as the state and the load grow:
/// executing a transaction costs more on a large state and a busy machine, validators need
/// about as long again, and a round that misses the timeout costs a whole new build. The work
/// after the last candidate (the state root: walks to deep tree nodes, about half of a build on
/// a large state) grows with the candidates taken, so it is counted at `after_per_tx` each, as
/// measured in the previous build. The first candidate is always handed out, so a proposer on a
/// slow machine still makes progress.
struct WithinBudget<I, C> {
    candidates: I,
    elapsed: C,
    budget: Duration,
    after_per_tx: Duration,
    handed_out: u32,
    /// When the last candidate had been taken: the rest of the build starts here.
    done_at: Option<Duration>,
}

impl<I, C: FnMut() -> Duration> WithinBudget<I, C> {
    fn new(candidates: I, elapsed: C, budget: Duration, after_per_tx: Duration) -> Self {
        WithinBudget {
            candidates,
            elapsed,
            budget,
            after_per_tx,
            handed_out: 0,
            done_at: None,
        }
    }

    /// The cost per transaction of the work after the candidates, measured when the build
    /// that took `txs` of them ended at `now`. A small block says nothing about it: its fixed
    /// costs (writing the block, hashing) would count as a high cost per transaction and cut
    /// the next blocks short (a 1-transaction block at idle made the next one 987 of 2,493).
    fn after_per_tx(&self, now: Duration, txs: usize) -> Option<Duration> {
        let done_at = self.done_at?;
        (txs >= MIN_TXS_TO_MEASURE).then(|| now.saturating_sub(done_at) / txs as u32)
    }
}

impl<I: Iterator, C: FnMut() -> Duration> Iterator for WithinBudget<I, C> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let now = (self.elapsed)();
        if self.handed_out > 0 && now + self.after_per_tx * self.handed_out >= self.budget {
            self.done_at = Some(now);
            return None;
        }
        let Some(next) = self.candidates.next() else {
            self.done_at = Some(now);
            return None;
        };
        self.handed_out += 1;
        Some(next)
    }
}

/// A `GetValue` not answered yet.
struct WaitingProposal {
    height: u64,
    round: Round,
    deadline: tokio::time::Instant,
    reply: malachite_app_channel::Reply<LocallyProposedValue<CachetContext>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
        key: SecretKey,
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

    /// Propose for a `GetValue`, unless consensus has moved past its height or round.
    async fn answer(
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

    async fn handle(
        &mut self,
        msg: AppMsg<CachetContext>,
        channels: &mut Channels<CachetContext>,
    ) -> eyre::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = self.head().height.0 + 1;
                self.start_height(start);
                info!(height = start, "consensus ready");
                let _ = reply.send((Height(start), self.params()?));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                // A proposal we were still waiting to make belongs to a round that is over.
                if self
                    .waiting
                    .as_ref()
                    .is_some_and(|w| (w.height, w.round) != (height.0, round))
                {
                    self.waiting = None;
                }
                if height.0 != self.height {
                    self.start_height(height.0);
                }
                let mut values = Vec::new();
                // Proposals that arrived before we reached this height.
                if let Some(waiting) = self.future.remove(&height.0) {
                    for (r, p, pol, block) in waiting {
                        if let Some(v) = self.consider(r, p, pol, block)
                            && r == round
                        {
                            values.push(v);
                        }
                    }
                }
                // Our own or received proposals kept across a restart.
                for (r, id, bytes) in self.shared.store.undecided(height.0)? {
                    if r as i64 != round.as_i64() || self.candidates.contains_key(&id) {
                        continue;
                    }
                    if let Ok(block) = Block::decode(&bytes) {
                        let Some(proposer) = block.header.proposer else {
                            continue;
                        };
                        if let Some(v) = self.consider(round, Address(proposer), Round::Nil, block)
                        {
                            values.push(v);
                        }
                    }
                }
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                // With nothing to propose, wait a while for a transaction rather than make an
                // empty block: an idle chain grows slowly, and the first transaction after a
                // lull is proposed at once. Never past half the time consensus allows us.
                let already_proposed = self.own_proposal(round).is_some();
                let wait = self.idle_block.min(timeout / 2);
                let w = WaitingProposal {
                    height: height.0,
                    round,
                    deadline: tokio::time::Instant::now() + wait,
                    reply,
                };
                if wait.is_zero() || already_proposed || !self.shared.mempool.is_empty() {
                    self.answer(w, channels).await?;
                } else {
                    self.waiting = Some(w);
                }
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address: _,
                value_id,
            } => {
                if self.candidates.contains_key(&value_id.0) {
                    self.stream(height.0, round, valid_round, &value_id.0, channels)
                        .await?;
                }
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let value = self.received_part(published_by.unwrap_or(from), part);
                let _ = reply.send(value);
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
                let _ = reply.send(Height(1));
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
                let h = certificate.height.0;
                if self.head().height.0 < h {
                    // Decided did not commit (it cannot be skipped, but be safe): do it now.
                    self.commit(&certificate)?;
                }
                self.shared
                    .store
                    .update_certificate(h, &borsh::to_vec(&certificate)?)?;
                self.shared.forget_receipt_head();
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
                let _ = reply.send(Next::Start(Height(next), self.params()?));
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let mut out = Vec::new();
                let head = self.head().height.0;
                for h in range.start().0..=range.end().0.min(head) {
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
                let _ = reply.send(out);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = match Block::decode(&value_bytes) {
                    Err(_) => SyncedValueOutcome::PeerFault,
                    Ok(block) => {
                        if height.0 != self.height {
                            self.start_height(height.0);
                        }
                        match self.consider(round, proposer, Round::Nil, block) {
                            Some(v) => SyncedValueOutcome::Verdict(v),
                            None => SyncedValueOutcome::PeerFault,
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
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

    /// Build our proposal for (height, round), or return the one we built before.
    /// The block we already proposed in `round` of this height (kept across a restart).
    fn own_proposal(&self, round: Round) -> Option<Hash32> {
        self.candidate_rounds
            .iter()
            .find(|(r, p, _, _)| *r == round && *p == self.address)
            .map(|(_, _, _, id)| *id)
    }

    fn propose(&mut self, height: u64, round: Round) -> eyre::Result<BlockValue> {
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
        let left_for_later = reaped - built.block.txs.len() - built.refused.len();
        for (id, e) in &built.refused {
            debug!(tx = %id, error = %e, "left out of the block");
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

    /// Publish the parts of candidate `id`.
    async fn stream(
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
        let signature = sign_parts(&self.key, &self.shared.chain_id, &parts_hash(&parts));
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

    /// Take one part; when a stream is complete, check and execute its block.
    fn received_part(
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
        self.consider(round, proposer, pol_round, block)
    }

    /// Execute a proposed block of the current height and say whether it is valid.
    fn consider(
        &mut self,
        round: Round,
        proposer: Address,
        pol_round: Round,
        block: Block,
    ) -> Option<ProposedValue<CachetContext>> {
        let id = block.hash();
        let head = self.head();
        let validity = if self.candidates.contains_key(&id) {
            Validity::Valid
        } else if block.header.proposer != Some(proposer.0) {
            warn!(%proposer, "block names another proposer");
            Validity::Invalid
        } else if block.header.time.0 > now_ms() + MAX_CLOCK_DRIFT_MS {
            warn!(
                time = block.header.time.0,
                "block time is too far ahead of our clock"
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

    /// Commit the decided block.
    fn commit(&mut self, certificate: &CommitCertificate<CachetContext>) -> eyre::Result<()> {
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
        self.shared.set_head(candidate.block.header.clone());
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
}

#[cfg(test)]
mod tests {
    use super::WithinBudget;
    use std::cell::Cell;
    use std::time::Duration;

    /// A clock that moves `step` every time it is read.
    fn ticking(step: Duration) -> impl FnMut() -> Duration {
        let now = Cell::new(Duration::ZERO);
        move || {
            now.set(now.get() + step);
            now.get()
        }
    }

    #[test]
    fn candidates_stop_when_the_budget_is_spent() {
        let ms = Duration::from_millis;
        // Read before each candidate: 1 ms, 2 ms, ... at 10 ms the budget is spent.
        let taken: Vec<u32> =
            WithinBudget::new(0..1_000, ticking(ms(1)), ms(10), Duration::ZERO).collect();
        assert_eq!(taken, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn the_work_after_the_candidates_is_counted_and_measured() {
        let ms = Duration::from_millis;
        // Each candidate taken adds 1 ms after the loop: at 5 ms with 4 taken the build would
        // end at 9 ms, so a fifth is taken; at 6 ms it would end at 11 ms, so the loop stops.
        let mut budgeted = WithinBudget::new(0..1_000, ticking(ms(1)), ms(10), ms(1));
        let taken: Vec<u32> = budgeted.by_ref().collect();
        assert_eq!(taken, (0..5).collect::<Vec<_>>());
        // The loop ended at 6 ms. Too few for a measure: a build of 5 that ends at 16 ms would
        // say 2 ms per transaction, mostly the fixed costs of any block.
        assert_eq!(budgeted.after_per_tx(ms(16), 5), None);
        assert_eq!(budgeted.after_per_tx(ms(16), 0), None);
        // An exhausted pool also marks the end of the loop; 512 kept, ending 1,024 µs later:
        // 2 µs each.
        let mut exhausted = WithinBudget::new(0..512, || Duration::ZERO, ms(100), ms(0));
        assert_eq!(exhausted.by_ref().count(), 512);
        let us = Duration::from_micros;
        assert_eq!(exhausted.after_per_tx(us(1_024), 512), Some(us(2)));
    }

    #[test]
    fn a_spent_budget_still_takes_one_candidate_and_a_roomy_one_takes_all() {
        let ms = Duration::from_millis;
        let none_after = Duration::ZERO;
        let one: Vec<u32> = WithinBudget::new(0..100, || ms(5_000), ms(750), none_after).collect();
        assert_eq!(one, vec![0]);
        let all: Vec<u32> = WithinBudget::new(0..100, || ms(1), ms(750), ms(1)).collect();
        assert_eq!(all.len(), 100);
        let none: Vec<u32> = WithinBudget::new(0..0, || ms(5_000), ms(750), none_after).collect();
        assert!(none.is_empty());
    }
}
