//! Documents never go on chain. A document is reduced to a [`Fingerprint`] (SHA-256 or BLAKE3
//! of its bytes, tagged with the algorithm), and the chain stores a salted [`Commitment`] to that
//! fingerprint. The salt travels with the certificate (its QR code or file), so a holder can
//! prove which document a certificate is about, while nobody can confirm a guessed document from
//! the chain alone.

use crate::hash::{Domain, Hash32};
use crate::ids::CertKind;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The hash function a fingerprint was made with. SHA-256 is what browsers (WebCrypto) and
/// banks compute natively; BLAKE3 is faster on large files.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FingerprintAlg {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// BLAKE3, plain hash mode.
    Blake3,
}

/// The digest of a document's bytes, tagged with the algorithm.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Fingerprint {
    /// How the digest was made.
    pub alg: FingerprintAlg,
    /// The digest.
    pub digest: Hash32,
}

impl Fingerprint {
    /// Fingerprint `document` with `alg`.
    pub fn of(alg: FingerprintAlg, document: &[u8]) -> Fingerprint {
        let digest = match alg {
            FingerprintAlg::Sha256 => Hash32(sha2::Sha256::digest(document).into()),
            FingerprintAlg::Blake3 => Hash32(*blake3::hash(document).as_bytes()),
        };
        Fingerprint { alg, digest }
    }

    /// Fingerprint a stream (a file) with `alg` without holding it in memory.
    pub fn of_reader(
        alg: FingerprintAlg,
        mut reader: impl std::io::Read,
    ) -> std::io::Result<Fingerprint> {
        let mut buf = vec![0u8; 64 * 1024];
        let digest = match alg {
            FingerprintAlg::Sha256 => {
                let mut h = sha2::Sha256::new();
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Hash32(h.finalize().into())
            }
            FingerprintAlg::Blake3 => {
                let mut h = blake3::Hasher::new();
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Hash32(*h.finalize().as_bytes())
            }
        };
        Ok(Fingerprint { alg, digest })
    }
}

/// 32 random bytes chosen by the issuer for one certificate.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Salt(pub Hash32);

impl Salt {
    /// A fresh salt from the operating system's randomness.
    pub fn random() -> Salt {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the operating system provides randomness");
        Salt(Hash32(b))
    }
}

crate::hash::hash_newtype!(
    /// What the chain stores about a document: `H_commitment(alg_tag || digest || salt)`.
    Commitment
);

impl Commitment {
    /// Commit to `fingerprint` with `salt`.
    pub fn new(fingerprint: &Fingerprint, salt: &Salt) -> Commitment {
        Commitment(
            Domain::Commitment.hash_parts(&[&crate::codec::encode(fingerprint), salt.0.as_bytes()]),
        )
    }

    /// Does `fingerprint` with `salt` open this commitment?
    pub fn opens_to(&self, fingerprint: &Fingerprint, salt: &Salt) -> bool {
        Commitment::new(fingerprint, salt) == *self
    }
}

crate::hash::hash_newtype!(
    /// The identity of a certificate: `H_cert_id(kind_tag || commitment)`. Anyone holding the
    /// document and its salt can recompute it offline.
    CertId
);

impl CertId {
    /// The id of a `kind` certificate with `commitment`.
    pub fn derive(kind: CertKind, commitment: &Commitment) -> CertId {
        CertId(Domain::CertId.hash_parts(&[&crate::codec::encode(&kind), commitment.0.as_bytes()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let f = Fingerprint::of(FingerprintAlg::Sha256, b"abc");
        assert_eq!(
            f.digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let g = Fingerprint::of_reader(FingerprintAlg::Sha256, &b"abc"[..]).unwrap();
        assert_eq!(f, g);
        let b = Fingerprint::of(FingerprintAlg::Blake3, b"abc");
        let c = Fingerprint::of_reader(FingerprintAlg::Blake3, &b"abc"[..]).unwrap();
        assert_eq!(b, c);
    }

    #[test]
    fn commitment_binds_document_salt_and_algorithm() {
        let salt = Salt(Hash32([7; 32]));
        let f = Fingerprint::of(FingerprintAlg::Sha256, b"title deed");
        let c = Commitment::new(&f, &salt);
        assert!(c.opens_to(&f, &salt));
        assert!(!c.opens_to(&f, &Salt(Hash32([8; 32]))));
        assert!(!c.opens_to(
            &Fingerprint::of(FingerprintAlg::Sha256, b"title deee"),
            &salt
        ));
        // Same digest bytes under another algorithm tag is another commitment.
        let relabelled = Fingerprint {
            alg: FingerprintAlg::Blake3,
            digest: f.digest,
        };
        assert!(!c.opens_to(&relabelled, &salt));
        assert_ne!(
            CertId::derive(CertKind::LandTitle, &c),
            CertId::derive(CertKind::RewardOrder, &c)
        );
    }
}
