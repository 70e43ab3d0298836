//! The blocks a node joining by snapshot keeps below its snapshot, and their check.
//!
//! A node that joins at height `H` re-executes nothing below it, but still serves receipts,
//! which carry every validator-set change after the verifier's trust (from genesis on), and
//! checkpoint advances. So it keeps, below `H`: each block that changed the validator set with
//! its commit certificate and the set after it; the latest checkpoint at or below `H` with its
//! certificate and trust anchor; and the block at `H` with its certificate, the header its
//! snapshot's state root is read from.
//!
//! A joining node takes none of it on a peer's word: from the genesis set, each block's
//! certificate must carry more than two thirds of the set its predecessors lead to, each
//! header must name that set, each new set must be the one its header names next, and the
//! checkpoint must advance from genesis ([`cachet_chain::checkpoint::Advance`]) — the same
//! checks a verifier applies to a receipt. A history that leaves a set change out fails them.
//!
//! # Format
//!
//! [`History`] in Borsh: the blocks in height order (height, the block's encoding, its
//! certificate as the store keeps it — Malachite's `CommitCertificate` in Borsh —, and the
//! set after it in its state-value encoding if it changed the set), the snapshot's own block
//! last; then the checkpoint's encoded `TrustAnchor`, if there is one (its block is among the
//! blocks).

use crate::context::commit_of;
use crate::store::{KeptBlock, Store};
use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::block::{Block, BlockHeader, tx_root};
use cachet_chain::checkpoint::Advance;
use cachet_chain::receipt::{Transition, Transitions, check_head};
use cachet_chain::state::{ValidatorSet, decode_value};
use cachet_chain::trust::{Trust, TrustAnchor};

/// The blocks kept below a snapshot, as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct History {
    /// In height order, the snapshot's own block last.
    pub blocks: Vec<HistoryBlock>,
    /// The latest checkpoint at or below the snapshot: its encoded trust anchor.
    pub checkpoint: Option<Vec<u8>>,
}

/// One kept block, as sent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HistoryBlock {
    /// Its height.
    pub height: u64,
    /// The block's encoding.
    pub block: Vec<u8>,
    /// Its commit certificate as stored.
    pub certificate: Vec<u8>,
    /// The validator set after it, encoded, if it changed the set.
    pub validators_after: Option<Vec<u8>>,
}

/// A history checked against the genesis trust: what the joining node writes.
pub struct Verified {
    /// The kept blocks, the snapshot's last.
    pub blocks: Vec<KeptBlock>,
    /// The checkpoint, if any.
    pub checkpoint: Option<TrustAnchor>,
    /// The snapshot's header.
    pub head: BlockHeader,
}

/// The history of the snapshot at `store`'s head (a copy nothing writes to).
pub fn collect(store: &Store) -> eyre::Result<History> {
    let head = store
        .head()?
        .ok_or_else(|| eyre::eyre!("no head"))?
        .height
        .0;
    let checkpoint = store
        .checkpoint_at_or_below(head)?
        .filter(|a| a.header.height.0 > 0);
    let changes = store.validator_set_changes()?;
    let mut heights: Vec<u64> = changes.iter().copied().filter(|h| *h <= head).collect();
    heights.extend(checkpoint.as_ref().map(|a| a.header.height.0));
    heights.push(head);
    heights.sort_unstable();
    heights.dedup();
    let mut blocks = Vec::with_capacity(heights.len());
    for h in heights {
        let block = store
            .block_bytes(h)?
            .ok_or_else(|| eyre::eyre!("no block {h} stored"))?;
        let certificate = store
            .certificate(h)?
            .ok_or_else(|| eyre::eyre!("no certificate {h} stored"))?;
        let validators_after = changes
            .contains(&h)
            .then(|| {
                store
                    .validators_after(h)
                    .map(|s| cachet_chain::codec::encode(&s))
            })
            .transpose()?;
        blocks.push(HistoryBlock {
            height: h,
            block,
            certificate,
            validators_after,
        });
    }
    Ok(History {
        blocks,
        checkpoint: checkpoint.map(|a| a.encode()),
    })
}

/// Check a peer's history for the snapshot at `height` against `trust` (the genesis').
pub fn verify(history: &History, height: u64, trust: &Trust) -> Result<Verified, String> {
    if history.blocks.last().map(|b| b.height) != Some(height) {
        return Err(format!("the history does not end at height {height}"));
    }
    let checkpoint = history
        .checkpoint
        .as_ref()
        .map(|bytes| TrustAnchor::decode(bytes).map_err(|e| format!("checkpoint: {e}")))
        .transpose()?;
    let mut set: ValidatorSet = trust.validators.clone();
    let mut transitions: Vec<Transition> = Vec::new();
    let mut kept = Vec::with_capacity(history.blocks.len());
    let mut after = 0;
    let mut head = None;
    for b in &history.blocks {
        let h = b.height;
        if h <= after {
            return Err(format!("block {h} is out of order"));
        }
        after = h;
        let block = Block::decode(&b.block).map_err(|e| format!("block {h}: {e}"))?;
        let header = block.header;
        if header.height.0 != h {
            return Err(format!(
                "block {h} says it is at height {}",
                header.height.0
            ));
        }
        if tx_root(&block.txs) != header.tx_root
            || block.txs.len() as u64 != u64::from(header.tx_count)
        {
            return Err(format!("block {h}: its transactions are not its header's"));
        }
        if header.validators_hash != set.hash() {
            return Err(format!(
                "block {h} is signed by a validator set the history does not lead to (a set change is missing)"
            ));
        }
        let commit = commit_of(&b.certificate, &set).map_err(|e| format!("block {h}: {e}"))?;
        let transitions_below =
            Transitions::new(transitions.clone()).map_err(|e| format!("transitions: {e}"))?;
        match checkpoint.as_ref().filter(|a| a.header.height.0 == h) {
            // The advance checks the commit of its anchor's header: the block's own.
            Some(anchor) if anchor.header != header => {
                return Err(format!("the checkpoint at {h} is not block {h}'s header"));
            }
            Some(anchor) => Advance {
                transitions: transitions_below.clone(),
                commit: commit.clone(),
                anchor: anchor.clone(),
            }
            .verify(trust)
            .map(|_| ())
            .map_err(|e| format!("checkpoint {h}: {e}"))?,
            None => check_head(&header, &commit, &transitions_below, trust)
                .map_err(|e| format!("block {h}: {e}"))?,
        }
        let validators_after = match &b.validators_after {
            None if header.next_validators_hash != header.validators_hash => {
                return Err(format!(
                    "block {h} changed the validator set; the new set is missing"
                ));
            }
            None => None,
            Some(bytes) => {
                let next: ValidatorSet =
                    decode_value(bytes).map_err(|e| format!("validator set after {h}: {e}"))?;
                if next.hash() != header.next_validators_hash {
                    return Err(format!("the set after block {h} is not the one it names"));
                }
                Some(next)
            }
        };
        if let Some(next) = &validators_after {
            transitions.push(Transition {
                header: header.clone(),
                commit,
                next: next.clone(),
            });
            set = next.clone();
        }
        kept.push(KeptBlock {
            height: h,
            block: b.block.clone(),
            certificate: b.certificate.clone(),
            validators_after,
        });
        head = Some(header);
    }
    if let Some(a) = &checkpoint
        && !history.blocks.iter().any(|b| b.height == a.header.height.0)
    {
        return Err("the checkpoint's block is missing".into());
    }
    Ok(Verified {
        blocks: kept,
        checkpoint,
        head: head.ok_or("an empty history")?,
    })
}
