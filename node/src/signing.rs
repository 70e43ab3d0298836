//! Signing and verifying consensus messages with a validator's ed25519 key.
//!
//! Each message kind has its own signing purpose in [`cachet_chain::crypto::signing_message`]
//! and carries the chain id, so a vote can never be replayed as a proposal, as a transaction,
//! or on another chain. The key signs through [`ValidatorKey`]: held in memory, or in a token
//! (an HSM) that the caller opened, whose private half the node never sees.

use crate::context::{CachetContext, OrdSignature, Proposal, Vote};
use async_trait::async_trait;
use cachet_chain::crypto::{PublicKey, SecretKey, SignPurpose, Signature, signing_message};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::ChainId;
use malachite_app::types::core::SigningScheme as _;
use malachite_app::types::core::{SignedMessage, ValidatorProof, VoteExtensionScope};
use malachite_signing::{Error, Signer, VerificationResult, Verifier};

type SignResult<T> = Result<T, Error>;

fn proposal_bytes(p: &Proposal) -> Vec<u8> {
    borsh::to_vec(p).expect("in-memory encoding cannot fail")
}

fn extension_bytes(scope: &VoteExtensionScope<CachetContext>, ext: &[u8]) -> Vec<u8> {
    borsh::to_vec(&(
        scope.height,
        scope.round,
        scope.value_id,
        scope.validator_address,
        ext,
    ))
    .expect("in-memory encoding cannot fail")
}

/// A validator's consensus key, as the node signs with it: a key in memory, or one held in a
/// token (an HSM) that signs each message on request.
pub trait ValidatorKey: Send + Sync {
    /// Its public key: the validator's address in the set.
    fn public(&self) -> PublicKey;
    /// Sign a signing message (`cachet_chain::crypto::signing_message`); a token that cannot
    /// says why.
    fn sign(&self, message: &Hash32) -> Result<Signature, String>;
}

impl ValidatorKey for SecretKey {
    fn public(&self) -> PublicKey {
        SecretKey::public(self)
    }

    fn sign(&self, message: &Hash32) -> Result<Signature, String> {
        Ok(SecretKey::sign(self, message))
    }
}

/// A validator key shared by the consensus signer and the proposer.
pub type SharedValidatorKey = std::sync::Arc<dyn ValidatorKey>;

/// Sign `body` for `purpose` on `chain_id` with `key`; a token's failure becomes Malachite's
/// signing error (its source says what the token said).
fn sign_for(
    key: &dyn ValidatorKey,
    purpose: SignPurpose,
    chain_id: &ChainId,
    body: &[u8],
) -> SignResult<Signature> {
    key.sign(&signing_message(purpose, chain_id, body))
        .map_err(|e| Error::from_source(format!("the validator key cannot sign: {e}")))
}

/// Signs this validator's consensus messages.
pub struct ConsensusSigner {
    key: SharedValidatorKey,
    chain_id: ChainId,
    /// Votes signed so far: the operator's sign that this node votes (Malachite asks only a
    /// member of the current validator set).
    votes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ConsensusSigner {
    /// A signer for `chain_id` with the validator's consensus key.
    pub fn new(key: SharedValidatorKey, chain_id: ChainId) -> Self {
        ConsensusSigner {
            key,
            chain_id,
            votes: Default::default(),
        }
    }

    /// Count the votes signed in `votes`.
    pub fn counting_votes(mut self, votes: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.votes = votes;
        self
    }
}

/// Verifies consensus messages for one chain.
#[derive(Clone)]
pub struct ConsensusVerifier {
    chain_id: ChainId,
}

impl ConsensusVerifier {
    /// A verifier for `chain_id`.
    pub fn new(chain_id: ChainId) -> Self {
        ConsensusVerifier { chain_id }
    }
}

/// The signature a proposer puts on the last part of its block stream.
pub fn sign_parts(
    key: &dyn ValidatorKey,
    chain_id: &ChainId,
    parts_hash: &cachet_chain::Hash32,
) -> Result<cachet_chain::Signature, String> {
    key.sign(&signing_message(
        SignPurpose::Proposal,
        chain_id,
        parts_hash.as_bytes(),
    ))
}

/// Check a block stream's last-part signature.
pub fn verify_parts(
    key: &PublicKey,
    chain_id: &ChainId,
    parts_hash: &cachet_chain::Hash32,
    signature: &cachet_chain::Signature,
) -> bool {
    key.verify_for(
        SignPurpose::Proposal,
        chain_id,
        parts_hash.as_bytes(),
        signature,
    )
    .is_ok()
}

#[async_trait]
impl Signer<CachetContext> for ConsensusSigner {
    async fn sign_vote(&self, vote: Vote) -> SignResult<SignedMessage<CachetContext, Vote>> {
        let sig = sign_for(
            &*self.key,
            SignPurpose::Vote,
            &self.chain_id,
            &vote.sign_bytes(),
        )?;
        self.votes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(SignedMessage::new(vote, OrdSignature(sig)))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> SignResult<SignedMessage<CachetContext, Proposal>> {
        // Proposals and proposal parts share a purpose, but the bodies differ in length and
        // shape (a Borsh proposal versus a 32-byte parts hash), so they cannot collide.
        let sig = sign_for(
            &*self.key,
            SignPurpose::Proposal,
            &self.chain_id,
            &proposal_bytes(&proposal),
        )?;
        Ok(SignedMessage::new(proposal, OrdSignature(sig)))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<CachetContext>,
        extension: Vec<u8>,
    ) -> SignResult<SignedMessage<CachetContext, Vec<u8>>> {
        let sig = sign_for(
            &*self.key,
            SignPurpose::VoteExtension,
            &self.chain_id,
            &extension_bytes(&scope, &extension),
        )?;
        Ok(SignedMessage::new(extension, OrdSignature(sig)))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> SignResult<ValidatorProof<CachetContext>> {
        let bytes = ValidatorProof::<CachetContext>::signing_bytes(&public_key, &peer_id);
        let sig = sign_for(
            &*self.key,
            SignPurpose::ValidatorProof,
            &self.chain_id,
            &bytes,
        )?;
        Ok(ValidatorProof::new(public_key, peer_id, OrdSignature(sig)))
    }
}

fn result(ok: bool) -> VerificationResult {
    VerificationResult::from_bool(ok)
}

#[async_trait]
impl Verifier<CachetContext> for ConsensusVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &OrdSignature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        Ok(result(
            public_key
                .verify_for(
                    SignPurpose::Vote,
                    &self.chain_id,
                    &vote.sign_bytes(),
                    &signature.0,
                )
                .is_ok(),
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &OrdSignature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        let msg = signing_message(
            SignPurpose::Proposal,
            &self.chain_id,
            &proposal_bytes(proposal),
        );
        Ok(result(public_key.verify(&msg, &signature.0).is_ok()))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<CachetContext>,
        extension: &Vec<u8>,
        signature: &OrdSignature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        let msg = signing_message(
            SignPurpose::VoteExtension,
            &self.chain_id,
            &extension_bytes(scope, extension),
        );
        Ok(result(public_key.verify(&msg, &signature.0).is_ok()))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<CachetContext>,
    ) -> SignResult<VerificationResult> {
        let Ok(key) = crate::context::Ed25519Scheme::decode_public_key(&proof.public_key) else {
            return Ok(result(false));
        };
        let msg = signing_message(
            SignPurpose::ValidatorProof,
            &self.chain_id,
            &proof.preimage(),
        );
        Ok(result(key.verify(&msg, &proof.signature.0).is_ok()))
    }
}
