//! Cachet's types for Malachite: what a height, a value, a vote, a proposal and a validator are.
//!
//! The consensus *value* is the hash of a block: consensus agrees on a 32-byte id, and the block
//! itself travels as proposal parts that each validator re-assembles and re-executes before it
//! votes. Votes and proposals are signed with the validators' ed25519 consensus keys under their
//! own signing purposes and the chain id (see [`crate::signing`]).

use borsh::{BorshDeserialize, BorshSerialize};
use cachet_chain::crypto::{PublicKey, Signature};
use cachet_chain::hash::Hash32;
use cachet_chain::state::ValidatorSet as ChainValidatorSet;
use malachite_app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType,
};
use std::fmt;

/// The Malachite context of a Cachet chain.
#[derive(Clone, Debug, Default)]
pub struct CachetContext;

/// A block height (Malachite's view of [`cachet_chain::Height`]).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0 + n)
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its ed25519 consensus key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.short())
    }
}

impl mc::Address for Address {}

/// The id of a value: the block hash.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct BlockId(pub Hash32);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.0.to_hex()[..12])
    }
}

/// The value consensus decides on: a block, named by its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct BlockValue(pub BlockId);

impl mc::Value for BlockValue {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        self.0
    }
}

/// A vote (prevote or precommit).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The voter.
    pub validator: Address,
    /// Vote extension (unused by Cachet, carried for the engine).
    pub extension: Option<SignedExtension<CachetContext>>,
}

/// What a vote signature covers (the extension is signed separately).
#[derive(BorshSerialize)]
pub(crate) struct VoteSignBytes<'a> {
    pub height: Height,
    pub round: Round,
    pub value: &'a NilOrVal<BlockId>,
    pub vote_type: VoteType,
    pub validator: &'a Address,
}

impl Vote {
    /// The bytes a vote signature covers (see `cachet_chain::receipt::precommit_bytes`).
    pub fn sign_bytes(&self) -> Vec<u8> {
        borsh::to_vec(&VoteSignBytes {
            height: self.height,
            round: self.round,
            value: &self.value,
            vote_type: self.vote_type,
            validator: &self.validator,
        })
        .expect("in-memory encoding cannot fail")
    }
}

impl mc::Vote<CachetContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<CachetContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<CachetContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<CachetContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// A proposal: the proposer's signed statement of the block it proposes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The proposed block.
    pub value: BlockValue,
    /// Proof-of-lock round, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mc::Proposal<CachetContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A piece of a proposed block, streamed from the proposer to the other validators.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    /// First part: who proposes what, where.
    Init {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Proof-of-lock round.
        pol_round: Round,
        /// The proposer.
        proposer: Address,
        /// Total length of the encoded block.
        block_len: u32,
    },
    /// A chunk of the encoded block.
    Data(Vec<u8>),
    /// Last part: the proposer's signature over the hash of all previous parts.
    Fin {
        /// Signature under the proposer's consensus key.
        signature: Signature,
    },
}

impl mc::ProposalPart<CachetContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin { .. })
    }
}

/// A consensus validator.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    /// Its address (= its key).
    pub address: Address,
    /// Its consensus key.
    pub public_key: PublicKey,
    /// Its voting power.
    pub power: u64,
}

impl mc::Validator<CachetContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The validator set of one height, sorted by key (as in the chain state).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// The validators.
    pub validators: Vec<Validator>,
}

impl From<&ChainValidatorSet> for ValidatorSet {
    fn from(set: &ChainValidatorSet) -> Self {
        ValidatorSet {
            validators: set
                .validators
                .iter()
                .map(|v| Validator {
                    address: Address(v.key),
                    public_key: v.key,
                    power: v.power,
                })
                .collect(),
        }
    }
}

impl mc::ValidatorSet<CachetContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// Ed25519 through `cachet-chain`'s algorithm-tagged keys and signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Scheme;

/// A malformed key or signature.
#[derive(Debug)]
pub struct SchemeDecodeError(pub String);

impl fmt::Display for SchemeDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signature that orders (the engine keeps signatures in ordered maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct OrdSignature(pub Signature);

impl PartialOrd for OrdSignature {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdSignature {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (Signature::Ed25519(a), Signature::Ed25519(b)) = (self.0, other.0);
        a.cmp(&b)
    }
}

impl mc::SigningScheme for Ed25519Scheme {
    type DecodingError = SchemeDecodeError;
    type Signature = OrdSignature;
    type PublicKey = PublicKey;
    type PrivateKey = cachet_chain::crypto::SecretKey;

    fn decode_signature(bytes: &[u8]) -> Result<OrdSignature, SchemeDecodeError> {
        let b: [u8; 64] = bytes
            .try_into()
            .map_err(|_| SchemeDecodeError("signature must be 64 bytes".into()))?;
        Ok(OrdSignature(Signature::Ed25519(b)))
    }

    fn encode_signature(signature: &OrdSignature) -> Vec<u8> {
        let Signature::Ed25519(b) = signature.0;
        b.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, SchemeDecodeError> {
        let b: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SchemeDecodeError("public key must be 32 bytes".into()))?;
        Ok(PublicKey::Ed25519(b))
    }

    fn encode_public_key(key: &PublicKey) -> Vec<u8> {
        let PublicKey::Ed25519(b) = key;
        b.to_vec()
    }
}

impl mc::Context for CachetContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = Ed25519Scheme;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let n = validator_set.validators.len().max(1);
        let r = round.as_u32().unwrap_or(0) as u64;
        let index = (height.0.wrapping_add(r) % n as u64) as usize;
        &validator_set.validators[index]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            height,
            round,
            value: value_id,
            vote_type: VoteType::Prevote,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            height,
            round,
            value: value_id,
            vote_type: VoteType::Precommit,
            validator: address,
            extension: None,
        }
    }
}

/// A stored commit certificate (Malachite's, in Borsh) as a receipt's [`CommitProof`]: every
/// precommit by a member of `set` (the set that signed its height), by position in it.
pub(crate) fn commit_of(
    certificate: &[u8],
    set: &ChainValidatorSet,
) -> Result<cachet_chain::receipt::CommitProof, String> {
    let cert: malachite_app::types::core::CommitCertificate<CachetContext> =
        borsh::from_slice(certificate).map_err(|e| format!("certificate: {e}"))?;
    let mut signatures: Vec<cachet_chain::receipt::CommitSignature> = cert
        .commit_signatures
        .iter()
        .filter_map(|s| {
            let pos = set.validators.iter().position(|v| v.key == s.address.0)?;
            Some(cachet_chain::receipt::CommitSignature {
                validator: pos as u16,
                signature: s.signature.0,
            })
        })
        .collect();
    signatures.sort_by_key(|s| s.validator);
    let round = cert
        .round
        .as_u32()
        .ok_or_else(|| "certificate without a round".to_string())?;
    Ok(cachet_chain::receipt::CommitProof {
        round,
        signatures: cachet_chain::receipt::CommitSignatures::new(signatures)
            .map_err(|e| e.to_string())?,
    })
}
