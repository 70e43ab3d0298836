//! A store checked against itself, offline (`cachet fsck`): every stored block's links,
//! transaction root, transaction index and commit signatures against the validator sets the
//! store recorded, the checkpoints against their blocks, and the head's state re-derived from
//! the stored entries and values and compared with the head's state root.
//!
//! What it proves: the blocks form one chain from the store's genesis, each committed by more
//! than two thirds of the set its parent's state names; and the head's stored state is the
//! state its header commits to. What it does not: re-execute history (state older than the
//! head is pruned), or tell that the store's genesis is the consortium's (compare
//! [`Report::genesis`] with the genesis file's hash, as `cachet fsck --genesis` does).
//!
//! A store that joined by snapshot, or pruned its blocks, holds no blocks below its base but
//! those it keeps for receipts (validator-set changes, checkpoints, the base's own); those are
//! checked for their commits, and the chain from the base's block on.
//!
//! It is not a repair tool: a store with problems is replaced, from a backup or by syncing.

use crate::store::Store;
use cachet_chain::block::{Block, BlockHeader, tx_root};
use cachet_chain::hash::Hash32;
use cachet_chain::receipt::{Transitions, check_head};
use cachet_chain::state_tree::{self, TreeStore, value_hash};
use cachet_chain::trust::Trust;
use serde::Serialize;

/// More problems than this and the check stops listing them: a store this broken is replaced.
const MAX_PROBLEMS: usize = 100;

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The height it was found at (`None`: the store as a whole, such as its state).
    pub height: Option<u64>,
    /// What is wrong, for people.
    pub what: String,
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The hash of the store's genesis header.
    pub genesis: Option<Hash32>,
    /// The committed head's height.
    pub head: u64,
    /// The snapshot height the store joined at (0: it holds every block since genesis).
    pub base: u64,
    /// Blocks checked.
    pub blocks: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// State entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Inconsistencies, lowest height first (the store-wide ones last); at most
    /// [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
}

impl Report {
    /// Is the store consistent?
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, height: Option<u64>, what: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                height,
                what: what.into(),
            });
        }
    }
}

/// Check `store`; `progress` is told each height checked and the head. Fails only when the
/// store cannot be read at all (no genesis, no head).
pub fn check(store: &Store, mut progress: impl FnMut(u64, u64)) -> eyre::Result<Report> {
    let genesis = store
        .genesis()?
        .ok_or_else(|| eyre::eyre!("the store has no genesis: nothing was ever written to it"))?;
    let head = store
        .head()?
        .ok_or_else(|| eyre::eyre!("the store has a genesis but no head"))?;
    let base = store.base()?;
    let mut report = Report {
        genesis: Some(genesis.hash()),
        head: head.height.0,
        base,
        ..Report::default()
    };
    let mut parent = Some(genesis.clone());
    if base > 0 {
        // Joined by snapshot, or blocks pruned: below the base, only the blocks receipts and
        // checkpoints need, each committed by the set recorded before it; the chain links
        // from the base's block.
        let mut kept: Vec<u64> = store.validator_set_changes()?;
        kept.extend(store.checkpoint_heights()?);
        kept.retain(|h| *h < base);
        kept.push(base);
        kept.sort_unstable();
        kept.dedup();
        kept.retain(|h| *h > 0);
        for h in kept {
            parent = check_height(store, h, None, &genesis, &mut report);
        }
    }
    for h in base + 1..=head.height.0 {
        parent = check_height(store, h, parent.as_ref(), &genesis, &mut report);
        progress(h, head.height.0);
    }
    if let Some(last) = parent
        && last != head
    {
        report.problem(
            Some(head.height.0),
            "the stored head is not the header of the block stored at its height",
        );
    }
    check_checkpoints(store, &mut report);
    check_state(store, &head, &mut report);
    report
        .problems
        .sort_by_key(|p| p.height.unwrap_or(u64::MAX));
    Ok(report)
}

/// Check height `h` given its parent's header (`None`: the parent could not be read); returns
/// this height's header for the next one.
fn check_height(
    store: &Store,
    h: u64,
    parent: Option<&BlockHeader>,
    genesis: &BlockHeader,
    report: &mut Report,
) -> Option<BlockHeader> {
    let at = Some(h);
    let block = match store.block_bytes(h) {
        Ok(Some(bytes)) => match Block::decode(&bytes) {
            Ok(block) => block,
            Err(e) => {
                report.problem(at, format!("the stored block does not decode: {e}"));
                return None;
            }
        },
        Ok(None) => {
            report.problem(at, "the block is missing");
            return None;
        }
        Err(e) => {
            report.problem(at, format!("the block cannot be read: {e}"));
            return None;
        }
    };
    report.blocks += 1;
    let header = &block.header;
    if header.height.0 != h || header.chain_id != genesis.chain_id {
        report.problem(
            at,
            format!(
                "the block stored here is block {} of chain {}",
                header.height.0, header.chain_id
            ),
        );
    }
    if let Some(parent) = parent
        && header.parent != parent.hash()
    {
        report.problem(
            at,
            format!(
                "the block's parent is {}, not the block stored at height {} ({})",
                header.parent,
                h - 1,
                parent.hash()
            ),
        );
    }
    if header.tx_count as usize != block.txs.len() || header.tx_root != tx_root(&block.txs) {
        report.problem(
            at,
            "the transactions do not match the header's root and count",
        );
    }
    // A block kept below a snapshot was never executed here: its transactions are not indexed.
    let indexed = parent.is_some() || h > store.base().unwrap_or(0);
    for (i, tx) in block.txs.iter().enumerate().filter(|_| indexed) {
        report.transactions += 1;
        match store.tx_location(&tx.id()) {
            Ok(Some(loc)) if loc.height == h && loc.index as usize == i => {}
            Ok(found) => report.problem(
                at,
                format!(
                    "transaction {} (position {i}) is indexed at {}",
                    tx.id(),
                    found.map_or("no place".into(), |l| format!(
                        "height {} position {}",
                        l.height, l.index
                    ))
                ),
            ),
            Err(e) => report.problem(at, format!("the transaction index cannot be read: {e}")),
        }
    }
    if let Err(e) = check_commit(store, header) {
        report.problem(at, e);
    }
    Some(block.header)
}

/// Is `header` signed by more than two thirds of the set that its parent's state names, and
/// does it name that set and the next one?
fn check_commit(store: &Store, header: &BlockHeader) -> Result<(), String> {
    let h = header.height.0;
    let certificate = store
        .certificate(h)
        .map_err(|e| format!("the commit cannot be read: {e}"))?
        .ok_or("the commit certificate is missing")?;
    let signers = store
        .validators_after(h - 1)
        .map_err(|e| format!("the validator set after height {}: {e}", h - 1))?;
    let commit = crate::context::commit_of(&certificate, &signers)
        .map_err(|e| format!("the commit certificate: {e}"))?;
    let trust = Trust {
        chain_id: header.chain_id.clone(),
        height: cachet_chain::Height(h - 1),
        validators: signers,
        policies: Default::default(),
    };
    check_head(header, &commit, &Transitions::default(), &trust)
        .map_err(|e| format!("the commit does not commit this block: {e}"))?;
    let next = store
        .validators_after(h)
        .map_err(|e| format!("the validator set after height {h}: {e}"))?;
    if next.hash() != header.next_validators_hash {
        return Err(
            "the validator set recorded after this height is not the one the header names".into(),
        );
    }
    Ok(())
}

/// Each checkpoint's header is the block stored at its height.
fn check_checkpoints(store: &Store, report: &mut Report) {
    let mut below = report.head;
    while below > 0 {
        let anchor = match store.checkpoint_at_or_below(below) {
            Ok(Some(a)) if a.header.height.0 > 0 => a,
            Ok(_) => return,
            Err(e) => return report.problem(None, format!("checkpoints cannot be read: {e}")),
        };
        let h = anchor.header.height.0;
        report.checkpoints += 1;
        match store.header(h) {
            Ok(Some(header)) if header == anchor.header => {}
            _ => report.problem(
                Some(h),
                "the checkpoint kept here is not the header of the block stored here",
            ),
        }
        below = h - 1;
    }
}

/// The head's state: every entry of the key index has its value, that value hashes to the
/// entry's value hash, and the entries make the head's state root; a stored tree holds exactly
/// those entries, each of its nodes matching its hash.
fn check_state(store: &Store, head: &BlockHeader, report: &mut Report) {
    let at = Some(head.height.0);
    let entries = match store.key_index() {
        Ok(e) => e,
        Err(e) => return report.problem(at, format!("the key index cannot be read: {e}")),
    };
    report.entries = entries.len() as u64;
    for (key, vh) in &entries {
        let leaf = state_tree::Node::Leaf {
            key: *key,
            value: *vh,
        }
        .hash();
        match store.value(&leaf) {
            Ok(Some(value)) if value_hash(&value) == *vh => {}
            Ok(Some(_)) => report.problem(
                at,
                format!("the state value of key {key} does not match its hash"),
            ),
            Ok(None) => report.problem(at, format!("the state value of key {key} is missing")),
            Err(e) => report.problem(at, format!("the state value of key {key}: {e}")),
        }
    }
    let root = state_tree::build(&entries, &mut |_, _| {});
    if root != head.state_root {
        report.problem(
            at,
            format!(
                "the head's {} state entries make root {root}, not the head's state root {}",
                entries.len(),
                head.state_root
            ),
        );
    }
    match store.tree_in_memory() {
        Ok(true) => {}
        Ok(false) => match state_tree::walk(store, &head.state_root) {
            Ok(stored) if stored == entries => {}
            Ok(stored) => report.problem(
                at,
                format!(
                    "the stored tree holds {} entries the key index does not match ({} there)",
                    stored.len(),
                    entries.len()
                ),
            ),
            Err(e) => report.problem(at, format!("the stored state tree: {e}")),
        },
        Err(e) => report.problem(at, format!("the tree's placement cannot be read: {e}")),
    }
}
