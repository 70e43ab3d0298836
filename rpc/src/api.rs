//! The narrow contract between the RPC server and a node: the [`NodeApi`] trait the node
//! implements, what its methods return, and [`Failure`], a refusal with its stable code.
//!
//! It is not the server ([`crate::module`], [`crate::serve`]) nor the verify page
//! ([`crate::web`]); both call a node only through this trait.

use async_trait::async_trait;
use cachet_chain::block::BlockHeader;
use cachet_chain::hash::Hash32;
use cachet_chain::state::StateKey;
use cachet_chain::tx::TxId;
use jsonrpsee::types::ErrorObjectOwned;
use serde::{Deserialize, Serialize};

/// What a verifier asks of a receipt (the optional last parameter of `cachet_receipt` and
/// `cachet_batchReceipt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptOptions {
    /// The height of the verifier's trust root (0, the genesis, by default): the receipt carries
    /// only the validator-set changes after it.
    pub trusted_height: u64,
    /// Carry the issuing agency's record, for a verifier that shows the agency's name.
    pub issuer: bool,
    /// Carry the certificates a certificate replaced (a land title's transfers), each proven,
    /// so that its whole lineage verifies from the one receipt.
    pub lineage: bool,
}

/// One readiness check: what it is, whether it passes, and what it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `following`, `peers` or `disk`.
    pub name: String,
    /// Whether it passes.
    pub ok: bool,
    /// What it saw, for an operator.
    pub detail: String,
}

/// What `GET /readyz` answers: ready when every check passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Every check passes.
    pub ready: bool,
    /// The committed head's height.
    pub height: u64,
    /// The checks.
    pub checks: Vec<Check>,
}

/// A refusal with its stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable numeric code.
    pub code: i32,
    /// Stable machine name.
    pub name: String,
    /// Human-readable explanation.
    pub message: String,
}

impl Failure {
    /// A failure with `code`, `name` and `message`.
    pub fn new(code: u32, name: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: code as i32,
            name: name.to_string(),
            message: message.into(),
        }
    }

    /// The request was malformed (JSON-RPC's invalid params).
    pub fn invalid_params(message: impl Into<String>) -> Failure {
        Failure::new(1000, "invalid_params", message)
    }

    /// The node failed internally.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(2900, "internal", message)
    }
}

impl From<Failure> for ErrorObjectOwned {
    fn from(f: Failure) -> Self {
        ErrorObjectOwned::owned(
            f.code,
            f.message,
            Some(serde_json::json!({ "name": f.name })),
        )
    }
}

/// Where a transaction stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// Waiting in this node's mempool.
    Pending,
    /// In a committed block, carried out.
    Committed {
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
    },
    /// In a committed block, refused there (its expiry passed or the rules refused it while
    /// it waited): its nonce is used and nothing else changed. Final.
    Refused {
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
        /// The refusal's stable code (`docs/spec/errors.md`).
        code: u32,
        /// Its stable name.
        name: String,
        /// What was wrong, in words.
        message: String,
    },
    /// Dropped from this node's mempool without going into a block: it can never be in one
    /// (its nonce was used by another transaction, its key rotated or its signer removed
    /// while it waited). Final; its nonce was not used by it.
    Dropped {
        /// The reason's stable code.
        code: u32,
        /// Its stable name.
        name: String,
        /// What was wrong, in words.
        message: String,
    },
    /// Not known to this node.
    Unknown,
}

/// What `cachet_status` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// The node's name.
    pub moniker: String,
    /// The chain id.
    pub chain_id: String,
    /// Latest committed height.
    pub height: u64,
    /// Its block hash.
    pub hash: Hash32,
    /// Its block time (ms since the epoch).
    pub time: u64,
    /// Its state root.
    pub state_root: Hash32,
    /// Transactions waiting in the mempool.
    pub mempool: usize,
}

/// What `cachet_nextNonce` returns: the nonce an agency's next transaction should carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextNonce {
    /// The agency.
    pub agency: cachet_chain::AgencyId,
    /// Its next nonce in the committed state.
    pub committed: u64,
    /// The first nonce from `committed` on that no transaction in this node's mempool holds:
    /// what to sign the next transaction with.
    pub next: u64,
}

/// One recorded equivocation: a validator's two conflicting votes of one height and round, as
/// `cachet_evidence` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// The height it was recorded at.
    pub height: u64,
    /// The validator's consensus key.
    pub validator: cachet_chain::PublicKey,
    /// The agency that runs it, from the validator set of that height (absent when the set
    /// no longer names it).
    pub agency: Option<cachet_chain::AgencyId>,
    /// The two votes.
    pub votes: Vec<EquivocatingVote>,
    /// The record as stored, hex: `(address, vote, vote)` in Borsh, each vote with its
    /// signature, for anyone who checks the signatures themselves.
    pub encoded: String,
}

/// One of an equivocation's votes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquivocatingVote {
    /// `prevote` or `precommit`.
    pub kind: String,
    /// Its height.
    pub height: u64,
    /// Its round.
    pub round: i64,
    /// The block voted for; `None` for nil.
    pub block: Option<Hash32>,
    /// The signature, hex.
    pub signature: String,
}

/// What `cachet_block` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// The header.
    pub header: BlockHeader,
    /// Ids of its transactions, in order.
    pub txs: Vec<TxId>,
    /// Number of commit signatures on it.
    pub signatures: usize,
}

/// The node, as the RPC sees it.
#[async_trait]
pub trait NodeApi: Send + Sync + 'static {
    /// Admit a transaction (encoded) and relay it. Returns its id.
    async fn submit(&self, tx: Vec<u8>) -> Result<TxId, Failure>;
    /// Admit several transactions (encoded) and relay the admitted ones; one result per
    /// transaction, in order. A node may check them together (batch signature verification).
    async fn submit_many(&self, txs: Vec<Vec<u8>>) -> Vec<Result<TxId, Failure>> {
        let mut out = Vec::with_capacity(txs.len());
        for tx in txs {
            out.push(self.submit(tx).await);
        }
        out
    }
    /// The node's view of the chain head.
    fn status(&self) -> Result<Status, Failure>;
    /// A committed block.
    fn block(&self, height: u64) -> Result<Option<BlockInfo>, Failure>;
    /// Where a transaction stands.
    fn transaction(&self, id: &TxId) -> Result<TxStatus, Failure>;
    /// The nonce agency `id`'s next transaction should carry, counting this node's mempool;
    /// `None` for an agency the chain does not know.
    fn next_nonce(&self, id: &cachet_chain::AgencyId) -> Result<Option<NextNonce>, Failure>;
    /// A value of the latest committed state, as JSON.
    fn state(&self, key: &StateKey) -> Result<Option<serde_json::Value>, Failure>;
    /// Every kind of the latest committed state: the built-in ones, then those governance
    /// registered, in the order it registered them.
    fn kinds(&self) -> Result<Vec<cachet_chain::CertKind>, Failure> {
        let registered = self
            .state(&StateKey::RegisteredKinds)?
            .and_then(|n| n.as_u64())
            .unwrap_or(0);
        Ok(cachet_chain::CertKind::ALL
            .into_iter()
            .chain((0..registered).map(|n| cachet_chain::CertKind::Registered(n as u16)))
            .collect())
    }
    /// Recorded misbehaviour, oldest first.
    fn evidence(&self) -> Result<Vec<Equivocation>, Failure>;
    /// A receipt for certificate `id` as of the latest committed block (encoded).
    fn receipt(
        &self,
        id: &cachet_chain::CertId,
        options: &ReceiptOptions,
    ) -> Result<Vec<u8>, Failure>;
    /// A receipt for the batch entry with `commitment` and `inclusion` proof (encoded).
    fn batch_receipt(
        &self,
        batch: &cachet_chain::tx::BatchId,
        commitment: cachet_chain::Commitment,
        inclusion: cachet_chain::merkle::BatchProof,
        options: &ReceiptOptions,
    ) -> Result<Vec<u8>, Failure>;
    /// What takes a verifier trusting `trusted_height` to the latest checkpoint: an encoded
    /// [`Advance`](cachet_chain::checkpoint::Advance).
    fn checkpoint(&self, trusted_height: u64) -> Result<Vec<u8>, Failure>;
    /// Verify certificate `id` with a fresh receipt against this node's genesis: the verdict,
    /// the record and the receipt a client can re-check itself.
    fn verify(&self, id: &cachet_chain::CertId) -> Result<Verification, Failure>;
    /// Verify a document by its fingerprint and salt (the id follows from them).
    fn verify_document(
        &self,
        fingerprint: &cachet_chain::Fingerprint,
        salt: &cachet_chain::Salt,
    ) -> Result<Verification, Failure>;
    /// The lineage of certificate `id`: every record it supersedes or is superseded by,
    /// oldest first.
    fn history(&self, id: &cachet_chain::CertId) -> Result<Vec<serde_json::Value>, Failure>;
    /// Committed blocks as they come (for subscriptions).
    fn subscribe_blocks(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value>;
    /// The operator's metrics, as OpenMetrics text (served at `GET /metrics`).
    fn metrics(&self) -> String;
    /// Whether the node is fit to serve (served at `GET /readyz`).
    fn readiness(&self) -> Readiness;
    /// This node's network identity: `{peer_id, p2p, gossip}` (full multiaddrs with `/p2p/`).
    fn node_info(&self) -> Result<serde_json::Value, Failure>;
    /// The trust anchor of the chain's genesis: what the genesis hash, a verifier's default
    /// trust root, stands for.
    fn trust_anchor(&self) -> cachet_chain::trust::TrustAnchor;
    /// Operator: connect to a new consortium peer (consensus and gossip multiaddrs).
    async fn add_peer(&self, p2p: String, gossip: String) -> Result<(), Failure>;
    /// Operator: copy the node's store, as it runs, into `dir` (an absolute path on the node's
    /// machine, absent or empty); the backup's manifest.
    async fn backup(&self, dir: String) -> Result<serde_json::Value, Failure>;
    /// Operator: take a snapshot of the state when `height` (above the head) is committed, as
    /// well as at the configured interval; `{height}`.
    async fn snapshot_at(&self, height: u64) -> Result<serde_json::Value, Failure>;
}

/// What [`NodeApi::verify`] found: the verdict's fields, and the encoded receipt they rest on.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// The verdict, the record and what else the node read from the receipt, as JSON fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The receipt, encoded; the reply carries it as hex under `"receipt"`.
    pub receipt: Vec<u8>,
}
