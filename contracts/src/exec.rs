//! Executing transactions and blocks: each transaction's envelope ([`crate::envelope`]) and
//! action, the block header checks, and the state root that results. A transaction whose
//! envelope fails makes its block invalid; one whose action the rules refuse (or whose expiry
//! passed) is refused in the block: [`Outcome::Refused`].
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
    /// Events, per transaction, in block order (none for a refused one).
    pub events: Vec<Vec<Event>>,
    /// The transactions refused in the block, by position, with why.
    pub refused: Vec<(u32, TxError)>,
}

/// What became of a transaction that can be in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Its action was carried out, with these events.
    Executed(&'a [Event]),
    /// Its expiry had passed or its action's rules refused it: it stays in the block, its
    /// nonce is used, and nothing else changed.
    Refused(TxError),
}

/// Executes transactions one by one on top of a parent state.
pub struct Executor<'a, S> {
    view: BlockView<'a, S>,
    params: ChainParams,
    height: Height,
    time: Timestamp,
    events: Vec<Vec<Event>>,
    refused: Vec<(u32, TxError)>,
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
            refused: Vec::new(),
        })
    }

    /// Apply one transaction. On `Err` it cannot be in this block and nothing changed; on
    /// [`Outcome::Refused`] it is in the block, its nonce is used and nothing else changed.
    pub fn apply(&mut self, tx: &Transaction, sigs: Signatures) -> Result<Outcome<'_>, Failure> {
        let signer: Option<AgencyRecord> =
            TxView::new(&self.view).get(&StateKey::Agency(tx.body.signer.clone()))?;
        // A borrow of the record read above: cloned only for a refusal, which is rare.
        let agency = envelope::check_signer(&tx.body, &self.params.chain_id, signer.as_ref())?;
        if sigs == Signatures::Verify && tx.verify_signature().is_err() {
            return Err(TxError::BadSignature.into());
        }
        envelope::check_nonce(&tx.body, agency.next_nonce, NonceRule::Next)?;
        let carried_out = match envelope::check_expiry(&tx.body, self.height) {
            Ok(()) => self.carry_out(tx),
            Err(e) => Err(e.into()),
        };
        match carried_out {
            Ok(events) => {
                self.events.push(events);
                Ok(Outcome::Executed(
                    self.events.last().map(Vec::as_slice).unwrap_or_default(),
                ))
            }
            Err(Failure::Rejected(error)) => {
                // The action's writes were never kept: only the nonce moves on.
                let mut view = TxView::new(&self.view);
                let mut agency = agency.clone();
                agency.next_nonce += 1;
                view.put(&StateKey::Agency(agency.id.clone()), &agency);
                let writes = view.into_writes();
                self.view.writes.extend(writes);
                self.refused.push((self.events.len() as u32, error.clone()));
                self.events.push(Vec::new());
                Ok(Outcome::Refused(error))
            }
            Err(Failure::Store(e)) => Err(e.into()),
        }
    }

    /// Run `tx`'s action and advance its signer's nonce. On `Err` nothing is kept.
    fn carry_out(&mut self, tx: &Transaction) -> Result<Vec<Event>, Failure> {
        let mut ctx = Ctx {
            view: TxView::new(&self.view),
            height: self.height,
            time: self.time,
            chain_id: self.params.chain_id.clone(),
            proposal_ttl: self.params.proposal_ttl,
            signer: tx.body.signer.clone(),
            tx_id: tx.id(),
            events: Vec::new(),
        };
        dispatch(&mut ctx, &tx.body.action)?;
        // The action may have changed the signer's record (a governance change): re-read it.
        let mut agency = ctx.agency(&tx.body.signer)?;
        agency.next_nonce += 1;
        ctx.view.put(&StateKey::Agency(agency.id.clone()), &agency);
        let Ctx { view, events, .. } = ctx;
        let writes = view.into_writes();
        self.view.writes.extend(writes);
        Ok(events)
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
            refused: self.refused,
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
    /// Candidates that cannot be in this block (their envelope fails: a nonce gap, a key no
    /// longer current), with why. A candidate refused *in* the block is in
    /// [`Executed::refused`].
    pub left_out: Vec<(TxId, TxError)>,
}

impl BuiltBlock {
    /// Every candidate that was not carried out: refused in the block, then left out.
    pub fn failures(&self) -> Vec<(TxId, TxError)> {
        let refused = self.executed.refused.iter().map(|(index, e)| {
            let id = self.block.txs[*index as usize].id();
            (id, e.clone())
        });
        refused.chain(self.left_out.iter().cloned()).collect()
    }
}

/// Build the block after `parent` from `candidates` in order, up to the block limits: each one
/// whose envelope passes goes in (executed or refused in the block), the others are left out.
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
    let mut left_out = Vec::new();
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
            Err(Failure::Rejected(e)) => left_out.push((tx.id(), e)),
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
        left_out,
    })
}
