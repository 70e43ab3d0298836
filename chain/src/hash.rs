//! 32-byte digests and the domain-separated BLAKE3 hashing every chain object uses.
//!
//! Each kind of object is hashed in its own domain (BLAKE3's `derive_key` mode with a fixed
//! context string), so bytes that are valid in one role can never be replayed as another. Merkle
//! tree nodes are the exception: they use plain BLAKE3 with a one-byte prefix (see
//! [`crate::merkle`] and [`crate::state_tree`]), which keeps the inner loops cheap.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Lowercase hex of `bytes`, as `hex::encode` writes it. That one builds its string a `char` at
/// a time through an iterator, which was a sixth of a node's CPU while it served receipts (each
/// a few kilobytes of hex); this writes the digits from a table.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    push_hex(&mut out, bytes);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Append the lowercase hex of `bytes` to `out` (for replies that write hex straight into a
/// larger buffer); reserves the room itself.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]);
    }
}

/// A 32-byte digest. Shown and parsed as 64 lowercase hex characters.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero digest. Stands for "nothing here" (an empty subtree, no parent block).
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Bit `i` of the digest, counting from the most significant bit of byte 0.
    pub fn bit(&self, i: usize) -> bool {
        (self.0[i / 8] >> (7 - (i % 8))) & 1 == 1
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// Hashing for in-memory maps keyed by digests (tree node keys, transaction ids, public keys):
/// a multiply-and-fold over each 8-byte word, seeded once per process. The standard map's
/// SipHash-1-3 costs ~20 ns on a 32-byte key, and the tree update, the pruning maps and the
/// mempool hash several keys per transaction; this costs a few. The seed keeps bucket
/// placement secret, so keys an issuer grinds (transaction ids, certificate ids) cannot be
/// made to share buckets. Never for anything persisted or hashed into the chain: its output
/// differs from process to process.
#[derive(Clone, Copy, Debug)]
pub struct DigestHashing {
    seed: u64,
}

/// A map keyed by digests, with [`DigestHashing`].
pub type DigestMap<K, V> = std::collections::HashMap<K, V, DigestHashing>;
/// A set of digests, with [`DigestHashing`].
pub type DigestSet<K> = std::collections::HashSet<K, DigestHashing>;

impl Default for DigestHashing {
    fn default() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x6361_6368_6574_u64)
        });
        DigestHashing { seed }
    }
}

impl std::hash::BuildHasher for DigestHashing {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher { state: self.seed }
    }
}

/// The [`DigestHashing`] hasher.
#[derive(Clone, Copy, Debug)]
pub struct DigestHasher {
    state: u64,
}

impl DigestHasher {
    /// An odd constant with well-spread bits (the fractional part of pi).
    const MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;

    /// Mix one word in: the full 128-bit product folded onto 64 bits, so every input bit
    /// reaches the low bits the map picks buckets by.
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(Self::MULTIPLIER);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps [1] and [1, 0] apart.
            self.mix(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex characters for a 32-byte digest")]
pub struct ParseHashError;

impl FromStr for Hash32 {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError)?;
        Ok(Hash32(out))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares a 32-byte id or commitment: a `Hash32` newtype with the same encodings (Borsh, JSON
/// hex), ordering, `Display` and `FromStr`.
macro_rules! hash_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
            borsh::BorshSerialize, borsh::BorshDeserialize, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $crate::hash::Hash32);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::hash::ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name(s.parse()?))
            }
        }
    };
}
pub(crate) use hash_newtype;

/// The hashing domains. The context string of each is part of the format: changing one changes
/// every hash in that domain. Listed in `docs/spec/encoding.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Identity of a transaction: hash of its canonical body.
    TxId,
    /// Identity of a block: hash of its canonical header.
    BlockHeader,
    /// Hash of a canonical validator set.
    ValidatorSet,
    /// A key of the authenticated state, before it becomes a tree path.
    StateKey,
    /// A value of the authenticated state.
    StateValue,
    /// Salted commitment to a document fingerprint.
    Commitment,
    /// Certificate identity derived from kind and commitment.
    CertId,
    /// Identity of a Merkle batch of certificates.
    BatchId,
    /// What oracles attest to for a licence grant.
    LicenseStatement,
    /// The 32-byte message that an ed25519 signature covers (see [`crate::crypto`]).
    Signing,
    /// Development keys derived from a public name. Never for production.
    DevKey,
}

impl Domain {
    /// The BLAKE3 `derive_key` context string of this domain.
    pub const fn context(self) -> &'static str {
        match self {
            Domain::TxId => "cachet v1 tx-id",
            Domain::BlockHeader => "cachet v1 block-header",
            Domain::ValidatorSet => "cachet v1 validator-set",
            Domain::StateKey => "cachet v1 state-key",
            Domain::StateValue => "cachet v1 state-value",
            Domain::Commitment => "cachet v1 commitment",
            Domain::CertId => "cachet v1 cert-id",
            Domain::BatchId => "cachet v1 batch-id",
            Domain::LicenseStatement => "cachet v1 license-statement",
            Domain::Signing => "cachet v1 signing",
            Domain::DevKey => "cachet v1 dev-key INSECURE",
        }
    }

    /// Every domain, in declaration order (the index of [`Domain::context_key`]'s table).
    pub const ALL: [Domain; 11] = [
        Domain::TxId,
        Domain::BlockHeader,
        Domain::ValidatorSet,
        Domain::StateKey,
        Domain::StateValue,
        Domain::Commitment,
        Domain::CertId,
        Domain::BatchId,
        Domain::LicenseStatement,
        Domain::Signing,
        Domain::DevKey,
    ];

    /// The key BLAKE3 derives from this domain's context string. `new_derive_key` would hash
    /// the context again for every object: one extra compression, which for the small objects
    /// hashed on the hot paths (ids, keys, values) is a third to a half of the work.
    fn context_key(self) -> &'static blake3::hazmat::ContextKey {
        static KEYS: std::sync::LazyLock<[blake3::hazmat::ContextKey; 11]> =
            std::sync::LazyLock::new(|| {
                Domain::ALL.map(|d| blake3::hazmat::hash_derive_key_context(d.context()))
            });
        &KEYS[self as usize]
    }

    /// A hasher primed for this domain; feed it the parts, then `finalize`.
    pub fn hasher(self) -> blake3::Hasher {
        use blake3::hazmat::HasherExt;
        blake3::Hasher::new_from_context_key(self.context_key())
    }

    /// Hash `data` in this domain.
    pub fn hash(self, data: &[u8]) -> Hash32 {
        let mut h = self.hasher();
        h.update(data);
        Hash32(*h.finalize().as_bytes())
    }

    /// Hash the concatenation of `parts` in this domain.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Hash32 {
        let mut h = self.hasher();
        for part in parts {
            h.update(part);
        }
        Hash32(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_hashes_as_blake3_derive_key_with_its_context() {
        for (i, d) in Domain::ALL.into_iter().enumerate() {
            assert_eq!(d as usize, i, "ALL is in declaration order");
            let data = b"the same bytes in every domain";
            assert_eq!(d.hash(data).0, blake3::derive_key(d.context(), data));
        }
    }

    #[test]
    fn digest_hashing_spreads_keys_that_agree_on_their_low_bits() {
        use std::hash::BuildHasher;
        let hashing = DigestHashing::default();
        // Keys an issuer ground to agree on the low 32 bits of every word: a map's buckets
        // (the hash's low bits) must still spread them.
        let keys: Vec<Hash32> = (0u32..4096)
            .map(|i| {
                let mut k = [0u8; 32];
                for word in k.chunks_exact_mut(8) {
                    word[4..].copy_from_slice(&i.to_be_bytes());
                }
                Hash32(k)
            })
            .collect();
        let buckets: std::collections::HashSet<u64> =
            keys.iter().map(|k| hashing.hash_one(k) & 0xfff).collect();
        assert!(buckets.len() > 2_000, "{} of 4096 buckets", buckets.len());
        // Deterministic within a process; one flipped bit changes it.
        let mut flipped = keys[7];
        flipped.0[31] ^= 1;
        assert_eq!(
            hashing.hash_one(keys[7]),
            DigestHashing::default().hash_one(keys[7])
        );
        assert_ne!(hashing.hash_one(keys[7]), hashing.hash_one(flipped));
        let mut map: DigestMap<Hash32, usize> = DigestMap::default();
        map.extend(keys.iter().enumerate().map(|(i, k)| (*k, i)));
        assert!(keys.iter().enumerate().all(|(i, k)| map[k] == i));
    }

    #[test]
    fn encode_hex_writes_what_the_hex_crate_writes() {
        let every_byte: Vec<u8> = (0..=255).collect();
        assert_eq!(encode_hex(&every_byte), hex::encode(&every_byte));
        assert_eq!(encode_hex(&[]), "");
        assert_eq!(encode_hex(&[0x0a, 0xf0]), "0af0");
    }

    #[test]
    fn domains_separate_equal_inputs() {
        assert_ne!(Domain::TxId.hash(b"x"), Domain::BlockHeader.hash(b"x"));
        assert_eq!(
            Domain::TxId.hash(b"ab"),
            Domain::TxId.hash_parts(&[b"a", b"b"])
        );
    }

    #[test]
    fn hex_round_trip_and_bits() {
        let h = Domain::TxId.hash(b"x");
        assert_eq!(h.to_hex().parse::<Hash32>().unwrap(), h);
        assert!("zz".parse::<Hash32>().is_err());
        let mut b = [0u8; 32];
        b[0] = 0b1000_0001;
        let h = Hash32(b);
        assert!(h.bit(0) && !h.bit(1) && h.bit(7) && !h.bit(8));
    }
}
