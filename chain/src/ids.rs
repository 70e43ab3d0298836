//! Names and numbers: chain and agency ids, display names, heights, timestamps, certificate
//! kinds.

use crate::codec::{DecodeError, invalid, limits, limits::MAX_ID_LEN};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid id {0:?}: use 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit"
)]
pub struct InvalidId(pub String);

fn check_id(s: &str) -> Result<(), InvalidId> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidId(s.to_owned()))
    }
}

/// Declares a validated, lowercase slug id. Encodes as a Borsh string; decoding checks the
/// charset, so an invalid id cannot come out of bytes or JSON.
macro_rules! slug_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validate and wrap.
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
                let s = s.into();
                check_id(&s)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl BorshDeserialize for $name {
            fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
                let s = String::deserialize_reader(reader)?;
                Self::new(s).map_err(|e| invalid(e.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

slug_id!(
    /// Names one chain. Every signature covers it, so nothing signed for one chain is valid on
    /// another.
    ChainId
);
slug_id!(
    /// Names one agency (a member of the consortium or an accredited issuer), e.g. `moi-land`.
    AgencyId
);
slug_id!(
    /// The name a kind registered by governance is known by on the command line and in JSON,
    /// e.g. `construction-firm-certificate`. Unique on a chain; never a built-in kind's name
    /// nor of the form `kind-<n>`.
    KindName
);
slug_id!(
    /// A lifecycle event a registered kind allows, e.g. `suspended`.
    EventName
);

/// A block height. Height 0 is the genesis state; the first block is height 1.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    /// The height after this one.
    pub fn next(self) -> Height {
        Height(self.0 + 1)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch (UTC). Contracts take time only from block headers.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// The certificate kinds the chain knows: four built in, each with rules of its own, and those
/// the consortium registers by governance, numbered from 0 in the order they were registered,
/// which share the generic lifecycle (see `cachet-contracts`). The Borsh tag is the variant's
/// position (append new built-in kinds before `Registered` only with a format change);
/// `Registered(n)` encodes as tag 4 and `n` as a little-endian `u16`.
///
/// In JSON and on the command line a built-in kind is its name (`land-title`) and a registered
/// one `kind-<n>`; the name it was registered under ([`KindName`]) is in its policy.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum CertKind {
    /// Digital land title (數位權狀), issued by land offices.
    LandTitle,
    /// Investment permit (投資許可證明), active after M-of-N agency approval.
    InvestmentPermit,
    /// Civil-servant reward order (獎勵令), usually issued in Merkle batches.
    RewardOrder,
    /// Cultural-content copyright deposit and licence (版權存證/授權).
    CulturalLicense,
    /// A kind registered by governance, by its number.
    Registered(u16),
}

/// The prefix of a registered kind's number in text (`kind-0`).
const REGISTERED_PREFIX: &str = "kind-";

impl CertKind {
    /// Every built-in kind, in tag order.
    pub const ALL: [CertKind; 4] = [
        CertKind::LandTitle,
        CertKind::InvestmentPermit,
        CertKind::RewardOrder,
        CertKind::CulturalLicense,
    ];

    /// The kebab-case name of a built-in kind; `None` for a registered one (its name is in its
    /// policy).
    pub fn builtin_name(self) -> Option<&'static str> {
        match self {
            CertKind::LandTitle => Some("land-title"),
            CertKind::InvestmentPermit => Some("investment-permit"),
            CertKind::RewardOrder => Some("reward-order"),
            CertKind::CulturalLicense => Some("cultural-license"),
            CertKind::Registered(_) => None,
        }
    }

    /// Whether governance registered this kind.
    pub fn is_registered(self) -> bool {
        matches!(self, CertKind::Registered(_))
    }

    /// Whether `name` could be mistaken for a built-in kind or a kind's number, so that no
    /// registered kind may take it.
    pub fn reserves(name: &str) -> bool {
        name.parse::<CertKind>().is_ok()
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.builtin_name(), self) {
            (Some(name), _) => f.write_str(name),
            (None, CertKind::Registered(n)) => write!(f, "{REGISTERED_PREFIX}{n}"),
            (None, _) => unreachable!("every built-in kind has a name"),
        }
    }
}

/// Why a string is not a certificate kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown certificate kind {0:?} (built in: land-title, investment-permit, reward-order, cultural-license; registered by governance: kind-<n>, or the name it was registered under where a node is asked)"
)]
pub struct UnknownKind(pub String);

impl FromStr for CertKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        if let Some(k) = CertKind::ALL
            .into_iter()
            .find(|k| k.builtin_name() == Some(s))
        {
            return Ok(k);
        }
        s.strip_prefix(REGISTERED_PREFIX)
            // The canonical decimal only: `kind-01` is not `kind-1`.
            .filter(|n| !n.is_empty() && (*n == "0" || !n.starts_with('0')))
            .and_then(|n| n.parse::<u16>().ok())
            .map(CertKind::Registered)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

impl Serialize for CertKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    #[test]
    fn ids_validate_on_construction_and_decode() {
        assert!(AgencyId::new("moi-land").is_ok());
        for bad in ["", "-x", "MOI", "a b", "é", &"a".repeat(41)] {
            assert!(AgencyId::new(bad).is_err(), "{bad:?}");
            let bytes = encode(&bad.to_string());
            assert!(decode::<AgencyId>(&bytes, 1000).is_err(), "{bad:?}");
        }
        let id = AgencyId::new("dgpa").unwrap();
        assert_eq!(decode::<AgencyId>(&encode(&id), 1000).unwrap(), id);
    }

    #[test]
    fn kinds_round_trip_by_name() {
        let registered = [CertKind::Registered(0), CertKind::Registered(u16::MAX)];
        for k in CertKind::ALL.into_iter().chain(registered) {
            assert_eq!(k.to_string().parse::<CertKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(CertKind::Registered(7).to_string(), "kind-7");
        for bad in [
            "deed",
            "kind-",
            "kind-01",
            "kind-65536",
            "kind--1",
            "Kind-1",
        ] {
            assert!(bad.parse::<CertKind>().is_err(), "{bad}");
        }
        assert!(CertKind::reserves("land-title") && CertKind::reserves("kind-3"));
        assert!(!CertKind::reserves("construction-firm-certificate"));
        // Tag 4, then the number as a little-endian u16.
        assert_eq!(encode(&CertKind::Registered(0x0102)), vec![4, 2, 1]);
        assert_eq!(encode(&CertKind::CulturalLicense), vec![3]);
    }
}

/// A display name: 1 to 120 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, BorshSerialize, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Validate and wrap.
    pub fn new(s: impl Into<String>) -> Result<Name, DecodeError> {
        let s = s.into();
        if s.is_empty() || s.len() > limits::MAX_NAME_LEN || s.chars().any(char::is_control) {
            return Err(DecodeError::Malformed(format!(
                "name must be 1-{} bytes without control characters",
                limits::MAX_NAME_LEN
            )));
        }
        Ok(Name(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Name, DecodeError> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl BorshDeserialize for Name {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let s = String::deserialize_reader(reader)?;
        Name::new(s).map_err(|e| invalid(e.to_string()))
    }
}
