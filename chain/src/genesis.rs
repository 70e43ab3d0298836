//! The genesis document: who the consortium is on day one. JSON, because people write and
//! review it; it becomes the canonical height-0 state through `cachet-contracts`.
//!
//! A verifier that trusts a genesis file trusts its chain id and validator set, and nothing
//! else from it.

use crate::crypto::PublicKey;
use crate::ids::{AgencyId, CertKind, ChainId, Timestamp};
use crate::state::{KindPolicy, Name, Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The genesis document (see `genesis/README.md` for every field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisDoc {
    /// The chain id.
    pub chain_id: ChainId,
    /// Time of the genesis header, ms since the Unix epoch.
    pub genesis_time: Timestamp,
    /// Heights a governance proposal stays open.
    pub proposal_ttl: u64,
    /// Every block at a multiple of this height is a checkpoint (see
    /// [`ChainParams::checkpoint_interval`](crate::state::ChainParams)).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// The founding agencies.
    pub agencies: Vec<GenesisAgency>,
    /// The founding validators.
    pub validators: Vec<Validator>,
    /// The policy of every kind.
    pub policies: BTreeMap<CertKind, KindPolicy>,
}

/// A checkpoint every 10,000 heights: a few a day on a busy chain (an idle one grows slowly),
/// so a verifier's pinned root is rarely far behind.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10_000;

fn default_checkpoint_interval() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL
}

/// An agency in the genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAgency {
    /// Its id.
    pub id: AgencyId,
    /// Display name.
    pub name: Name,
    /// Its signing key.
    pub key: PublicKey,
    /// Kinds it is accredited to issue from the start.
    #[serde(default)]
    pub accredited: Vec<CertKind>,
}

/// Why a genesis document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Not valid JSON for the format.
    #[error("genesis is not valid: {0}")]
    Parse(String),
    /// Valid JSON that breaks a rule.
    #[error("genesis is inconsistent: {0}")]
    Invalid(String),
}

impl GenesisDoc {
    /// Parse and validate.
    pub fn from_json(text: &str) -> Result<GenesisDoc, GenesisError> {
        let doc: GenesisDoc =
            serde_json::from_str(text).map_err(|e| GenesisError::Parse(e.to_string()))?;
        doc.validate()?;
        Ok(doc)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis serializes")
    }

    /// The validator set at height 1.
    pub fn validator_set(&self) -> Result<ValidatorSet, GenesisError> {
        ValidatorSet::new(self.validators.clone()).ok_or_else(|| {
            GenesisError::Invalid(
                "validators must be non-empty, with distinct keys and power >= 1".into(),
            )
        })
    }

    /// Check the rules a genesis must follow.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        let mut ids: Vec<&AgencyId> = self.agencies.iter().map(|a| &a.id).collect();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return bad("an agency id appears twice".into());
        }
        for a in &self.agencies {
            if a.key.check_acceptable().is_err() {
                return bad(format!("agency {} has an unacceptable key", a.id));
            }
        }
        let set = self.validator_set()?;
        for v in set.validators.iter() {
            if ids.binary_search(&&v.agency).is_err() {
                return bad(format!(
                    "validator {} names unknown agency {}",
                    v.key, v.agency
                ));
            }
            if v.key.check_acceptable().is_err() {
                return bad(format!("validator key {} is unacceptable", v.key));
            }
        }
        if let Some(kind) = self.policies.keys().find(|k| k.is_registered()) {
            return bad(format!(
                "{kind}: a genesis holds the built-in kinds only; others are registered by governance"
            ));
        }
        for kind in CertKind::ALL {
            let Some(p) = self.policies.get(&kind) else {
                return bad(format!("no policy for kind {kind}"));
            };
            for a in p.accreditors.iter().chain(p.approvers.iter()) {
                if ids.binary_search(&a).is_err() {
                    return bad(format!("policy of {kind} names unknown agency {a}"));
                }
            }
            if let Err(e) = p.check(kind) {
                return bad(format!("policy of {kind}: {e}"));
            }
        }
        if self.proposal_ttl == 0 {
            return bad("proposal_ttl must be at least 1".into());
        }
        if self.checkpoint_interval == 0 {
            return bad("checkpoint_interval must be at least 1".into());
        }
        Ok(())
    }
}
