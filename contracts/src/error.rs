//! Why a transaction or a block is refused. Every transaction error has a stable numeric code
//! (see [`TxError::code`] and `docs/spec/errors.md`); the JSON-RPC returns the same codes.

use cachet_chain::document::CertId;
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height};
use cachet_chain::state_tree::StoreError;

/// Why a transaction is refused. One refused at a node's door, or left out of a block, changes
/// nothing; one refused in a block (its expiry or its action's rules) uses its nonce and
/// changes nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Not a valid encoding.
    #[error("transaction is malformed: {0}")]
    Malformed(String),
    /// Longer than the limit.
    #[error("transaction is {len} bytes, over the limit of {max}")]
    Oversized {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Signed for another chain.
    #[error("transaction is for chain {got}, this is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The transaction's.
        got: ChainId,
    },
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The signer is not a registered agency.
    #[error("unknown agency {0}")]
    UnknownAgency(AgencyId),
    /// The signer was removed.
    #[error("agency {0} has been removed")]
    AgencyRemoved(AgencyId),
    /// The key is not the signer's current key.
    #[error("the key is not the current key of agency {0}")]
    KeyNotAuthorized(AgencyId),
    /// The nonce was used already.
    #[error("nonce {got} was already used; next is {expected}")]
    NonceReplayed {
        /// The next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The nonce skips ahead.
    #[error("nonce {got} is ahead of the next nonce {expected}")]
    NonceTooHigh {
        /// The next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Past its expiry height.
    #[error("transaction expired at height {expires_at}; this is height {height}")]
    TxExpired {
        /// Its last valid height.
        expires_at: Height,
        /// The current height.
        height: Height,
    },
    /// A key that cannot be registered.
    #[error("key is not acceptable (invalid, small-order or not torsion-free)")]
    WeakKey,
    /// The signer may not issue this kind.
    #[error("agency {agency} is not accredited for {kind}")]
    NotAccredited {
        /// The signer.
        agency: AgencyId,
        /// The kind.
        kind: CertKind,
    },
    /// Only the issuer (or an accreditor of the kind) may do this.
    #[error("agency {0} is neither the issuer nor an accreditor of this kind")]
    NotIssuer(AgencyId),
    /// The signer is not an approver of the kind.
    #[error("agency {0} is not an approver of this kind")]
    NotApprover(AgencyId),
    /// The signer is not an accreditor of the kind.
    #[error("agency {0} is not an accreditor of this kind")]
    NotAccreditor(AgencyId),
    /// The signer runs no validator.
    #[error("agency {0} runs no validator")]
    NotValidatorAgency(AgencyId),
    /// No such certificate.
    #[error("unknown certificate {0}")]
    UnknownCertificate(CertId),
    /// A certificate, batch or agency with this id exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Already revoked.
    #[error("already revoked")]
    AlreadyRevoked,
    /// Already superseded.
    #[error("already superseded")]
    AlreadySuperseded,
    /// Waiting for approvals.
    #[error("the certificate is pending approval")]
    PendingApproval,
    /// Approve on a certificate that is not pending.
    #[error("the certificate is not pending approval")]
    NotPending,
    /// The signer approved already.
    #[error("agency {0} has already approved")]
    AlreadyApproved(AgencyId),
    /// Validity window broken.
    #[error("invalid validity window: {0}")]
    InvalidValidity(String),
    /// Terms do not fit the kind or the certificate they refer to.
    #[error("terms do not fit: {0}")]
    TermsMismatch(String),
    /// The action names a certificate of another kind.
    #[error("certificate is a {actual}, not a {expected}")]
    KindMismatch {
        /// The kind the action needs.
        expected: CertKind,
        /// The certificate's kind.
        actual: CertKind,
    },
    /// A land title with an active mortgage cannot be transferred.
    #[error("the title has an active mortgage")]
    MortgageActive,
    /// Cancelling a mortgage that is not set.
    #[error("no such active mortgage")]
    UnknownMortgage,
    /// Setting a mortgage that is set already.
    #[error("this mortgage is already set")]
    DuplicateMortgage,
    /// This kind records no such event.
    #[error("{kind} records no such event")]
    EventNotAllowed {
        /// The kind.
        kind: CertKind,
    },
    /// No kind with this number is registered.
    #[error("no kind {0} is registered")]
    UnknownKind(CertKind),
    /// The kind's definition does not let its certificates be replaced.
    #[error("{0} certificates cannot be superseded; revoke and issue anew")]
    SupersedeNotAllowed(CertKind),
    /// The kind's policy allows no batches.
    #[error("{0} does not allow batch issuance")]
    BatchNotAllowed(CertKind),
    /// Batch size out of range.
    #[error("batch of {count} entries; allowed 1 to {max}")]
    BatchSize {
        /// Entries.
        count: u32,
        /// Most allowed.
        max: u32,
    },
    /// No such batch.
    #[error("unknown batch {0}")]
    UnknownBatch(String),
    /// The inclusion proof does not lead to the batch root.
    #[error("the entry is not in the batch (inclusion proof fails)")]
    BadBatchProof,
    /// The oracle is not in the kind's oracle set.
    #[error("oracle {0} is not in the oracle set")]
    UnknownOracle(String),
    /// Two attestations by one oracle.
    #[error("oracle {0} attests twice")]
    DuplicateOracle(String),
    /// An attestation's signature does not verify.
    #[error("attestation by oracle {0} does not verify")]
    BadAttestationSignature(String),
    /// Block time outside the attestation's window.
    #[error("attestation by oracle {0} is outside its time window")]
    AttestationOutsideWindow(String),
    /// The window is longer than the policy allows.
    #[error("attestation window of oracle {0} is longer than allowed")]
    AttestationWindowTooLong(String),
    /// The oracle's nonce was used before.
    #[error("attestation nonce {nonce} of oracle {oracle} was already used")]
    AttestationReplayed {
        /// The oracle.
        oracle: String,
        /// The nonce.
        nonce: u64,
    },
    /// Fewer attestations than the threshold.
    #[error("{got} oracle attestations; {needed} needed")]
    NotEnoughAttestations {
        /// Valid attestations.
        got: usize,
        /// Needed.
        needed: usize,
    },
    /// No such proposal.
    #[error("unknown proposal {0}")]
    UnknownProposal(String),
    /// The proposal was executed already.
    #[error("the proposal is closed")]
    ProposalClosed,
    /// The proposal's voting period is over.
    #[error("the proposal expired at height {0}")]
    ProposalExpired(Height),
    /// The agency voted already.
    #[error("agency {0} has already voted")]
    AlreadyVoted(AgencyId),
    /// The change cannot be carried out.
    #[error("invalid governance change: {0}")]
    InvalidChange(String),
    /// Removing an agency that still runs a validator.
    #[error("agency {0} still runs a validator")]
    AgencyRunsValidator(AgencyId),
    /// The agency's key history is full.
    #[error("agency {0} has no room for another key")]
    KeyHistoryFull(AgencyId),
    /// A kind registered under this name exists already.
    #[error("a kind named {0} is registered already")]
    KindNameTaken(String),
}

impl TxError {
    /// The stable numeric code. Never reuse or renumber one.
    pub fn code(&self) -> u32 {
        use TxError::*;
        match self {
            Malformed(_) => 1001,
            Oversized { .. } => 1002,
            WrongChain { .. } => 1101,
            BadSignature => 1102,
            UnknownAgency(_) => 1103,
            AgencyRemoved(_) => 1104,
            KeyNotAuthorized(_) => 1105,
            NonceReplayed { .. } => 1106,
            NonceTooHigh { .. } => 1107,
            TxExpired { .. } => 1108,
            WeakKey => 1109,
            NotAccredited { .. } => 1201,
            NotIssuer(_) => 1202,
            NotApprover(_) => 1203,
            NotAccreditor(_) => 1204,
            NotValidatorAgency(_) => 1205,
            UnknownCertificate(_) => 1301,
            AlreadyExists(_) => 1302,
            AlreadyRevoked => 1303,
            AlreadySuperseded => 1304,
            PendingApproval => 1305,
            NotPending => 1306,
            AlreadyApproved(_) => 1307,
            InvalidValidity(_) => 1308,
            TermsMismatch(_) => 1309,
            KindMismatch { .. } => 1310,
            MortgageActive => 1311,
            UnknownMortgage => 1312,
            DuplicateMortgage => 1313,
            EventNotAllowed { .. } => 1314,
            UnknownKind(_) => 1315,
            SupersedeNotAllowed(_) => 1316,
            BatchNotAllowed(_) => 1320,
            BatchSize { .. } => 1321,
            UnknownBatch(_) => 1322,
            BadBatchProof => 1323,
            UnknownOracle(_) => 1401,
            DuplicateOracle(_) => 1402,
            BadAttestationSignature(_) => 1403,
            AttestationOutsideWindow(_) => 1404,
            AttestationWindowTooLong(_) => 1405,
            AttestationReplayed { .. } => 1406,
            NotEnoughAttestations { .. } => 1407,
            UnknownProposal(_) => 1501,
            ProposalClosed => 1502,
            ProposalExpired(_) => 1503,
            AlreadyVoted(_) => 1504,
            InvalidChange(_) => 1505,
            AgencyRunsValidator(_) => 1506,
            KeyHistoryFull(_) => 1507,
            KindNameTaken(_) => 1508,
        }
    }

    /// A stable machine name, e.g. `nonce_replayed`.
    pub fn name(&self) -> &'static str {
        use TxError::*;
        match self {
            Malformed(_) => "malformed",
            Oversized { .. } => "oversized",
            WrongChain { .. } => "wrong_chain",
            BadSignature => "bad_signature",
            UnknownAgency(_) => "unknown_agency",
            AgencyRemoved(_) => "agency_removed",
            KeyNotAuthorized(_) => "key_not_authorized",
            NonceReplayed { .. } => "nonce_replayed",
            NonceTooHigh { .. } => "nonce_too_high",
            TxExpired { .. } => "tx_expired",
            WeakKey => "weak_key",
            NotAccredited { .. } => "not_accredited",
            NotIssuer(_) => "not_issuer",
            NotApprover(_) => "not_approver",
            NotAccreditor(_) => "not_accreditor",
            NotValidatorAgency(_) => "not_validator_agency",
            UnknownCertificate(_) => "unknown_certificate",
            AlreadyExists(_) => "already_exists",
            AlreadyRevoked => "already_revoked",
            AlreadySuperseded => "already_superseded",
            PendingApproval => "pending_approval",
            NotPending => "not_pending",
            AlreadyApproved(_) => "already_approved",
            InvalidValidity(_) => "invalid_validity",
            TermsMismatch(_) => "terms_mismatch",
            KindMismatch { .. } => "kind_mismatch",
            MortgageActive => "mortgage_active",
            UnknownMortgage => "unknown_mortgage",
            DuplicateMortgage => "duplicate_mortgage",
            EventNotAllowed { .. } => "event_not_allowed",
            UnknownKind(_) => "unknown_kind",
            SupersedeNotAllowed(_) => "supersede_not_allowed",
            BatchNotAllowed(_) => "batch_not_allowed",
            BatchSize { .. } => "batch_size",
            UnknownBatch(_) => "unknown_batch",
            BadBatchProof => "bad_batch_proof",
            UnknownOracle(_) => "unknown_oracle",
            DuplicateOracle(_) => "duplicate_oracle",
            BadAttestationSignature(_) => "bad_attestation_signature",
            AttestationOutsideWindow(_) => "attestation_outside_window",
            AttestationWindowTooLong(_) => "attestation_window_too_long",
            AttestationReplayed { .. } => "attestation_replayed",
            NotEnoughAttestations { .. } => "not_enough_attestations",
            UnknownProposal(_) => "unknown_proposal",
            ProposalClosed => "proposal_closed",
            ProposalExpired(_) => "proposal_expired",
            AlreadyVoted(_) => "already_voted",
            InvalidChange(_) => "invalid_change",
            AgencyRunsValidator(_) => "agency_runs_validator",
            KeyHistoryFull(_) => "key_history_full",
            KindNameTaken(_) => "kind_name_taken",
        }
    }
}

/// A transaction did not apply: refused by the rules, or the state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Refused. From [`crate::Executor::apply`]: the transaction cannot be in the block and
    /// nothing changed. From an action's rules: it is refused in the block.
    #[error(transparent)]
    Rejected(#[from] TxError),
    /// Storage failed: fatal for the node, not the transaction's fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A block that cannot follow its parent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Header fields do not follow the parent or do not match the content.
    #[error("invalid header: {0}")]
    Header(String),
    /// A transaction in the block cannot be there (its envelope fails).
    #[error("transaction {index} is refused: {error}")]
    Tx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The state root after execution differs from the header's.
    #[error("state root mismatch: header {header}, computed {computed}")]
    StateRoot {
        /// In the header.
        header: String,
        /// Computed.
        computed: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
