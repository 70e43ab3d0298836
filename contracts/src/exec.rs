//! Executing transactions and blocks: each transaction's envelope ([`crate::envelope`]) and
//! action, the block header checks, and the state root that results.
//!
//! Everything here is deterministic: time comes from the block header, iteration is over sorted
//! maps, and nothing reads the clock, the network or randomness.

use crate::ctx::Ctx;
use crate::envelope::{self, NonceRule};
use crate::error::{BlockError, Failure, TxError};
use crate::events::Event;
use crate::view::{BlockView, TxView};
use crate::{governance, lifecycle};
use cachet_chain::block::{Block, BlockHeader, tx_root};
use cachet_chain::codec::limits;
use cachet_chain::crypto::{PublicKey, verify_many};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{Height, Timestamp};
use cachet_chain::state::{AgencyRecord, ChainParams, StateKey, ValidatorSet};
use cachet_chain::state_tree::{self, StoreError, TreeBatch, TreeStore};
use cachet_chain::tx::{Action, Transaction, TxId};

/// Whether execution checks transaction signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures {
    /// Verify every signature (strict ed25519; batched for blocks).
    Verify,
    /// The caller has verified them already (admission cache, or a block decided by
    /// consensus that is being replayed). Never for an unchecked proposal.
    AlreadyVerified,
}

/// The result of executing transactions on top of a parent state.
#[derive(Debug, Clone)]
pub struct Executed {
    /// State root after execution.
    pub state_root: Hash32,
    /// New tree nodes and values to store with the block.
    pub tree_batch: TreeBatch,
    /// The validator set in the resulting state (it signs the next block).
    pub next_validators: ValidatorSet,
    /// Events, per transaction, in block order.
    pub events: Vec<Vec<Event>>,
}

/// Executes transactions one by one on top of a parent state.
pub struct Executor<'a, S> {
    view: BlockView<'a, S>,
    params: ChainParams,
    height: Height,
    time: Timestamp,
    events: Vec<Vec<Event>>,
}

impl<'a, S: TreeStore> Executor<'a, S> {
    /// Start a block at `height` and `time` over the state at `parent_root`.
    pub fn new(
        store: &'a S,
        parent_root: Hash32,
        height: Height,
        time: Timestamp,
    ) -> Result<Self, StoreError> {
        let view = BlockView {
            store,
            root: parent_root,
            writes: Default::default(),
        };
        let params: ChainParams = TxView::new(&view)
            .get(&StateKey::Params)?
            .ok_or_else(|| StoreError::Corrupt("state has no chain parameters".into()))?;
        Ok(Executor {
            view,
            params,
            height,
            time,
            events: Vec::new(),
        })
    }

    /// Apply one transaction. On `Err` nothing changed.
    pub fn apply(&mut self, tx: &Transaction, sigs: Signatures) -> Result<&[Event], Failure> {
        let tx_view = TxView::new(&self.view);
        let mut ctx = Ctx {
            view: tx_view,
            height: self.height,
            time: self.time,
            chain_id: self.params.chain_id.clone(),
            proposal_ttl: self.params.proposal_ttl,
            signer: tx.body.signer.clone(),
            tx_id: tx.id(),
            events: Vec::new(),
        };
        let signer: Option<AgencyRecord> =
            ctx.view.get(&StateKey::Agency(tx.body.signer.clone()))?;
        let agency = envelope::check_signer(&tx.body, &ctx.chain_id, ctx.height, signer.as_ref())?;
        if sigs == Signatures::Verify && tx.verify_signature().is_err() {
            return Err(TxError::BadSignature.into());
        }
        envelope::check_nonce(&tx.body, agency.next_nonce, NonceRule::Next)?;
        dispatch(&mut ctx, &tx.body.action)?;
        // The action may have changed the signer's record (a governance change): re-read it.
        let mut agency = ctx.agency(&tx.body.signer)?;
        agency.next_nonce += 1;
        ctx.view.put(&StateKey::Agency(agency.id.clone()), &agency);
        let Ctx { view, events, .. } = ctx;
        self.view.writes.extend(view.into_writes());
        self.events.push(events);
        Ok(self.events.last().map(Vec::as_slice).unwrap_or_default())
    }

    /// Compute the new state root and the tree writes.
    pub fn finish(self) -> Result<Executed, StoreError> {
        let next_validators: ValidatorSet = TxView::new(&self.view)
            .get(&StateKey::Validators)?
            .ok_or_else(|| StoreError::Corrupt("state has no validator set".into()))?;
        let changes: Vec<_> = self.view.writes.into_iter().collect();
        let (state_root, tree_batch) =
            state_tree::update(self.view.store, &self.view.root, &changes)?;
        Ok(Executed {
            state_root,
            tree_batch,
            next_validators,
            events: self.events,
        })
    }
}

fn dispatch<S: TreeStore>(ctx: &mut Ctx<'_, '_, S>, action: &Action) -> Result<(), Failure> {
    match action {
        Action::Issue(issuance) => lifecycle::issue(ctx, issuance, None),
        Action::IssueBatch(batch) => lifecycle::issue_batch(ctx, batch),
        Action::Supersede { previous, next } => lifecycle::supersede(ctx, previous, next),
        Action::Revoke { id, reason } => lifecycle::revoke(ctx, id, *reason),
        Action::RevokeBatchEntry { entry, reason } => {
            lifecycle::revoke_batch_entry(ctx, entry, *reason)
        }
        Action::Approve { id } => lifecycle::approve(ctx, id),
        Action::RecordEvent { id, event } => lifecycle::record_event(ctx, id, event),
        Action::Accredit {
            kind,
            agency,
            registration,
        } => lifecycle::accredit(ctx, *kind, agency, registration.as_ref()),
        Action::Unaccredit { kind, agency } => lifecycle::unaccredit(ctx, *kind, agency),
        Action::Propose { change } => governance::propose(ctx, change),
        Action::Vote { proposal } => governance::vote(ctx, proposal),
    }
}

/// Execute `block` on top of `parent` (whose state is in `store`), checking every header field.
pub fn execute_block<S: TreeStore>(
    store: &S,
    parent: &BlockHeader,
    block: &Block,
    sigs: Signatures,
) -> Result<Executed, BlockError> {
    let h = &block.header;
    let bad = |m: String| Err(BlockError::Header(m));
    if h.chain_id != parent.chain_id {
        return bad(format!(
            "chain {} after chain {}",
            h.chain_id, parent.chain_id
        ));
    }
    if h.height != parent.height.next() {
        return bad(format!("height {} after {}", h.height, parent.height));
    }
    if h.parent != parent.hash() {
        return bad("parent hash does not match".into());
    }
    if h.time <= parent.time {
        return bad("time does not advance".into());
    }
    if h.validators_hash != parent.next_validators_hash {
        return bad("validators hash does not match the parent's next validators".into());
    }
    if block.txs.len() > limits::MAX_BLOCK_TXS || h.tx_count as usize != block.txs.len() {
        return bad(format!(
            "{} transactions, header says {}",
            block.txs.len(),
            h.tx_count
        ));
    }
    if h.tx_root != tx_root(&block.txs) {
        return bad("transaction root does not match".into());
    }
    let sigs = match sigs {
        Signatures::Verify => {
            let items: Vec<_> = block
                .txs
                .iter()
                .map(|tx| (tx.body.key, tx.signing_message(), tx.signature))
                .collect();
            verify_many(&items).map_err(|index| BlockError::Tx {
                index,
                error: TxError::BadSignature,
            })?;
            Signatures::AlreadyVerified
        }
        Signatures::AlreadyVerified => Signatures::AlreadyVerified,
    };
    let mut exec = Executor::new(store, parent.state_root, h.height, h.time)?;
    for (index, tx) in block.txs.iter().enumerate() {
        match exec.apply(tx, sigs) {
            Ok(_) => {}
            Err(Failure::Rejected(error)) => return Err(BlockError::Tx { index, error }),
            Err(Failure::Store(e)) => return Err(BlockError::Store(e)),
        }
    }
    let executed = exec.finish()?;
    if executed.state_root != h.state_root {
        return Err(BlockError::StateRoot {
            header: h.state_root.to_hex(),
            computed: executed.state_root.to_hex(),
        });
    }
    if executed.next_validators.hash() != h.next_validators_hash {
        return bad("next validators hash does not match the resulting state".into());
    }
    Ok(executed)
}

/// A block built by a proposer, with what it leaves out.
#[derive(Debug, Clone)]
pub struct BuiltBlock {
    /// The block.
    pub block: Block,
    /// Its execution.
    pub executed: Executed,
    /// Candidates refused, with why.
    pub refused: Vec<(TxId, TxError)>,
}

/// Build the block after `parent` from `candidates` in order, leaving out the ones the rules
/// refuse, up to the block limits.
pub fn build_block<S: TreeStore>(
    store: &S,
    parent: &BlockHeader,
    time: Timestamp,
    proposer: PublicKey,
    candidates: impl IntoIterator<Item = Transaction>,
    sigs: Signatures,
) -> Result<BuiltBlock, StoreError> {
    let height = parent.height.next();
    let mut exec = Executor::new(store, parent.state_root, height, time)?;
    let mut txs = Vec::new();
    let mut refused = Vec::new();
    let mut bytes = 0usize;
    for tx in candidates {
        if txs.len() >= limits::MAX_BLOCK_TXS {
            break;
        }
        let len = tx.encode().len();
        if bytes + len > limits::MAX_BLOCK_BYTES - 4096 {
            break;
        }
        match exec.apply(&tx, sigs) {
            Ok(_) => {
                bytes += len;
                txs.push(tx);
            }
            Err(Failure::Rejected(e)) => refused.push((tx.id(), e)),
            Err(Failure::Store(e)) => return Err(e),
        }
    }
    let executed = exec.finish()?;
    let header = BlockHeader {
        chain_id: parent.chain_id.clone(),
        height,
        time,
        parent: parent.hash(),
        proposer: Some(proposer),
        tx_root: tx_root(&txs),
        tx_count: txs.len() as u32,
        state_root: executed.state_root,
        validators_hash: parent.next_validators_hash,
        next_validators_hash: executed.next_validators.hash(),
    };
    Ok(BuiltBlock {
        block: Block { header, txs },
        executed,
        refused,
    })
}
