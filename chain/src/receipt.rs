//! Receipts: a self-contained proof of a certificate's status as of a committed height, that a
//! verifier checks with this crate alone, trusting only a root it pinned (the consortium's
//! genesis or a later checkpoint, see [`crate::trust`]).
//!
//! A receipt carries the block header of height `h`, at least two thirds of the voting power's
//! precommit signatures for it, and state proofs against its state root: the certificate record
//! (with its lineage and approvals) or the proof that no such certificate exists; for an entry
//! of a Merkle batch, the batch record, the entry's inclusion proof and, once the batch has
//! revocations, the proof of the entry's own; and, when asked for, the issuing agency's record
//! (for its name). The byte format is in `docs/spec/receipt.md`.

use crate::block::BlockHeader;
use crate::codec::{self, DecodeError, bounded_vec, limits};
use crate::crypto::{PublicKey, SignPurpose, Signature, signing_message};
use crate::document::{CertId, Commitment, Fingerprint, Salt};
use crate::hash::Hash32;
use crate::ids::{AgencyId, CertKind, ChainId, Height, Timestamp};
use crate::merkle::BatchProof;
use crate::state::{
    AgencyRecord, BatchRecord, CertStatus, CertificateRecord, KindDefinition, KindPolicy,
    RevocationRecord, StateKey, ValidatorSet, decode_value,
};
use crate::state_tree::{StateProof, value_hash};
use crate::trust::{PolicyProof, Trust};
use crate::tx::batch_leaf;
use crate::verdict::{Verdict, batch_entry_verdict, certificate_verdict};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::Serialize;

/// The receipt format version of a receipt about a built-in kind, or about no certificate.
pub const RECEIPT_VERSION: u8 = 1;
/// The version of a receipt about a kind registered by governance: version 1's fields, then
/// the kind's policy, proven in the same state (so that a verifier that never heard of the kind
/// reads its name and its maximum receipt age from the receipt itself).
pub const RECEIPT_VERSION_WITH_POLICY: u8 = 2;
/// Largest encoded receipt accepted.
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;

/// The bytes a validator's precommit for block `block_hash` at `height`/`round` signs:
/// `u64(height) ‖ 0x01 ‖ u32(round) ‖ 0x01 ‖ block_hash ‖ 0x01 ‖ 0x00 ‖ key(32)`
/// (Borsh of the node's vote: height, `Round::Some`, `NilOrVal::Val`, `VoteType::Precommit`,
/// the validator's tagged key), signed under [`SignPurpose::Vote`].
pub fn precommit_bytes(
    height: Height,
    round: u32,
    block_hash: &Hash32,
    validator: &PublicKey,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + 5 + 33 + 1 + 33);
    b.extend_from_slice(&height.0.to_le_bytes());
    b.push(1);
    b.extend_from_slice(&round.to_le_bytes());
    b.push(1);
    b.extend_from_slice(block_hash.as_bytes());
    b.push(1);
    b.extend_from_slice(&codec::encode(validator));
    b
}

/// The message a precommit signature covers.
pub fn precommit_message(
    chain_id: &ChainId,
    height: Height,
    round: u32,
    block_hash: &Hash32,
    validator: &PublicKey,
) -> Hash32 {
    signing_message(
        SignPurpose::Vote,
        chain_id,
        &precommit_bytes(height, round, block_hash, validator),
    )
}

bounded_vec!(
    /// Commit signatures by position in the signing validator set.
    CommitSignatures,
    CommitSignature,
    limits::MAX_SET_LEN
);

/// One validator's precommit signature.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
pub struct CommitSignature {
    /// Position of the validator in the set (sorted by key).
    pub validator: u16,
    /// Its signature over [`precommit_message`].
    pub signature: Signature,
}

/// The precommits that committed a block.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
pub struct CommitProof {
    /// The round the block was decided in.
    pub round: u32,
    /// Signatures, in increasing validator position.
    pub signatures: CommitSignatures,
}

bounded_vec!(
    /// The certificates a certificate replaced, newest first.
    Lineage,
    LineageHop,
    MAX_LINEAGE
);

/// Most earlier certificates a receipt carries.
pub const MAX_LINEAGE: usize = 64;

/// One certificate a receipt's certificate replaced (directly or through others), proven in
/// the same state.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
pub struct LineageHop {
    /// Encoded [`CertificateRecord`].
    pub record: Vec<u8>,
    /// Membership proof of `StateKey::Certificate(its id)`.
    pub proof: StateProof,
}

impl Lineage {
    /// The certificates `record` replaced, newest first (at most [`MAX_LINEAGE`]), each read
    /// with `prove`: a certificate's stored value and its proof in the state. Stops where a
    /// predecessor is missing or does not decode (a verifier then sees the lineage end there).
    pub fn collect<E>(
        record: &CertificateRecord,
        mut prove: impl FnMut(CertId) -> Result<(Option<Vec<u8>>, StateProof), E>,
    ) -> Result<Lineage, E> {
        let mut hops = Vec::new();
        let mut previous = record.supersedes;
        while let Some(id) = previous {
            if hops.len() == MAX_LINEAGE {
                break;
            }
            let (Some(bytes), proof) = prove(id)? else {
                break;
            };
            let Ok(r) = decode_value::<CertificateRecord>(&bytes) else {
                break;
            };
            previous = r.supersedes;
            hops.push(LineageHop {
                record: bytes,
                proof,
            });
        }
        Ok(Lineage(hops))
    }
}

/// What the receipt is about.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Subject {
    /// A certificate: its record and the proof of it.
    Certificate {
        /// Encoded [`CertificateRecord`].
        record: Vec<u8>,
        /// Membership proof of `StateKey::Certificate(id)`.
        proof: StateProof,
        /// The certificates it replaced, newest first, when asked for (a land title's chain
        /// of transfers): each superseded by the one before it.
        lineage: Lineage,
    },
    /// No certificate with this id exists.
    Absent {
        /// The id asked about.
        id: CertId,
        /// Non-membership proof of `StateKey::Certificate(id)`.
        proof: StateProof,
    },
    /// One entry of a Merkle batch.
    BatchEntry {
        /// Encoded [`BatchRecord`].
        batch: Vec<u8>,
        /// Membership proof of `StateKey::Batch(id)`.
        batch_proof: StateProof,
        /// The entry's commitment.
        commitment: Commitment,
        /// Its inclusion proof in the batch root.
        inclusion: BatchProof,
        /// Whether the entry is revoked.
        revocation: EntryRevocation,
    },
}

/// Whether a batch entry is revoked, proven.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum EntryRevocation {
    /// The batch record counts no revoked entry: nothing more to prove.
    NoneInBatch,
    /// The entry's revocation record.
    Revoked {
        /// Encoded [`RevocationRecord`].
        record: Vec<u8>,
        /// Membership proof of `StateKey::BatchRevocation(batch id, index)`.
        proof: StateProof,
    },
    /// The batch has revocations, but not this entry.
    NotRevoked {
        /// Non-membership proof of `StateKey::BatchRevocation(batch id, index)`.
        proof: StateProof,
    },
}

impl EntryRevocation {
    /// What a receipt for an entry of `batch` carries: nothing while the batch counts no
    /// revoked entry, else what `prove` finds under the entry's `BatchRevocation` key (its
    /// record and proof, or the proof that it has none).
    pub fn for_entry<E>(
        batch: &BatchRecord,
        prove: impl FnOnce() -> Result<(Option<Vec<u8>>, StateProof), E>,
    ) -> Result<EntryRevocation, E> {
        if batch.revoked == 0 {
            return Ok(EntryRevocation::NoneInBatch);
        }
        Ok(match prove()? {
            (Some(record), proof) => EntryRevocation::Revoked { record, proof },
            (None, proof) => EntryRevocation::NotRevoked { proof },
        })
    }
}

/// The issuing agency's record, proven: it names the agency. (Which key signed the issuance
/// is the chain's check, made when it ran the transaction.)
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct IssuerProof {
    /// Encoded [`AgencyRecord`].
    pub agency: Vec<u8>,
    /// Membership proof of `StateKey::Agency(id)`.
    pub proof: StateProof,
}

/// A receipt. Its encoding is Borsh of the fields in order, `kind_policy` only in a version
/// [`RECEIPT_VERSION_WITH_POLICY`] receipt (and then without an option tag): a receipt about a
/// built-in kind is byte for byte what it was before kinds could be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// [`RECEIPT_VERSION`], or [`RECEIPT_VERSION_WITH_POLICY`] exactly when `kind_policy` is
    /// there.
    pub version: u8,
    /// The committed header the proofs are against.
    pub header: BlockHeader,
    /// Its precommits.
    pub commit: CommitProof,
    /// What is proven.
    pub subject: Subject,
    /// The issuer's record, when the receipt was asked with it (never for [`Subject::Absent`]).
    pub issuer: Option<IssuerProof>,
    /// How the signing validator set follows from the trusted one: every block after the
    /// trusted height that changed the set, in height order.
    pub transitions: Transitions,
    /// For a certificate or batch of a registered kind, that kind's policy in the same state.
    pub kind_policy: Option<PolicyProof>,
}

impl BorshSerialize for Receipt {
    fn serialize<W: borsh::io::Write>(&self, w: &mut W) -> borsh::io::Result<()> {
        let with_policy = self.version == RECEIPT_VERSION_WITH_POLICY;
        if with_policy != self.kind_policy.is_some() {
            return Err(codec::invalid(format!(
                "a version {} receipt {} a kind policy",
                self.version,
                if with_policy {
                    "needs"
                } else {
                    "has no place for"
                }
            )));
        }
        BorshSerialize::serialize(&self.version, w)?;
        BorshSerialize::serialize(&self.header, w)?;
        BorshSerialize::serialize(&self.commit, w)?;
        BorshSerialize::serialize(&self.subject, w)?;
        BorshSerialize::serialize(&self.issuer, w)?;
        BorshSerialize::serialize(&self.transitions, w)?;
        if let Some(policy) = &self.kind_policy {
            BorshSerialize::serialize(policy, w)?;
        }
        Ok(())
    }
}

impl BorshDeserialize for Receipt {
    fn deserialize_reader<R: borsh::io::Read>(r: &mut R) -> borsh::io::Result<Self> {
        let version = u8::deserialize_reader(r)?;
        if version != RECEIPT_VERSION && version != RECEIPT_VERSION_WITH_POLICY {
            return Err(codec::invalid(format!("unknown receipt version {version}")));
        }
        Ok(Receipt {
            version,
            header: BlockHeader::deserialize_reader(r)?,
            commit: CommitProof::deserialize_reader(r)?,
            subject: Subject::deserialize_reader(r)?,
            issuer: Option::<IssuerProof>::deserialize_reader(r)?,
            transitions: Transitions::deserialize_reader(r)?,
            kind_policy: match version {
                RECEIPT_VERSION_WITH_POLICY => Some(PolicyProof::deserialize_reader(r)?),
                _ => None,
            },
        })
    }
}

/// A block that changed the validator set: signed by the set before, naming the set after.
#[derive(
    Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
pub struct Transition {
    /// The block's header (`next_validators_hash` names the new set).
    pub header: BlockHeader,
    /// Its precommits, by the set before.
    pub commit: CommitProof,
    /// The new set.
    pub next: ValidatorSet,
}

bounded_vec!(
    /// Validator-set changes in a receipt.
    Transitions,
    Transition,
    limits::MAX_SET_LEN
);

impl Receipt {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode a receipt from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, DecodeError> {
        codec::decode(bytes, MAX_RECEIPT_BYTES)
    }
}

/// Why a receipt proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// Another chain.
    #[error("the receipt is for chain {got}, the trusted chain is {expected}")]
    WrongChain {
        /// Trusted.
        expected: ChainId,
        /// In the receipt.
        got: ChainId,
    },
    /// Signed by a validator set that is not the trusted one.
    #[error("the block was signed by a validator set that is not the trusted one")]
    UntrustedValidators,
    /// A commit signature is bad, repeated or from no validator.
    #[error("bad commit: {0}")]
    BadCommit(String),
    /// Less than two thirds of the voting power signed.
    #[error("only {signed} of {total} voting power signed the block")]
    InsufficientPower {
        /// Signed power.
        signed: u64,
        /// Total power.
        total: u64,
    },
    /// A proof does not lead to the block's state root.
    #[error("proof does not verify: {0}")]
    BadProof(&'static str),
    /// Older than the kind's maximum receipt age.
    #[error("the receipt is {age_ms} ms old; {kind} receipts are trusted for {max_ms} ms")]
    TooOld {
        /// Kind (or "unknown").
        kind: String,
        /// Age.
        age_ms: u64,
        /// Allowed.
        max_ms: u64,
    },
}

/// What a verified receipt says.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The verdict at the verifier's time.
    pub verdict: Verdict,
    /// The certificate id, or `batch#index` for a batch entry.
    pub id: String,
    /// Its kind (none for an unknown certificate).
    pub kind: Option<CertKind>,
    /// For a kind registered by governance, its definition (its names), from the policy the
    /// receipt carries.
    pub kind_definition: Option<KindDefinition>,
    /// The issuing agency.
    pub issuer: Option<AgencyId>,
    /// Its name, when the receipt carries its record.
    pub issuer_name: Option<String>,
    /// The height the proof is as of.
    pub height: Height,
    /// The block time the proof is as of.
    pub as_of: Timestamp,
    /// The certificate record, when there is one.
    pub record: Option<CertificateRecord>,
    /// The certificates it replaced that the receipt carries, newest first, with their ids.
    pub lineage: Vec<(CertId, CertificateRecord)>,
    /// The batch record, for a batch entry.
    pub batch: Option<BatchRecord>,
    /// The revocation of a batch entry.
    pub revocation: Option<RevocationRecord>,
    /// Whether the given document opens the certificate's commitment (when one was given).
    pub document_matches: Option<bool>,
}

fn decode_record<T: BorshDeserialize>(bytes: &[u8], what: &'static str) -> Result<T, ReceiptError> {
    decode_value(bytes).map_err(|e| ReceiptError::Malformed(format!("{what}: {e}")))
}

fn check_member(
    root: &Hash32,
    key: StateKey,
    value: &[u8],
    proof: &StateProof,
    what: &'static str,
) -> Result<(), ReceiptError> {
    if proof.verify_membership(root, &key.hash(), &value_hash(value)) {
        Ok(())
    } else {
        Err(ReceiptError::BadProof(what))
    }
}

/// Check that `header` is committed: its `commit` carries more than two thirds of the validator
/// set that `transitions` lead to from the trusted genesis set. This is the part of [`verify`]
/// that every receipt at one height shares.
pub fn check_head(
    header: &BlockHeader,
    commit: &CommitProof,
    transitions: &Transitions,
    trust: &Trust,
) -> Result<(), ReceiptError> {
    if header.height <= trust.height {
        return Err(ReceiptError::BadCommit(format!(
            "the block is at height {}, not above the trusted height {}",
            header.height, trust.height
        )));
    }
    let mut current = trust.validators.clone();
    let mut after = trust.height;
    for t in transitions.iter() {
        if t.header.height <= after || t.header.height >= header.height {
            return Err(ReceiptError::BadCommit(
                "validator-set changes out of order".into(),
            ));
        }
        check_signed(&t.header, &t.commit, &current, trust)?;
        if t.next.hash() != t.header.next_validators_hash {
            return Err(ReceiptError::BadProof("validator-set change"));
        }
        current = t.next.clone();
        after = t.header.height;
    }
    check_signed(header, commit, &current, trust)
}

/// Check that more than two thirds of `validators` signed `h`.
fn check_signed(
    h: &BlockHeader,
    commit: &CommitProof,
    validators: &ValidatorSet,
    trust: &Trust,
) -> Result<(), ReceiptError> {
    if h.chain_id != trust.chain_id {
        return Err(ReceiptError::WrongChain {
            expected: trust.chain_id.clone(),
            got: h.chain_id.clone(),
        });
    }
    if h.validators_hash != validators.hash() {
        return Err(ReceiptError::UntrustedValidators);
    }
    let set = &validators.validators;
    let block_hash = h.hash();
    let mut signed = 0u64;
    let mut last: Option<u16> = None;
    for (i, s) in commit.signatures.iter().enumerate() {
        if last.is_some_and(|l| s.validator <= l) {
            return Err(ReceiptError::BadCommit(
                "signatures must be in increasing validator order".into(),
            ));
        }
        last = Some(s.validator);
        let v = set.get(s.validator as usize).ok_or_else(|| {
            ReceiptError::BadCommit(format!("no validator at position {}", s.validator))
        })?;
        // One by one under the strict rule, never as a batch: batch verification is
        // cofactored and accepts signatures the strict rule refuses, and every implementation of
        // the receipt spec must accept exactly the same receipts.
        let message = precommit_message(&h.chain_id, h.height, commit.round, &block_hash, &v.key);
        v.key
            .verify(&message, &s.signature)
            .map_err(|_| ReceiptError::BadCommit(format!("signature {i} does not verify")))?;
        signed += v.power;
    }
    let total = validators.total_power();
    if signed.saturating_mul(3) <= total.saturating_mul(2) {
        return Err(ReceiptError::InsufficientPower { signed, total });
    }
    Ok(())
}

/// Check a certificate's lineage: each hop proven in the state, the certificate the one before
/// it (starting with `record`, whose id is `id`) replaced, and superseded by it.
fn check_lineage(
    root: &Hash32,
    id: CertId,
    record: &CertificateRecord,
    lineage: &Lineage,
) -> Result<Vec<(CertId, CertificateRecord)>, ReceiptError> {
    let mut out = Vec::with_capacity(lineage.len());
    let (mut next_id, mut replaced) = (id, record.supersedes);
    for (i, hop) in lineage.iter().enumerate() {
        let r: CertificateRecord = decode_record(&hop.record, "lineage record")?;
        let hop_id = r.id();
        check_member(
            root,
            StateKey::Certificate(hop_id),
            &hop.record,
            &hop.proof,
            "lineage record",
        )?;
        let names_next = matches!(r.status, CertStatus::Superseded { by, .. } if by == next_id);
        if replaced != Some(hop_id) || !names_next {
            return Err(ReceiptError::Malformed(format!(
                "the lineage is broken at hop {i}: {hop_id} is not the certificate {next_id} replaced"
            )));
        }
        (next_id, replaced) = (hop_id, r.supersedes);
        out.push((hop_id, r));
    }
    Ok(out)
}

/// The issuer's name, from its record if the receipt carries one (proven, and the agency the
/// record names).
fn issuer_name(
    root: &Hash32,
    issuer: &Option<IssuerProof>,
    agency: &AgencyId,
) -> Result<Option<String>, ReceiptError> {
    let Some(proof) = issuer else {
        return Ok(None);
    };
    check_member(
        root,
        StateKey::Agency(agency.clone()),
        &proof.agency,
        &proof.proof,
        "issuer record",
    )?;
    let record: AgencyRecord = decode_record(&proof.agency, "issuer record")?;
    if record.id != *agency {
        return Err(ReceiptError::Malformed(
            "the issuer record is another agency's".into(),
        ));
    }
    Ok(Some(record.name.as_str().to_owned()))
}

/// The policy of a registered `kind` that `receipt` carries, checked against the state `root`;
/// `None` for a built-in kind or no certificate, whose receipts carry none.
fn kind_policy(
    root: &Hash32,
    kind: Option<CertKind>,
    receipt: &Receipt,
) -> Result<Option<KindPolicy>, ReceiptError> {
    let kind = kind.filter(|k| k.is_registered());
    let (kind, carried) = match (kind, &receipt.kind_policy) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(ReceiptError::Malformed(
                "the receipt carries a kind policy, but its certificate's kind is built in".into(),
            ));
        }
        (Some(kind), None) => {
            return Err(ReceiptError::Malformed(format!(
                "{kind} is registered by governance, and the receipt does not carry its policy"
            )));
        }
        (Some(kind), Some(carried)) => (kind, carried),
    };
    if carried.kind != kind {
        return Err(ReceiptError::Malformed(format!(
            "the receipt carries the policy of {}, not of {kind}",
            carried.kind
        )));
    }
    check_member(
        root,
        StateKey::Policy(kind),
        &carried.policy,
        &carried.proof,
        "kind policy",
    )?;
    let policy: KindPolicy = decode_record(&carried.policy, "kind policy")?;
    if policy.definition.is_none() {
        return Err(ReceiptError::Malformed(format!(
            "the policy of {kind} does not define it"
        )));
    }
    Ok(Some(policy))
}

/// Verifies many receipts against one trust, checking each distinct head (header, commit and
/// validator-set changes) once: receipts fetched at one height share it, and its signatures
/// are most of a receipt's cost. The answers are exactly [`verify`]'s.
pub struct Verifier<'a> {
    trust: &'a Trust,
    /// Digests of heads already checked.
    heads: std::collections::HashSet<Hash32>,
}

impl<'a> Verifier<'a> {
    /// A verifier trusting `trust`.
    pub fn new(trust: &'a Trust) -> Verifier<'a> {
        Verifier {
            trust,
            heads: Default::default(),
        }
    }

    /// [`verify`], sharing the head check with earlier receipts.
    pub fn verify(
        &mut self,
        receipt: &Receipt,
        now: Timestamp,
        document: Option<(&Fingerprint, &Salt)>,
    ) -> Result<Verified, ReceiptError> {
        // The head's bytes, not its header alone: another commit or other transitions with
        // the same header must be checked on their own.
        let mut h = blake3::Hasher::new();
        h.update(&codec::encode(&receipt.header));
        h.update(&codec::encode(&receipt.commit));
        h.update(&codec::encode(&receipt.transitions));
        let head = Hash32(*h.finalize().as_bytes());
        if !self.heads.contains(&head) {
            check_head(
                &receipt.header,
                &receipt.commit,
                &receipt.transitions,
                self.trust,
            )?;
            self.heads.insert(head);
        }
        verify_claims(receipt, self.trust, now, document)
    }

    /// How many distinct heads were checked.
    pub fn heads_checked(&self) -> usize {
        self.heads.len()
    }
}

/// Verify `receipt` against `trust` at the verifier's time `now`, optionally checking that a
/// document (its fingerprint and the certificate's salt) opens the certificate's commitment.
pub fn verify(
    receipt: &Receipt,
    trust: &Trust,
    now: Timestamp,
    document: Option<(&Fingerprint, &Salt)>,
) -> Result<Verified, ReceiptError> {
    check_head(
        &receipt.header,
        &receipt.commit,
        &receipt.transitions,
        trust,
    )?;
    verify_claims(receipt, trust, now, document)
}

/// The rest of [`verify`] once [`check_head`] has accepted the receipt's header and commit:
/// the version, the state proofs, the issuer's name, the verdict at `now` and the age limit.
/// On its own it proves nothing about the header; a node that checks its committed head once
/// per height uses it to check each receipt it serves.
pub fn verify_claims(
    receipt: &Receipt,
    trust: &Trust,
    now: Timestamp,
    document: Option<(&Fingerprint, &Salt)>,
) -> Result<Verified, ReceiptError> {
    if receipt.version != RECEIPT_VERSION && receipt.version != RECEIPT_VERSION_WITH_POLICY {
        return Err(ReceiptError::Malformed(format!(
            "unknown receipt version {}",
            receipt.version
        )));
    }
    let root = receipt.header.state_root;
    let as_of = receipt.header.time;
    let height = receipt.header.height;
    let opens = |c: &Commitment| document.map(|(fp, salt)| c.opens_to(fp, salt));
    let verified = match &receipt.subject {
        Subject::Certificate {
            record,
            proof,
            lineage,
        } => {
            let r: CertificateRecord = decode_record(record, "certificate record")?;
            let id = r.id();
            check_member(
                &root,
                StateKey::Certificate(id),
                record,
                proof,
                "certificate record",
            )?;
            let lineage = check_lineage(&root, id, &r, lineage)?;
            Verified {
                verdict: certificate_verdict(&r, now),
                id: id.to_string(),
                kind: Some(r.kind),
                kind_definition: None,
                issuer_name: issuer_name(&root, &receipt.issuer, &r.issuer)?,
                issuer: Some(r.issuer.clone()),
                height,
                as_of,
                document_matches: opens(&r.commitment),
                record: Some(r),
                lineage,
                batch: None,
                revocation: None,
            }
        }
        Subject::Absent { id, proof } => {
            if !proof.verify_absence(&root, &StateKey::Certificate(*id).hash()) {
                return Err(ReceiptError::BadProof("absence of the certificate"));
            }
            Verified {
                verdict: Verdict::Unknown,
                id: id.to_string(),
                kind: None,
                kind_definition: None,
                issuer: None,
                issuer_name: None,
                height,
                as_of,
                record: None,
                lineage: Vec::new(),
                batch: None,
                revocation: None,
                document_matches: None,
            }
        }
        Subject::BatchEntry {
            batch,
            batch_proof,
            commitment,
            inclusion,
            revocation,
        } => {
            let b: BatchRecord = decode_record(batch, "batch record")?;
            let id = b.id();
            check_member(
                &root,
                StateKey::Batch(id),
                batch,
                batch_proof,
                "batch record",
            )?;
            if !inclusion.verify(&b.root, b.leaf_count, &batch_leaf(commitment)) {
                return Err(ReceiptError::BadProof("inclusion in the batch"));
            }
            let rkey = StateKey::BatchRevocation(id, inclusion.index);
            let revoked: Option<RevocationRecord> = match revocation {
                EntryRevocation::NoneInBatch if b.revoked == 0 => None,
                EntryRevocation::NoneInBatch => {
                    return Err(ReceiptError::BadProof(
                        "the batch has revoked entries, but no proof for this one",
                    ));
                }
                EntryRevocation::Revoked { record, proof } => {
                    check_member(&root, rkey, record, proof, "revocation record")?;
                    Some(decode_record(record, "revocation record")?)
                }
                EntryRevocation::NotRevoked { proof } => {
                    if !proof.verify_absence(&root, &rkey.hash()) {
                        return Err(ReceiptError::BadProof("absence of a revocation"));
                    }
                    None
                }
            };
            Verified {
                verdict: batch_entry_verdict(&b, revoked.as_ref(), now),
                id: format!("{}#{}", id, inclusion.index),
                kind: Some(b.kind),
                kind_definition: None,
                issuer_name: issuer_name(&root, &receipt.issuer, &b.issuer)?,
                issuer: Some(b.issuer.clone()),
                height,
                as_of,
                document_matches: opens(commitment),
                record: None,
                lineage: Vec::new(),
                batch: Some(b),
                revocation: revoked,
            }
        }
    };
    let mut verified = verified;
    let registered = kind_policy(&root, verified.kind, receipt)?;
    let max = match &registered {
        Some(policy) => policy.max_receipt_age_ms,
        None => trust.max_age(verified.kind),
    };
    verified.kind_definition = registered.and_then(|p| p.definition);
    let age = now.0.saturating_sub(as_of.0);
    if age > max {
        return Err(ReceiptError::TooOld {
            kind: match (&verified.kind_definition, verified.kind) {
                (Some(d), _) => d.name.to_string(),
                (None, Some(k)) => k.to_string(),
                (None, None) => "unknown".into(),
            },
            age_ms: age,
            max_ms: max,
        });
    }
    Ok(verified)
}
