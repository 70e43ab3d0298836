//! Algorithm-tagged keys and signatures, and the one signing rule of the chain.
//!
//! Every signature covers a 32-byte message `H_signing(purpose || u8(len(chain_id)) ||
//! chain_id || body)`, where `purpose` is a [`SignPurpose`] tag. A signature made for one
//! purpose or one chain is worthless for any other.
//!
//! Verification is ed25519 *strict* (RFC 8032 with canonical `S`, no small-order `R` or `A`).
//! Keys are also checked when they are registered: a key with a torsion component is refused
//! ([`PublicKey::check_acceptable`]), so that strict single verification and batch verification
//! cannot disagree about a signature made by a registered key.
//!
//! Keys and signatures carry an algorithm tag (Borsh enum), so a post-quantum scheme can be
//! added as a new variant without a format break.

use crate::codec::encode;
use crate::hash::{Domain, Hash32};
use crate::ids::ChainId;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// What a signature is for. The tag byte is part of the signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SignPurpose {
    /// A transaction body.
    Transaction = 1,
    /// An oracle's attestation of an external fact.
    OracleAttestation = 2,
    /// A consensus vote (used by the node).
    Vote = 3,
    /// A consensus proposal or a proposal stream (used by the node).
    Proposal = 4,
    /// A validator's proof that a libp2p peer id is its node (used by the node).
    ValidatorProof = 5,
    /// A vote extension (used by the node).
    VoteExtension = 6,
}

/// The 32-byte message an ed25519 signature covers for `purpose` on `chain_id`.
pub fn signing_message(purpose: SignPurpose, chain_id: &ChainId, body: &[u8]) -> Hash32 {
    let id = chain_id.as_str().as_bytes();
    Domain::Signing.hash_parts(&[&[purpose as u8], &[id.len() as u8], id, body])
}

/// A public key, tagged with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub enum PublicKey {
    /// An ed25519 public key (32 bytes, compressed Edwards point).
    Ed25519([u8; 32]),
}

/// A signature, tagged with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Signature {
    /// An ed25519 signature (`R || S`, 64 bytes).
    Ed25519([u8; 64]),
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key bytes are not a valid point, or the point is weak (small order or torsion).
    #[error(
        "public key is not an acceptable ed25519 key (invalid, small-order or not torsion-free)"
    )]
    WeakKey,
    /// The signature does not verify under the strict rule.
    #[error("signature does not verify")]
    BadSignature,
    /// Text is not a key or signature.
    #[error("cannot parse {0}")]
    Parse(&'static str),
}

impl PublicKey {
    /// Refuse keys that are not valid, are of small order, or have a torsion component.
    /// Applied when a key is registered (genesis, governance, oracle sets).
    pub fn check_acceptable(&self) -> Result<(), CryptoError> {
        match self {
            PublicKey::Ed25519(bytes) => {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map_err(|_| CryptoError::WeakKey)?;
                if vk.is_weak() || !vk.to_edwards().is_torsion_free() {
                    return Err(CryptoError::WeakKey);
                }
                Ok(())
            }
        }
    }

    /// Strictly verify `signature` over the 32-byte `message`.
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        match (self, signature) {
            (PublicKey::Ed25519(key), Signature::Ed25519(sig)) => {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(key)
                    .map_err(|_| CryptoError::BadSignature)?;
                let sig = ed25519_dalek::Signature::from_bytes(sig);
                vk.verify_strict(message.as_bytes(), &sig)
                    .map_err(|_| CryptoError::BadSignature)
            }
        }
    }

    /// Verify a signature made for `purpose` on `chain_id` over `body`.
    pub fn verify_for(
        &self,
        purpose: SignPurpose,
        chain_id: &ChainId,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        self.verify(&signing_message(purpose, chain_id, body), signature)
    }

    /// Lowercase hex of the key bytes, prefixed with the algorithm: `ed25519:<64 hex>`.
    pub fn to_text(&self) -> String {
        match self {
            PublicKey::Ed25519(b) => format!("ed25519:{}", hex::encode(b)),
        }
    }

    /// A short fingerprint for logs and tables.
    pub fn short(&self) -> String {
        match self {
            PublicKey::Ed25519(b) => hex::encode(&b[..6]),
        }
    }
}

/// Verify many `(key, message, signature)` triples. Uses ed25519 batch verification when every
/// key has passed [`PublicKey::check_acceptable`]; if the batch fails, checks one by one so the
/// result names the first bad item. Returns `Err(index)` of the first bad signature.
pub fn verify_many(items: &[(PublicKey, Hash32, Signature)]) -> Result<(), usize> {
    if items.len() >= 2 {
        let mut messages = Vec::with_capacity(items.len());
        let mut sigs = Vec::with_capacity(items.len());
        let mut keys = Vec::with_capacity(items.len());
        let mut parsed = true;
        for (key, msg, sig) in items {
            let (PublicKey::Ed25519(k), Signature::Ed25519(s)) = (key, sig);
            match ed25519_dalek::VerifyingKey::from_bytes(k) {
                Ok(vk) => keys.push(vk),
                Err(_) => {
                    parsed = false;
                    break;
                }
            }
            messages.push(msg.as_bytes().as_slice());
            sigs.push(ed25519_dalek::Signature::from_bytes(s));
        }
        if parsed && ed25519_dalek::verify_batch(&messages, &sigs, &keys).is_ok() {
            // A passing batch still gets the strict rule's extra checks (canonical S is checked
            // by the batch; small-order R is not).
            if items.iter().all(|(_, _, sig)| r_is_not_small_order(sig)) {
                return Ok(());
            }
        }
    }
    for (i, (key, msg, sig)) in items.iter().enumerate() {
        key.verify(msg, sig).map_err(|_| i)?;
    }
    Ok(())
}

fn r_is_not_small_order(sig: &Signature) -> bool {
    let Signature::Ed25519(bytes) = sig;
    let mut r = [0u8; 32];
    r.copy_from_slice(&bytes[..32]);
    match ed25519_dalek::VerifyingKey::from_bytes(&r) {
        Ok(point) => !point.is_weak(),
        Err(_) => false,
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for PublicKey {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        let hexpart = s.strip_prefix("ed25519:").unwrap_or(s);
        let mut b = [0u8; 32];
        hex::decode_to_slice(hexpart, &mut b).map_err(|_| CryptoError::Parse("public key"))?;
        Ok(PublicKey::Ed25519(b))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Signature {
    /// `ed25519:<128 hex>`.
    pub fn to_text(&self) -> String {
        match self {
            Signature::Ed25519(b) => format!("ed25519:{}", hex::encode(b)),
        }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Signature {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        let hexpart = s.strip_prefix("ed25519:").unwrap_or(s);
        let mut b = [0u8; 64];
        hex::decode_to_slice(hexpart, &mut b).map_err(|_| CryptoError::Parse("signature"))?;
        Ok(Signature::Ed25519(b))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A secret signing key. Never encoded into chain objects; files hold its 32-byte seed.
#[derive(Clone)]
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system provides randomness");
        SecretKey::from_seed(&seed)
    }

    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A deterministic development key derived from a public name. Anyone can recompute it:
    /// only for the example consortium and tests.
    pub fn dev(name: &str) -> SecretKey {
        SecretKey::from_seed(Domain::DevKey.hash(name.as_bytes()).as_bytes())
    }

    /// The 32-byte seed, for writing a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::Ed25519(self.0.verifying_key().to_bytes())
    }

    /// Sign a 32-byte message.
    pub fn sign(&self, message: &Hash32) -> Signature {
        Signature::Ed25519(self.0.sign(message.as_bytes()).to_bytes())
    }

    /// Sign `body` for `purpose` on `chain_id`.
    pub fn sign_for(&self, purpose: SignPurpose, chain_id: &ChainId, body: &[u8]) -> Signature {
        self.sign(&signing_message(purpose, chain_id, body))
    }

    /// Sign the canonical encoding of `value`.
    pub fn sign_value<T: BorshSerialize>(
        &self,
        purpose: SignPurpose,
        chain_id: &ChainId,
        value: &T,
    ) -> Signature {
        self.sign_for(purpose, chain_id, &encode(value))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> ChainId {
        ChainId::new("test-chain").unwrap()
    }

    #[test]
    fn sign_and_verify_with_domain_and_chain_separation() {
        let sk = SecretKey::dev("a");
        let pk = sk.public();
        pk.check_acceptable().unwrap();
        let sig = sk.sign_for(SignPurpose::Transaction, &chain(), b"body");
        pk.verify_for(SignPurpose::Transaction, &chain(), b"body", &sig)
            .unwrap();
        let other_chain = ChainId::new("other").unwrap();
        assert!(
            pk.verify_for(SignPurpose::Transaction, &other_chain, b"body", &sig)
                .is_err()
        );
        assert!(
            pk.verify_for(SignPurpose::OracleAttestation, &chain(), b"body", &sig)
                .is_err()
        );
        assert!(
            pk.verify_for(SignPurpose::Transaction, &chain(), b"bodz", &sig)
                .is_err()
        );
    }

    #[test]
    fn small_order_and_torsion_keys_are_refused() {
        // The identity point (small order).
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(
            PublicKey::Ed25519(id).check_acceptable(),
            Err(CryptoError::WeakKey)
        );
        // A valid key plus a point of order 8 has a torsion component.
        let honest = SecretKey::dev("b").public();
        let PublicKey::Ed25519(hb) = honest;
        let a = ed25519_dalek::VerifyingKey::from_bytes(&hb)
            .unwrap()
            .to_edwards();
        let torsion = ed25519_dalek::VerifyingKey::from_bytes(&[
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ])
        .unwrap()
        .to_edwards();
        let mixed = PublicKey::Ed25519((a + torsion).compress().to_bytes());
        assert_eq!(mixed.check_acceptable(), Err(CryptoError::WeakKey));
    }

    #[test]
    fn verify_many_finds_the_bad_one() {
        let keys: Vec<SecretKey> = (0..5).map(|i| SecretKey::dev(&format!("k{i}"))).collect();
        let mut items: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let m = Domain::TxId.hash(&[i as u8]);
                (k.public(), m, k.sign(&m))
            })
            .collect();
        assert_eq!(verify_many(&items), Ok(()));
        items[3].1 = Domain::TxId.hash(b"other");
        assert_eq!(verify_many(&items), Err(3));
    }

    #[test]
    fn text_forms_round_trip() {
        let sk = SecretKey::dev("c");
        let pk = sk.public();
        assert_eq!(pk.to_text().parse::<PublicKey>().unwrap(), pk);
        let sig = sk.sign(&Hash32::ZERO);
        assert_eq!(sig.to_text().parse::<Signature>().unwrap(), sig);
    }
}
