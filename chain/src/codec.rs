//! The canonical binary encoding: Borsh, with a size limit on every decode.
//!
//! Borsh has exactly one encoding per value for the types we use (fixed-width little-endian
//! integers, `u32` length prefixes, one-byte enum tags, no maps, no floats), so "encode then
//! hash" is well defined. Decoding is where untrusted bytes enter: every decode names a byte
//! limit, rejects trailing bytes, and types with invariants (ids, bounded lists) check them while
//! decoding, so a value that breaks them cannot be constructed from bytes.

use borsh::{BorshDeserialize, BorshSerialize};

/// Upper bounds on what the chain accepts. Part of the protocol: every validator applies the
/// same ones.
pub mod limits {
    /// A single encoded transaction.
    pub const MAX_TX_BYTES: usize = 16 * 1024;
    /// A whole encoded block (header and transactions).
    pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
    /// Transactions in one block.
    pub const MAX_BLOCK_TXS: usize = 20_000;
    /// A value stored in the authenticated state.
    pub const MAX_STATE_VALUE_BYTES: usize = 64 * 1024;
    /// An agency id, a chain id: short, lowercase ASCII.
    pub const MAX_ID_LEN: usize = 40;
    /// Free-text names (agency display names).
    pub const MAX_NAME_LEN: usize = 120;
    /// Oracle attestations in one transaction.
    pub const MAX_ATTESTATIONS: usize = 16;
    /// Siblings in a batch inclusion proof: enough for 2^32 leaves.
    pub const MAX_BATCH_PROOF_LEN: usize = 32;
    /// Certificates in one Merkle batch.
    pub const MAX_BATCH_LEAVES: u32 = 1 << 24;
    /// Members of any list kept in a policy or the validator set.
    pub const MAX_SET_LEN: usize = 256;
    /// Most named lifecycle events a registered kind allows.
    pub const MAX_KIND_EVENTS: usize = 16;
    /// Retired keys an agency record keeps.
    pub const MAX_KEY_HISTORY: usize = 64;
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than the limit for this type; nothing was parsed.
    #[error("encoding is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// Not a valid encoding of the type (truncated, bad tag, invariant broken, trailing bytes).
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Encode a value canonically.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("writing to a Vec cannot fail")
}

/// Decode a value from exactly `bytes`, refusing inputs over `max` bytes or with bytes left over.
pub fn decode<T: BorshDeserialize>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Read a Borsh `Vec<T>` whose length must not exceed `max`; used by hand-written
/// `BorshDeserialize` impls of bounded lists.
pub fn read_bounded_vec<R: borsh::io::Read, T: BorshDeserialize>(
    reader: &mut R,
    max: usize,
    what: &str,
) -> borsh::io::Result<Vec<T>> {
    let len = u32::deserialize_reader(reader)? as usize;
    if len > max {
        return Err(invalid(format!(
            "{what}: {len} items, over the limit of {max}"
        )));
    }
    let mut out = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        out.push(T::deserialize_reader(reader)?);
    }
    Ok(out)
}

/// An `InvalidData` error for hand-written decoders.
pub fn invalid(msg: impl Into<String>) -> borsh::io::Error {
    borsh::io::Error::new(borsh::io::ErrorKind::InvalidData, msg.into())
}

/// Declares a `Vec` newtype that encodes like `Vec<T>` but refuses more than `$max` items.
macro_rules! bounded_vec {
    ($(#[$meta:meta])* $name:ident, $item:ty, $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, borsh::BorshSerialize, serde::Serialize)]
        pub struct $name(Vec<$item>);

        impl $name {
            /// The most items this list may hold.
            pub const MAX: usize = $max;

            /// Wrap `items`, refusing more than [`Self::MAX`].
            pub fn new(items: Vec<$item>) -> Result<Self, $crate::codec::DecodeError> {
                if items.len() > Self::MAX {
                    return Err($crate::codec::DecodeError::Malformed(format!(
                        "{}: {} items, over the limit of {}",
                        stringify!($name),
                        items.len(),
                        Self::MAX
                    )));
                }
                Ok(Self(items))
            }

            /// The items.
            pub fn as_slice(&self) -> &[$item] {
                &self.0
            }

            /// The items, owned.
            pub fn into_vec(self) -> Vec<$item> {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = [$item];
            fn deref(&self) -> &[$item] {
                &self.0
            }
        }

        impl TryFrom<Vec<$item>> for $name {
            type Error = $crate::codec::DecodeError;
            fn try_from(items: Vec<$item>) -> Result<Self, Self::Error> {
                Self::new(items)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let items = <Vec<$item> as serde::Deserialize>::deserialize(d)?;
                Self::new(items).map_err(serde::de::Error::custom)
            }
        }

        impl borsh::BorshDeserialize for $name {
            fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
                Ok(Self($crate::codec::read_bounded_vec(reader, $max, stringify!($name))?))
            }
        }
    };
}
pub(crate) use bounded_vec;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_oversized_and_trailing_input() {
        let bytes = encode(&7u32);
        assert_eq!(decode::<u32>(&bytes, 4), Ok(7));
        assert!(matches!(
            decode::<u32>(&bytes, 3),
            Err(DecodeError::TooLarge { len: 4, max: 3 })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode::<u32>(&long, 100),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A Vec<u8> claiming 4 GiB of content in a 4-byte input.
        let bytes = u32::MAX.to_le_bytes();
        assert!(decode::<Vec<u8>>(&bytes, 1024).is_err());
    }
}
