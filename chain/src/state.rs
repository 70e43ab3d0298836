//! What the authenticated state holds: its keys ([`StateKey`]) and the records stored under
//! them. Values are the canonical encodings of these records.

use crate::codec::{self, DecodeError, bounded_vec, limits};
use crate::crypto::PublicKey;
use crate::document::{CertId, Commitment};
use crate::hash::{Domain, Hash32};
use crate::ids::{AgencyId, CertKind, ChainId, Height, KindName, Timestamp};
use crate::tx::{BatchId, GovernanceChange, ProposalId, RevocationReason};

pub use crate::ids::Name;
pub use crate::policy::{AgencyList, EventNames, KeyList, KindDefinition, KindPolicy};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A key of the authenticated state. Its tree path is `H_state_key(encode(key))`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub enum StateKey {
    /// [`ChainParams`].
    Params,
    /// The current [`ValidatorSet`].
    Validators,
    /// An [`AgencyRecord`].
    Agency(AgencyId),
    /// The [`KindPolicy`] of a kind.
    Policy(CertKind),
    /// An [`Accreditation`] of an agency for a kind.
    Accreditation(CertKind, AgencyId),
    /// A [`CertificateRecord`].
    Certificate(CertId),
    /// A [`BatchRecord`].
    Batch(BatchId),
    /// A [`RevocationRecord`] for one entry of a batch, by position.
    BatchRevocation(BatchId, u32),
    /// An [`OracleNonceUse`]: this oracle nonce has been consumed.
    OracleNonce(PublicKey, u64),
    /// A governance [`Proposal`].
    Proposal(ProposalId),
    /// How many kinds governance has registered (a `u16`; absent while none): the next one
    /// is `CertKind::Registered(that number)`.
    RegisteredKinds,
    /// The registered kind (a [`CertKind`]) that took this name.
    KindByName(KindName),
}

impl StateKey {
    /// The tree path of this key.
    pub fn hash(&self) -> Hash32 {
        Domain::StateKey.hash(&codec::encode(self))
    }
}

/// Decode a state value (already authenticated or read from our own store).
pub fn decode_value<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    codec::decode(bytes, limits::MAX_STATE_VALUE_BYTES)
}

/// Chain-wide parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainParams {
    /// The chain id every transaction must carry.
    pub chain_id: ChainId,
    /// Heights a governance proposal stays open.
    pub proposal_ttl: u64,
    /// Every block whose height is a multiple of this is a *checkpoint*: every node keeps its
    /// trust anchor, so that a verifier can pin it and take receipts that carry only the
    /// validator-set changes after it.
    pub checkpoint_interval: u64,
}

bounded_vec!(
    /// The members of a validator set.
    ValidatorList,
    Validator,
    limits::MAX_SET_LEN
);
bounded_vec!(
    /// An agency's keys, oldest first.
    KeyHistory,
    KeyEpoch,
    limits::MAX_KEY_HISTORY
);
bounded_vec!(
    /// Approvals of a pending certificate.
    ApprovalList,
    Approval,
    limits::MAX_SET_LEN
);
bounded_vec!(
    /// Active mortgages on a land title.
    MortgageList,
    Hash32,
    limits::MAX_SET_LEN
);

/// One consensus validator.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Validator {
    /// The agency that runs it (one vote per agency in governance).
    pub agency: AgencyId,
    /// Its consensus key.
    pub key: PublicKey,
    /// Its voting power in consensus.
    pub power: u64,
}

/// The validators, sorted by key; no key twice.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// Members, sorted by key.
    pub validators: ValidatorList,
}

impl ValidatorSet {
    /// A set from members in any order; `None` if a key repeats, a power is 0, or it is empty.
    pub fn new(mut validators: Vec<Validator>) -> Option<ValidatorSet> {
        validators.sort_by_key(|v| v.key);
        let distinct = validators.windows(2).all(|w| w[0].key != w[1].key);
        let powered = validators.iter().all(|v| v.power > 0);
        if validators.is_empty() || !distinct || !powered {
            return None;
        }
        Some(ValidatorSet {
            validators: ValidatorList::new(validators).ok()?,
        })
    }

    /// `H_validator_set(encode(self))`, committed in every block header.
    pub fn hash(&self) -> Hash32 {
        Domain::ValidatorSet.hash(&codec::encode(self))
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    /// The agencies running at least one validator, sorted, each once.
    pub fn agencies(&self) -> Vec<AgencyId> {
        let mut a: Vec<AgencyId> = self.validators.iter().map(|v| v.agency.clone()).collect();
        a.sort();
        a.dedup();
        a
    }

    /// The member with this key.
    pub fn get(&self, key: &PublicKey) -> Option<&Validator> {
        self.validators.iter().find(|v| v.key == *key)
    }
}

/// A key an agency held, and when.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct KeyEpoch {
    /// The key.
    pub key: PublicKey,
    /// First height at which it signs.
    pub from: Height,
    /// The height it was retired at (by a rotation or the agency's removal); `None` while
    /// current. Transactions of that height that ran before the retiring one were signed with
    /// it, so it is still valid at `until` itself.
    pub until: Option<Height>,
}

/// A registered agency.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AgencyRecord {
    /// Its id.
    pub id: AgencyId,
    /// Display name.
    pub name: Name,
    /// Every key it has held, oldest first; the last is current unless the agency is removed.
    pub keys: KeyHistory,
    /// The nonce its next transaction must carry.
    pub next_nonce: u64,
    /// Height of registration.
    pub registered_at: Height,
    /// Height of removal, if removed.
    pub removed_at: Option<Height>,
}

impl AgencyRecord {
    /// The key that signs now, if the agency is active.
    pub fn current_key(&self) -> Option<&PublicKey> {
        if self.removed_at.is_some() {
            return None;
        }
        self.keys
            .last()
            .filter(|e| e.until.is_none())
            .map(|e| &e.key)
    }
}

/// An agency may issue a kind.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Accreditation {
    /// Since this height.
    pub since: Height,
    /// Granted by this accreditor (or `None` at genesis).
    pub by: Option<AgencyId>,
}

/// An approval of a pending certificate.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Approval {
    /// The approving agency.
    pub agency: AgencyId,
    /// When.
    pub at: Height,
}

/// Where a certificate stands.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CertStatus {
    /// Issued, waiting for approvals.
    Pending,
    /// In force (within its validity window, which verifiers check against time).
    Active,
    /// Revoked.
    Revoked {
        /// At this height.
        at: Height,
        /// At this block time.
        time: Timestamp,
        /// By this agency.
        by: AgencyId,
        /// Why.
        reason: RevocationReason,
    },
    /// Replaced by a successor.
    Superseded {
        /// The successor.
        by: CertId,
        /// At this height.
        at: Height,
        /// At this block time.
        time: Timestamp,
    },
}

/// Kind-specific terms kept on the record (licence attestations are checked, not kept).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordTerms {
    /// None.
    Plain,
    /// Land title over a parcel commitment.
    LandTitle {
        /// The parcel commitment.
        parcel: Hash32,
    },
    /// A copyright deposit.
    WorkDeposit,
    /// A licence.
    License {
        /// The licensed work.
        work: CertId,
        /// Commitment to the licensee.
        licensee: Hash32,
        /// Granted rights.
        scope: u32,
    },
}

/// Everything the chain knows about one certificate. It holds neither its id, which is its
/// state key and follows from its kind and commitment ([`CertificateRecord::id`]), nor the key
/// that signed its issuance: the chain checked that key when it ran the transaction, which the
/// block keeps. Every certificate pays for what a record repeats, once per node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// Its kind.
    pub kind: CertKind,
    /// The issuing agency.
    pub issuer: AgencyId,
    /// The document commitment.
    pub commitment: Commitment,
    /// Issued at this height.
    pub issued_at: Height,
    /// Issued at this block time.
    pub issued_time: Timestamp,
    /// Valid from (inclusive).
    pub valid_from: Option<Timestamp>,
    /// Valid until (exclusive).
    pub valid_until: Option<Timestamp>,
    /// Kind-specific terms.
    pub terms: RecordTerms,
    /// Current status.
    pub status: CertStatus,
    /// The certificate this one replaces.
    pub supersedes: Option<CertId>,
    /// Approvals so far.
    pub approvals: ApprovalList,
    /// Active mortgages (land titles).
    pub mortgages: MortgageList,
    /// Height of the last change to this record.
    pub updated_at: Height,
}

/// A Merkle batch of certificates. Like a [`CertificateRecord`], it holds neither its id
/// ([`BatchRecord::id`]) nor the issuing key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Kind of every entry.
    pub kind: CertKind,
    /// The issuing agency.
    pub issuer: AgencyId,
    /// Merkle root over the entries.
    pub root: Hash32,
    /// Number of entries.
    pub leaf_count: u32,
    /// How many entries are revoked. While none is, an entry's receipt needs no proof that its
    /// own revocation record is absent.
    pub revoked: u32,
    /// Issued at this height.
    pub issued_at: Height,
    /// Issued at this block time.
    pub issued_time: Timestamp,
    /// Valid from (inclusive), every entry.
    pub valid_from: Option<Timestamp>,
    /// Valid until (exclusive), every entry.
    pub valid_until: Option<Timestamp>,
}

impl CertificateRecord {
    /// Its id, `H_cert_id(kind ‖ commitment)`: the key it is stored under.
    pub fn id(&self) -> CertId {
        CertId::derive(self.kind, &self.commitment)
    }
}

impl BatchRecord {
    /// Its id, `H_batch_id(kind ‖ root ‖ leaf_count)`: the key it is stored under.
    pub fn id(&self) -> BatchId {
        BatchId::derive(self.kind, &self.root, self.leaf_count)
    }
}

/// A revoked batch entry.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// The entry's commitment.
    pub commitment: Commitment,
    /// At this height.
    pub at: Height,
    /// At this block time.
    pub time: Timestamp,
    /// By this agency.
    pub by: AgencyId,
    /// Why.
    pub reason: RevocationReason,
}

/// An oracle nonce was consumed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OracleNonceUse {
    /// At this height.
    pub at: Height,
}

/// Whether a proposal still takes votes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Taking votes until `expires_at`.
    Open,
    /// Reached two thirds and was carried out at this height.
    Executed {
        /// The height.
        at: Height,
    },
}

/// A governance proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id (the proposing transaction's id).
    pub id: ProposalId,
    /// The proposing agency.
    pub proposer: AgencyId,
    /// The change.
    pub change: GovernanceChange,
    /// Validator agencies that voted for it, sorted.
    pub votes: AgencyList,
    /// Proposed at this height.
    pub created_at: Height,
    /// Last height at which it takes votes.
    pub expires_at: Height,
    /// Open or executed.
    pub status: ProposalStatus,
}
