//! The mempool: transactions admitted by this node and waiting for a block.
//!
//! Admission runs once per node and per transaction: size and decoding, then the envelope checks
//! block execution also makes (`cachet_contracts::envelope`: chain id, expiry, the signer
//! registered with its current key, the nonce not used and here not too far ahead), the
//! signature (batch-verified across the transactions that arrive together), and, for a
//! transaction that is next in line, a dry run of the rules against the committed state so
//! that an unauthorized issuer or an unknown certificate is refused at the door with its error
//! code. Admitted transactions are kept per signer in nonce order; a
//! proposer reaps consecutive nonces per signer. The pool is bounded in count and bytes.
//!
//! A transaction whose turn comes after the state changed under it (its certificate revoked
//! meanwhile, its expiry passed) still goes into a block, refused there with its code: that
//! uses its nonce, so the signer's later transactions follow. One that can never be in a block
//! (its signer removed or its key rotated while it waited, its nonce used by another) is
//! dropped after the next commit, and why is remembered for a while so that its submitter can
//! ask ([`Mempool::dropped`]).

use cachet_chain::DecodeError;
use cachet_chain::codec::limits::MAX_TX_BYTES;
use cachet_chain::hash::{DigestMap, Hash32};
use cachet_chain::ids::{AgencyId, ChainId, Height, Timestamp};
use cachet_chain::state::{AgencyRecord, StateKey, decode_value};
use cachet_chain::state_tree::{self, StoreError, TreeStore};
use cachet_chain::tx::{Transaction, TxId};
use cachet_contracts::envelope::{self, NonceRule};
use cachet_contracts::{Executor, Failure, Outcome, Signatures, TxError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How far ahead of an agency's next nonce a transaction may be queued.
pub const MAX_NONCE_AHEAD: u64 = 1024;

/// How many dropped transactions the pool remembers the reason for (the oldest are forgotten).
pub const REMEMBERED_DROPS: usize = 65_536;

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The rules (or the envelope) refuse it.
    #[error(transparent)]
    Rejected(#[from] TxError),
    /// The pool is full; try again later.
    #[error("the mempool is full ({0} transactions)")]
    Full(usize),
    /// Already in the pool.
    #[error("transaction {0} is already in the mempool")]
    Duplicate(TxId),
    /// Storage failed while checking it.
    #[error("storage failed: {0}")]
    Store(String),
}

impl AdmitError {
    /// Stable numeric code (transaction errors keep theirs; 2001+ are the node's own).
    pub fn code(&self) -> u32 {
        match self {
            AdmitError::Rejected(e) => e.code(),
            AdmitError::Full(_) => 2001,
            AdmitError::Duplicate(_) => 2002,
            AdmitError::Store(_) => 2900,
        }
    }

    /// Stable machine name.
    pub fn name(&self) -> &'static str {
        match self {
            AdmitError::Rejected(e) => e.name(),
            AdmitError::Full(_) => "mempool_full",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::Store(_) => "storage",
        }
    }
}

impl From<StoreError> for AdmitError {
    fn from(e: StoreError) -> Self {
        AdmitError::Store(e.to_string())
    }
}

impl From<DecodeError> for AdmitError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { len, max } => TxError::Oversized { len, max }.into(),
            DecodeError::Malformed(m) => TxError::Malformed(m).into(),
        }
    }
}

/// The committed state admission checks against.
pub struct Head<'a, S> {
    /// Tree storage.
    pub store: &'a S,
    /// The committed state root.
    pub state_root: Hash32,
    /// The committed height.
    pub height: Height,
    /// The committed block time.
    pub time: Timestamp,
    /// The chain id.
    pub chain_id: &'a ChainId,
}

impl<S: TreeStore> Head<'_, S> {
    /// The record of agency `id` in the committed state.
    pub fn agency(&self, id: &AgencyId) -> Result<Option<AgencyRecord>, StoreError> {
        state_tree::get(
            self.store,
            &self.state_root,
            &StateKey::Agency(id.clone()).hash(),
        )?
        .map(|b| decode_value(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
    }

    /// The next nonce of `id` in the committed state (0 for an unknown agency).
    pub fn next_nonce(&self, id: &AgencyId) -> Result<u64, StoreError> {
        Ok(self.agency(id)?.map(|a| a.next_nonce).unwrap_or(0))
    }
}

struct Entry {
    tx: Transaction,
    len: usize,
}

/// A transaction past the stateless checks, with its signer's next nonce.
struct Checked {
    id: TxId,
    tx: Transaction,
    next_nonce: u64,
}

#[derive(Default)]
struct Pool {
    by_id: DigestMap<TxId, (AgencyId, u64)>,
    by_signer: BTreeMap<AgencyId, BTreeMap<u64, Entry>>,
    bytes: usize,
    /// Why recently dropped transactions were dropped, oldest first in `drop_order`.
    dropped: DigestMap<TxId, TxError>,
    drop_order: VecDeque<TxId>,
}

impl Pool {
    fn remember_drop(&mut self, id: TxId, why: TxError) {
        if self.dropped.insert(id, why).is_none() {
            self.drop_order.push_back(id);
        }
        while self.drop_order.len() > REMEMBERED_DROPS {
            if let Some(old) = self.drop_order.pop_front() {
                self.dropped.remove(&old);
            }
        }
    }
}

/// A bounded pool of admitted transactions.
pub struct Mempool {
    pool: Mutex<Pool>,
    max_txs: usize,
    max_bytes: usize,
    /// Woken when a transaction that could go into the next block arrives.
    next_in_line: tokio::sync::Notify,
}

impl Mempool {
    /// A pool holding at most `max_txs` transactions and `max_bytes` bytes.
    pub fn new(max_txs: usize, max_bytes: usize) -> Mempool {
        Mempool {
            pool: Mutex::new(Pool::default()),
            max_txs,
            max_bytes,
            next_in_line: tokio::sync::Notify::new(),
        }
    }

    /// Wait until the pool holds a transaction or `deadline` passes, whichever is first.
    /// (A proposer with nothing to propose waits here rather than making empty blocks.)
    pub async fn wait_for_transactions(&self, deadline: tokio::time::Instant) {
        let mut arrived = std::pin::pin!(self.next_in_line.notified());
        // Registered before the check, so an arrival between the two still wakes us.
        arrived.as_mut().enable();
        if !self.is_empty() {
            return;
        }
        let _ = tokio::time::timeout_at(deadline, arrived).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of transactions waiting.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this transaction waiting?
    pub fn contains(&self, id: &TxId) -> bool {
        self.lock().by_id.contains_key(id)
    }

    /// The first nonce of `agency` from `committed` (its next nonce in the committed state) on
    /// that no transaction in the pool holds: what its next transaction should carry.
    pub fn next_free_nonce(&self, agency: &AgencyId, committed: u64) -> u64 {
        let pool = self.lock();
        let mut next = committed;
        if let Some(entries) = pool.by_signer.get(agency) {
            for n in entries.range(committed..).map(|(n, _)| *n) {
                if n != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Why this transaction was dropped from the pool without going into a block, if it was
    /// (recently: the last [`REMEMBERED_DROPS`] are remembered).
    pub fn dropped(&self, id: &TxId) -> Option<TxError> {
        self.lock().dropped.get(id).cloned()
    }

    /// Is exactly this transaction, signature included, waiting (so its signature was verified
    /// at admission)? The id alone does not cover the signature.
    pub fn contains_verified(&self, tx: &Transaction) -> bool {
        let pool = self.lock();
        pool.by_id
            .get(&tx.id())
            .and_then(|(signer, nonce)| pool.by_signer.get(signer)?.get(nonce))
            .is_some_and(|e| e.tx == *tx)
    }

    /// Check `bytes` and admit the transaction. Returns it (decoded) and its id.
    pub fn admit<S: TreeStore>(
        &self,
        bytes: &[u8],
        head: &Head<'_, S>,
    ) -> Result<(TxId, Transaction), AdmitError> {
        self.admit_many(&[bytes], head)
            .pop()
            .expect("one result per transaction")
    }

    /// Check and admit several transactions (an RPC batch, a gossip message), in order; one
    /// result per transaction. Their signatures are checked together with one ed25519 batch
    /// verification (one by one only if the batch fails), which costs about half as much per
    /// signature as checking each alone.
    pub fn admit_many<S: TreeStore>(
        &self,
        txs: &[&[u8]],
        head: &Head<'_, S>,
    ) -> Vec<Result<(TxId, Transaction), AdmitError>> {
        let mut results: Vec<Result<Checked, AdmitError>> =
            txs.iter().map(|bytes| self.precheck(bytes, head)).collect();
        // Signatures last among the stateless checks, after the signer's key is known to be
        // registered (batch verification relies on keys vetted at registration).
        let pending: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
        let items: Vec<_> = pending
            .iter()
            .filter_map(|&i| results[i].as_ref().ok())
            .map(|c| (c.tx.body.key, c.tx.signing_message(), c.tx.signature))
            .collect();
        if cachet_chain::crypto::verify_many(&items).is_err() {
            // At least one is bad: find every bad one.
            for &i in &pending {
                if let Ok(c) = &results[i]
                    && c.tx.verify_signature().is_err()
                {
                    results[i] = Err(TxError::BadSignature.into());
                }
            }
        }
        results
            .into_iter()
            .zip(txs)
            .map(|(checked, bytes)| self.insert(checked?, bytes.len(), head))
            .collect()
    }

    /// The checks that need no signature: size, encoding, duplicates, chain, expiry, and that
    /// the signer is a registered agency signing with its current key within the nonce window.
    fn precheck<S: TreeStore>(
        &self,
        bytes: &[u8],
        head: &Head<'_, S>,
    ) -> Result<Checked, AdmitError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::Oversized {
                len: bytes.len(),
                max: MAX_TX_BYTES,
            }
            .into());
        }
        let tx = Transaction::decode(bytes)?;
        let id = tx.id();
        {
            let pool = self.lock();
            if pool.by_id.contains_key(&id) {
                return Err(AdmitError::Duplicate(id));
            }
            // A full pool refuses before the costly checks: under a flood, the refusal is
            // cheap and the cores go to the blocks. (Insertion checks again: others may fill
            // it meanwhile.)
            if pool.by_id.len() >= self.max_txs {
                return Err(AdmitError::Full(pool.by_id.len()));
            }
        }
        let signer = head.agency(&tx.body.signer)?;
        let agency = envelope::check_signer(&tx.body, head.chain_id, signer.as_ref())?;
        let window = NonceRule::Window {
            ahead: MAX_NONCE_AHEAD,
        };
        let refused = envelope::check_nonce(&tx.body, agency.next_nonce, window)
            .and_then(|()| envelope::check_expiry(&tx.body, head.height.next()));
        if let Err(e) = refused {
            // The spec checks the signature before the nonce: a forged copy of a used
            // transaction is refused for its signature. Only refusals pay this check here;
            // the others' signatures are checked together below.
            if tx.verify_signature().is_err() {
                return Err(TxError::BadSignature.into());
            }
            return Err(e.into());
        }
        let next_nonce = agency.next_nonce;
        Ok(Checked { id, tx, next_nonce })
    }

    /// Admit a transaction whose signature and signer checked out: a dry run of the rules if it
    /// is next in line, then into the pool if there is room.
    fn insert<S: TreeStore>(
        &self,
        checked: Checked,
        len: usize,
        head: &Head<'_, S>,
    ) -> Result<(TxId, Transaction), AdmitError> {
        let Checked { id, tx, next_nonce } = checked;
        let body = &tx.body;
        if body.nonce == next_nonce {
            // Next in line: the rules can judge it now.
            let mut exec = Executor::new(
                head.store,
                head.state_root,
                head.height.next(),
                head.time.plus_ms(1),
            )?;
            // Refused at the door rather than in a block: its nonce stays free.
            match exec.apply(&tx, Signatures::AlreadyVerified) {
                Ok(Outcome::Executed(_)) => {}
                Ok(Outcome::Refused(e)) | Err(Failure::Rejected(e)) => return Err(e.into()),
                Err(Failure::Store(e)) => return Err(e.into()),
            }
        }
        let mut pool = self.lock();
        if pool.by_id.contains_key(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        if pool.by_id.len() >= self.max_txs || pool.bytes + len > self.max_bytes {
            return Err(AdmitError::Full(pool.by_id.len()));
        }
        let slot = pool.by_signer.entry(body.signer.clone()).or_default();
        if slot.contains_key(&body.nonce) {
            // Another transaction with this nonce is waiting: first come, first served.
            return Err(TxError::NonceReplayed {
                expected: body.nonce + 1,
                got: body.nonce,
            }
            .into());
        }
        slot.insert(
            body.nonce,
            Entry {
                tx: tx.clone(),
                len,
            },
        );
        pool.by_id.insert(id, (body.signer.clone(), body.nonce));
        pool.bytes += len;
        drop(pool);
        if body.nonce == next_nonce {
            self.next_in_line.notify_waiters();
        }
        Ok((id, tx))
    }

    /// Up to `max` transactions for the next block: per signer, the run of consecutive nonces
    /// starting at its next nonce, signers taken in turn so that one busy agency does not
    /// starve the others.
    pub fn reap(&self, max: usize, next_nonce: impl Fn(&AgencyId) -> u64) -> Vec<Transaction> {
        let pool = self.lock();
        let mut cursors: Vec<(&AgencyId, u64, &BTreeMap<u64, Entry>)> = pool
            .by_signer
            .iter()
            .map(|(a, m)| (a, next_nonce(a), m))
            .collect();
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            for (_, nonce, entries) in cursors.iter_mut() {
                if out.len() >= max {
                    return out;
                }
                if let Some(e) = entries.get(nonce) {
                    out.push(e.tx.clone());
                    *nonce += 1;
                    progressed = true;
                }
            }
            if !progressed {
                return out;
            }
        }
    }

    /// Drop what a committed block made obsolete: its transactions (`committed`), anything
    /// else whose nonce is now used, and what can never be in a block any more (its signer
    /// removed, or its key no longer the signer's). `agency` reads a signer's committed record;
    /// a signer whose record cannot be read keeps its transactions.
    pub fn prune(
        &self,
        committed: &[TxId],
        agency: impl Fn(&AgencyId) -> Result<Option<AgencyRecord>, StoreError>,
    ) {
        let mut pool = self.lock();
        let mut drops = Vec::new();
        let Pool {
            by_id,
            by_signer,
            bytes,
            ..
        } = &mut *pool;
        by_signer.retain(|signer, entries| {
            let Ok(record) = agency(signer) else {
                return true;
            };
            let gone: Vec<(u64, TxError)> = match &record {
                Some(a) if a.removed_at.is_none() => {
                    let next = a.next_nonce;
                    let used = entries.range(..next).map(|(n, _)| {
                        let why = TxError::NonceReplayed {
                            expected: next,
                            got: *n,
                        };
                        (*n, why)
                    });
                    let old_key = entries
                        .range(next..)
                        .filter(|(_, e)| a.current_key() != Some(&e.tx.body.key))
                        .map(|(n, _)| (*n, TxError::KeyNotAuthorized(signer.clone())));
                    used.chain(old_key).collect()
                }
                Some(_) => entries
                    .keys()
                    .map(|n| (*n, TxError::AgencyRemoved(signer.clone())))
                    .collect(),
                None => entries
                    .keys()
                    .map(|n| (*n, TxError::UnknownAgency(signer.clone())))
                    .collect(),
            };
            for (n, why) in gone {
                if let Some(e) = entries.remove(&n) {
                    let id = e.tx.id();
                    by_id.remove(&id);
                    *bytes -= e.len;
                    drops.push((id, why));
                }
            }
            !entries.is_empty()
        });
        let committed: std::collections::HashSet<&TxId> = committed.iter().collect();
        for (id, why) in drops {
            if !committed.contains(&id) {
                pool.remember_drop(id, why);
            }
        }
    }
}
