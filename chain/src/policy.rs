//! The rules of one certificate kind as genesis and governance set them ([`KindPolicy`]), and
//! the bounded lists of agencies and keys a policy names.
//!
//! It is not where policies are kept (the state, under `StateKey::Policy`) nor how they are
//! applied (`cachet-contracts`); a governance transaction carries one, so this module depends
//! on neither the state nor the transactions.

use crate::codec::{bounded_vec, limits};
use crate::crypto::PublicKey;
use crate::ids::{AgencyId, CertKind, EventName, KindName, Name};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

bounded_vec!(
    /// A bounded list of agencies (policy member lists, votes, approvals).
    AgencyList,
    AgencyId,
    limits::MAX_SET_LEN
);
bounded_vec!(
    /// A bounded list of keys (oracle sets).
    KeyList,
    PublicKey,
    limits::MAX_SET_LEN
);
bounded_vec!(
    /// The named lifecycle events a registered kind allows.
    EventNames,
    EventName,
    limits::MAX_KIND_EVENTS
);

/// What a kind registered by governance is: its names and the parts of the generic lifecycle
/// it takes. A built-in kind has none (its rules are code; its names are the verifiers' own).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct KindDefinition {
    /// The name it is known by on the command line and in JSON; fixed once registered.
    pub name: KindName,
    /// Its name for people, in Traditional Chinese (zh-TW).
    pub title_zh_tw: Name,
    /// Its name for people, in English.
    pub title_en: Name,
    /// Whether a certificate of it may be replaced by a successor (by its issuer or an
    /// accreditor).
    pub supersedable: bool,
    /// The named lifecycle events its certificates may record, distinct.
    pub events: EventNames,
}

/// The rules of one certificate kind, set at genesis and by governance.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct KindPolicy {
    /// Agencies that may accredit (and register) issuers of this kind and revoke any of its
    /// certificates.
    pub accreditors: AgencyList,
    /// Agencies whose approvals count towards activation.
    pub approvers: AgencyList,
    /// Approvals needed before an issued certificate becomes active; 0 = active at once.
    pub approvals_required: u16,
    /// Oracles whose attestations count.
    pub oracles: KeyList,
    /// Distinct oracle attestations a licence grant needs; 0 = none.
    pub oracle_threshold: u16,
    /// Longest attestation window accepted, in milliseconds.
    pub max_attestation_window_ms: u64,
    /// Whether every certificate must have a validity window.
    pub requires_validity: bool,
    /// Longest validity window, in milliseconds; 0 = unbounded.
    pub max_validity_ms: u64,
    /// Largest Merkle batch accepted; 0 = batches not allowed.
    pub max_batch_leaves: u32,
    /// For verifiers: how old a receipt of this kind may be before it is not trusted, in
    /// milliseconds.
    pub max_receipt_age_ms: u64,
    /// For a kind registered by governance, what it is; `None` for a built-in kind (and then
    /// left out of JSON, as genesis files write policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<KindDefinition>,
}

impl KindPolicy {
    /// The plainest policy: these accreditors, no approvals, no oracles, no validity
    /// requirement, no batches, receipts trusted for a day. Genesis tools start from it.
    pub fn open(accreditors: AgencyList) -> KindPolicy {
        KindPolicy {
            accreditors,
            approvers: AgencyList::default(),
            approvals_required: 0,
            oracles: KeyList::default(),
            oracle_threshold: 0,
            max_attestation_window_ms: 0,
            requires_validity: false,
            max_validity_ms: 0,
            max_batch_leaves: 0,
            max_receipt_age_ms: 24 * 60 * 60 * 1000,
            definition: None,
        }
    }

    /// Internal consistency for `kind`: thresholds reachable, no member twice, oracle keys
    /// acceptable, a definition exactly for a registered kind, with a name no built-in kind or
    /// kind number has and no event twice. (Whether the named agencies exist, and whether the
    /// name is taken, are checked against state by the caller.)
    pub fn check(&self, kind: CertKind) -> Result<(), String> {
        fn distinct<T: Ord + Clone>(items: &[T]) -> bool {
            let mut v = items.to_vec();
            v.sort();
            v.windows(2).all(|w| w[0] != w[1])
        }
        if !distinct(&self.accreditors) || !distinct(&self.approvers) || !distinct(&self.oracles) {
            return Err("a member is listed twice".into());
        }
        if self.approvals_required as usize > self.approvers.len() {
            return Err("needs more approvals than it has approvers".into());
        }
        if self.oracle_threshold as usize > self.oracles.len() {
            return Err("needs more attestations than it has oracles".into());
        }
        if self.oracle_threshold > 0 && self.max_attestation_window_ms == 0 {
            return Err("oracle attestations need a window longer than 0".into());
        }
        if self.oracles.iter().any(|k| k.check_acceptable().is_err()) {
            return Err("an oracle key is not acceptable".into());
        }
        match (&self.definition, kind.is_registered()) {
            (Some(_), false) => {
                return Err(format!("{kind} is built in: its policy has no definition"));
            }
            (None, true) => {
                return Err(format!(
                    "{kind} is registered: its policy needs a definition"
                ));
            }
            (Some(d), true) => {
                if CertKind::reserves(d.name.as_str()) {
                    return Err(format!(
                        "{} is a built-in kind's name or a kind number",
                        d.name
                    ));
                }
                if !distinct(&d.events) {
                    return Err("an event is listed twice".into());
                }
                if self.oracle_threshold > 0 {
                    return Err("a registered kind takes no oracle attestations".into());
                }
            }
            (None, false) => {}
        }
        Ok(())
    }
}
