//! Signed transactions: the envelope every write goes through, and the actions it can carry.
//!
//! The envelope binds the chain id, the signing agency and its key, a per-agency nonce (replay
//! protection: it must equal the agency's next nonce) and an expiry height. The signature covers
//! the canonical body under [`SignPurpose::Transaction`].

use crate::codec::{self, DecodeError, bounded_vec, limits};
use crate::crypto::{CryptoError, PublicKey, SecretKey, SignPurpose, Signature, signing_message};
use crate::document::{CertId, Commitment};
use crate::hash::{Domain, Hash32};
use crate::ids::Name;
use crate::ids::{AgencyId, CertKind, ChainId, EventName, Height, Timestamp};
use crate::merkle::BatchProof;
use crate::policy::KindPolicy;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

crate::hash::hash_newtype!(
    /// A transaction id: the hash of the canonical body (the signature is not part of it).
    TxId
);

/// A governance proposal is named by the id of the transaction that made it.
pub type ProposalId = TxId;

crate::hash::hash_newtype!(
    /// Identity of a Merkle batch: `H_batch_id(kind_tag || root || u32(leaf_count))`.
    BatchId
);

impl BatchId {
    /// The id of a `kind` batch with this root and size.
    pub fn derive(kind: CertKind, root: &Hash32, leaf_count: u32) -> BatchId {
        BatchId(Domain::BatchId.hash_parts(&[
            &codec::encode(&kind),
            root.as_bytes(),
            &leaf_count.to_le_bytes(),
        ]))
    }
}

/// The leaf of a certificate batch for `commitment`: `blake3(0x00 || commitment)`.
pub fn batch_leaf(commitment: &Commitment) -> Hash32 {
    crate::merkle::leaf_hash(commitment.0.as_bytes())
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Transaction {
    /// What is signed.
    pub body: TxBody,
    /// Signature by `body.key` over `body` for [`SignPurpose::Transaction`] on `body.chain_id`.
    pub signature: Signature,
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxBody {
    /// The chain this transaction is for.
    pub chain_id: ChainId,
    /// The agency acting.
    pub signer: AgencyId,
    /// The agency key that signs; must be the agency's current key.
    pub key: PublicKey,
    /// Must equal the agency's next nonce; each accepted transaction advances it by one.
    pub nonce: u64,
    /// Last height at which this transaction may be included.
    pub expires_at: Height,
    /// What to do.
    pub action: Action,
}

impl TxBody {
    /// Sign this body with `key`.
    pub fn sign(self, key: &SecretKey) -> Transaction {
        let signature = key.sign(&signing_message(
            SignPurpose::Transaction,
            &self.chain_id,
            &codec::encode(&self),
        ));
        Transaction {
            body: self,
            signature,
        }
    }
}

impl Transaction {
    /// Decode one transaction from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Transaction, DecodeError> {
        codec::decode(bytes, limits::MAX_TX_BYTES)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        TxId(Domain::TxId.hash(&codec::encode(&self.body)))
    }

    /// The 32-byte message the signature must cover.
    pub fn signing_message(&self) -> Hash32 {
        signing_message(
            SignPurpose::Transaction,
            &self.body.chain_id,
            &codec::encode(&self.body),
        )
    }

    /// Check the signature (strict ed25519) against the key in the body. Whether that key
    /// belongs to the signer is a state question, answered by the contracts.
    pub fn verify_signature(&self) -> Result<(), CryptoError> {
        self.body
            .key
            .verify(&self.signing_message(), &self.signature)
    }
}

/// Why a certificate or batch entry is revoked.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// Issued by mistake.
    IssuedInError,
    /// Cancelled by the issuer (withdrawn application, cancelled order).
    Cancelled,
    /// Obtained by fraud.
    Fraud,
    /// Ordered by a court.
    CourtOrder,
    /// Any other reason, kept off chain.
    Other,
}

/// A change of certificate state, signed by an agency.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Issue one certificate.
    Issue(Issuance),
    /// Issue many certificates of one kind as a Merkle root over their commitments.
    IssueBatch(BatchIssuance),
    /// Replace an active certificate with a new one (land-title transfer, permit amendment).
    Supersede {
        /// The certificate being replaced.
        previous: CertId,
        /// Its successor.
        next: Issuance,
    },
    /// Revoke a certificate.
    Revoke {
        /// The certificate.
        id: CertId,
        /// Why.
        reason: RevocationReason,
    },
    /// Revoke one certificate inside a batch, proven by its inclusion proof.
    RevokeBatchEntry {
        /// The entry.
        entry: BatchEntry,
        /// Why.
        reason: RevocationReason,
    },
    /// Approve a pending certificate (M-of-N kinds such as investment permits).
    Approve {
        /// The pending certificate.
        id: CertId,
    },
    /// Record a lifecycle event on an active certificate.
    RecordEvent {
        /// The certificate.
        id: CertId,
        /// The event.
        event: CertEvent,
    },
    /// Accredit an agency to issue a kind (by an accreditor of that kind), registering the
    /// agency first when `registration` is given.
    Accredit {
        /// The kind.
        kind: CertKind,
        /// The agency.
        agency: AgencyId,
        /// Name and key of an agency not yet registered.
        registration: Option<AgencyRegistration>,
    },
    /// Withdraw an agency's accreditation for a kind (by an accreditor of that kind).
    Unaccredit {
        /// The kind.
        kind: CertKind,
        /// The agency.
        agency: AgencyId,
    },
    /// Propose a governance change (by a validator agency; counts as its vote).
    Propose {
        /// The change.
        change: GovernanceChange,
    },
    /// Vote for an open governance proposal (by a validator agency).
    Vote {
        /// The proposal.
        proposal: ProposalId,
    },
}

/// Name and first key of a newly registered agency.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AgencyRegistration {
    /// Display name.
    pub name: Name,
    /// Its signing key.
    pub key: PublicKey,
}

/// One certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Issuance {
    /// The kind; decides which rules apply.
    pub kind: CertKind,
    /// Salted commitment to the document.
    pub commitment: Commitment,
    /// Valid from this time (inclusive), if bounded.
    pub valid_from: Option<Timestamp>,
    /// Valid until this time (exclusive), if bounded.
    pub valid_until: Option<Timestamp>,
    /// Kind-specific terms.
    pub terms: Terms,
}

impl Issuance {
    /// The id the certificate will have.
    pub fn cert_id(&self) -> CertId {
        CertId::derive(self.kind, &self.commitment)
    }
}

/// Kind-specific terms of an issuance.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terms {
    /// No extra terms.
    Plain,
    /// A land title over a parcel (commitment to the parcel reference; transfers keep it).
    LandTitle {
        /// Commitment to the land parcel (section and lot number).
        parcel: Hash32,
    },
    /// A copyright deposit of a work.
    WorkDeposit,
    /// A licence to use a deposited work, with the oracle attestations it needs.
    License(LicenseTerms),
}

/// Terms of a cultural-content licence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct LicenseTerms {
    /// The deposited work (a `cultural-license` certificate with `WorkDeposit` terms).
    pub work: CertId,
    /// Commitment to the licensee's identity.
    pub licensee: Hash32,
    /// Rights granted, as [`LicenseScope`] bits.
    pub scope: u32,
    /// Oracle attestations over [`license_statement`].
    pub attestations: Attestations,
}

/// Bits of [`LicenseTerms::scope`].
pub struct LicenseScope;

impl LicenseScope {
    /// Make copies.
    pub const REPRODUCE: u32 = 1 << 0;
    /// Distribute copies.
    pub const DISTRIBUTE: u32 = 1 << 1;
    /// Make derivative works.
    pub const ADAPT: u32 = 1 << 2;
    /// Show or perform in public.
    pub const PUBLIC_DISPLAY: u32 = 1 << 3;
    /// Use commercially.
    pub const COMMERCIAL: u32 = 1 << 4;
    /// Every defined bit.
    pub const ALL: u32 = 0b1_1111;
}

bounded_vec!(
    /// Oracle attestations in one transaction, at most [`limits::MAX_ATTESTATIONS`].
    Attestations,
    OracleAttestation,
    limits::MAX_ATTESTATIONS
);

/// What an oracle attests to for a licence grant: `H_license_statement(work || commitment ||
/// licensee || u32(scope) || option(valid_from) || option(valid_until))`, Borsh-encoded parts.
pub fn license_statement(
    work: &CertId,
    commitment: &Commitment,
    licensee: &Hash32,
    scope: u32,
    valid_from: Option<Timestamp>,
    valid_until: Option<Timestamp>,
) -> Hash32 {
    Domain::LicenseStatement.hash(&codec::encode(&(
        work,
        commitment,
        licensee,
        scope,
        valid_from,
        valid_until,
    )))
}

/// An oracle's signed, nonce-bound, time-windowed statement.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OracleAttestation {
    /// The oracle's key (must be in the kind's oracle set).
    pub oracle: PublicKey,
    /// Fresh per attestation; each `(oracle, nonce)` is accepted once, ever.
    pub nonce: u64,
    /// Not valid before this time.
    pub not_before: Timestamp,
    /// Not valid at or after this time.
    pub not_after: Timestamp,
    /// Signature over [`AttestationBody`] for [`SignPurpose::OracleAttestation`].
    pub signature: Signature,
}

/// What an oracle signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AttestationBody {
    /// The statement attested.
    pub statement: Hash32,
    /// See [`OracleAttestation::nonce`].
    pub nonce: u64,
    /// See [`OracleAttestation::not_before`].
    pub not_before: Timestamp,
    /// See [`OracleAttestation::not_after`].
    pub not_after: Timestamp,
}

impl OracleAttestation {
    /// Attest `statement` with `key`.
    pub fn sign(
        key: &SecretKey,
        chain_id: &ChainId,
        statement: Hash32,
        nonce: u64,
        not_before: Timestamp,
        not_after: Timestamp,
    ) -> OracleAttestation {
        let body = AttestationBody {
            statement,
            nonce,
            not_before,
            not_after,
        };
        OracleAttestation {
            oracle: key.public(),
            nonce,
            not_before,
            not_after,
            signature: key.sign_value(SignPurpose::OracleAttestation, chain_id, &body),
        }
    }

    /// Check the signature over `statement`.
    pub fn verify(&self, chain_id: &ChainId, statement: &Hash32) -> Result<(), CryptoError> {
        let body = AttestationBody {
            statement: *statement,
            nonce: self.nonce,
            not_before: self.not_before,
            not_after: self.not_after,
        };
        self.oracle.verify_for(
            SignPurpose::OracleAttestation,
            chain_id,
            &codec::encode(&body),
            &self.signature,
        )
    }
}

/// Many certificates of one kind, anchored as one Merkle root. Leaf `i` is
/// [`batch_leaf`] of the `i`-th commitment; the issuer keeps the list and hands each holder
/// their commitment's salt and inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BatchIssuance {
    /// The kind of every certificate in the batch.
    pub kind: CertKind,
    /// Merkle root over the leaves.
    pub root: Hash32,
    /// Number of leaves.
    pub leaf_count: u32,
    /// Valid from this time, for every entry.
    pub valid_from: Option<Timestamp>,
    /// Valid until this time, for every entry.
    pub valid_until: Option<Timestamp>,
}

impl BatchIssuance {
    /// The batch id.
    pub fn batch_id(&self) -> BatchId {
        BatchId::derive(self.kind, &self.root, self.leaf_count)
    }
}

/// One certificate inside a batch, with the proof that it is there.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The batch.
    pub batch: BatchId,
    /// The certificate's commitment (leaf = [`batch_leaf`] of it).
    pub commitment: Commitment,
    /// Inclusion proof; its index is the entry's position.
    pub proof: BatchProof,
}

/// A lifecycle event recorded on an active certificate.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertEvent {
    /// A mortgage is registered on a land title (抵押權設定).
    MortgageSet {
        /// Commitment to the mortgage registration (creditor, amount, registration number).
        mortgage: Hash32,
    },
    /// A mortgage is cancelled (抵押權塗銷).
    MortgageCancelled {
        /// The mortgage's commitment, as set.
        mortgage: Hash32,
    },
    /// One of the named events a registered kind's policy allows (say `suspended`), with a
    /// commitment to its particulars (the case file, the decision).
    Named {
        /// The event, as the kind's policy names it.
        name: EventName,
        /// Commitment to its particulars.
        detail: Hash32,
    },
}

/// A change the validator agencies decide together (by at least two thirds of them).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovernanceChange {
    /// Register an agency.
    AddAgency {
        /// Its id.
        id: AgencyId,
        /// Name and key.
        registration: AgencyRegistration,
    },
    /// Remove an agency: its key stops signing. It must run no validator.
    RemoveAgency {
        /// Its id.
        id: AgencyId,
    },
    /// Replace an agency's key; the old key stays in its history.
    RotateAgencyKey {
        /// The agency.
        id: AgencyId,
        /// The new key.
        key: PublicKey,
    },
    /// Replace the policy of a kind.
    SetKindPolicy {
        /// The kind.
        kind: CertKind,
        /// The new policy.
        policy: KindPolicy,
    },
    /// Add a validator run by an agency.
    AddValidator {
        /// The operating agency.
        agency: AgencyId,
        /// The validator's consensus key.
        key: PublicKey,
        /// Voting power, at least 1.
        power: u64,
    },
    /// Remove a validator.
    RemoveValidator {
        /// Its consensus key.
        key: PublicKey,
    },
    /// Register a new certificate kind: it becomes `CertKind::Registered(n)`, `n` the number of
    /// kinds registered before it, with this policy (whose definition names it).
    AddKind {
        /// Its policy, definition included.
        policy: KindPolicy,
    },
}
