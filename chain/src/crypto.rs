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
                let vk = verifying_key(key).ok_or(CryptoError::BadSignature)?;
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
            match verifying_key(k) {
                Some(vk) => keys.push(vk),
                None => {
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

/// Most decoded keys kept by [`verifying_key`]; the consortium has a few thousand agencies.
const MAX_CACHED_KEYS: usize = 16_384;

/// The decoded (decompressed) ed25519 key. Decoding costs a field exponentiation, about a
/// sixth of a verification, and the same few agency keys sign everything, so decoded keys are
/// kept: a pure function's results, cleared when the table is full.
fn verifying_key(bytes: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    use crate::hash::DigestMap;
    use std::sync::{Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<DigestMap<[u8; 32], ed25519_dalek::VerifyingKey>>> =
        OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(vk) = keys.lock().unwrap_or_else(|p| p.into_inner()).get(bytes) {
        return Some(*vk);
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes).ok()?;
    let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
    if keys.len() >= MAX_CACHED_KEYS {
        keys.clear();
    }
    keys.insert(*bytes, vk);
    Some(vk)
}

/// Canonical encodings of the eight points of small order (the 8-torsion of edwards25519).
const TORSION: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Every 32-byte string that decodes to a point of small order: each torsion point's
/// encoding with either sign bit, and with `y + p` where that still fits in 255 bits — kept
/// only if ed25519-dalek decodes it to a small-order point, so the list can only agree with it.
fn small_order_encodings() -> &'static [[u8; 32]] {
    use std::sync::OnceLock;
    static LIST: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut out: Vec<[u8; 32]> = Vec::new();
        for hex_point in TORSION {
            let mut canonical = [0u8; 32];
            hex::decode_to_slice(hex_point, &mut canonical).expect("valid constant");
            let mut candidates = vec![canonical];
            // y + p, where p = 2^255 - 19: possible when y < 19.
            let y_is_small = canonical[1..31].iter().all(|b| *b == 0) && canonical[31] & 0x7f == 0;
            if y_is_small && canonical[0] < 19 {
                let mut plus_p = [0xffu8; 32];
                plus_p[0] = canonical[0] + 0xed;
                plus_p[31] = 0x7f | (canonical[31] & 0x80);
                candidates.push(plus_p);
            }
            for c in candidates.clone() {
                let mut flipped = c;
                flipped[31] ^= 0x80;
                candidates.push(flipped);
            }
            for c in candidates {
                let weak = ed25519_dalek::VerifyingKey::from_bytes(&c).is_ok_and(|k| k.is_weak());
                if weak && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    })
}

/// Strict verification refuses a small-order `R`; batch verification does not check it. The
/// check compares bytes with the known small-order encodings instead of decoding `R` again.
fn r_is_not_small_order(sig: &Signature) -> bool {
    let Signature::Ed25519(bytes) = sig;
    !small_order_encodings()
        .iter()
        .any(|weak| weak[..] == bytes[..32])
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
    fn the_torsion_seeds_are_the_eight_small_order_points() {
        let points: Vec<_> = TORSION
            .iter()
            .map(|h| {
                let mut b = [0u8; 32];
                hex::decode_to_slice(h, &mut b).unwrap();
                let k = ed25519_dalek::VerifyingKey::from_bytes(&b).unwrap();
                assert!(k.is_weak(), "{h}");
                k.to_edwards()
            })
            .collect();
        for i in 0..points.len() {
            for j in 0..i {
                assert_ne!(points[i], points[j], "seeds {i} and {j} are one point");
            }
        }
        let list = small_order_encodings();
        assert!(list.len() > 8, "non-canonical encodings are listed too");
        for e in list {
            let p = ed25519_dalek::VerifyingKey::from_bytes(e)
                .unwrap()
                .to_edwards();
            assert!(points.contains(&p));
        }
    }

    /// The byte comparison says "small order" exactly when decoding does: checked for every
    /// string whose y is below 256 or within 256 of p (where the identity, the order-2 and
    /// order-4 points and all their non-canonical forms live), either sign, and for the
    /// order-8 points (whose y is far from both, so each has just its two sign forms).
    #[test]
    fn the_small_order_check_agrees_with_decoding() {
        let oracle =
            |b: &[u8; 32]| ed25519_dalek::VerifyingKey::from_bytes(b).is_ok_and(|k| k.is_weak());
        let listed = |b: &[u8; 32]| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(b);
            !r_is_not_small_order(&Signature::Ed25519(sig))
        };
        let mut weak = 0;
        for fill in [0x00u8, 0xff] {
            for low in 0..=255u8 {
                for high in 0..=255u8 {
                    let mut b = [fill; 32];
                    b[0] = low;
                    b[31] = high;
                    assert_eq!(listed(&b), oracle(&b), "{}", hex::encode(b));
                    weak += usize::from(oracle(&b));
                }
            }
        }
        // The order-8 points: both signs are among the seeds already.
        for h in &TORSION[4..] {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b).unwrap();
            assert!(listed(&b) && oracle(&b), "{h}");
            weak += 1;
        }
        assert_eq!(weak, small_order_encodings().len());
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
