//! Kinds registered by governance (`CertKind::Registered`): the generic lifecycle, read from
//! the kind's policy and its definition rather than written as code.
//!
//! - Issue: by an agency accredited for the kind, with plain terms (the commitment is the
//!   certificate), a validity window within the policy's bounds, pending until the policy's
//!   approvals when it asks for any; in batches if the policy allows them.
//! - Supersede: only if the definition says the kind may be, by the issuer or an accreditor.
//! - Revoke: by the issuer or an accreditor (as every kind).
//! - Events: the named events of the definition, each with a commitment to its particulars, by
//!   the issuer or an accreditor; the certificate's history keeps them.
//!
//! It is not the registration itself (`crate::governance`), nor a place for rules of one
//! registered kind: a kind that needs rules of its own is a built-in kind, with a format change.

use crate::ctx::Ctx;
use crate::error::{Failure, TxError};
use cachet_chain::state::{CertificateRecord, KindDefinition, KindPolicy, RecordTerms};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{CertEvent, Issuance, Terms};

/// The definition of a registered kind's policy (governance never stores one without).
fn definition(policy: &KindPolicy) -> Result<&KindDefinition, Failure> {
    policy.definition.as_ref().ok_or_else(|| {
        cachet_chain::state_tree::StoreError::Corrupt(
            "a registered kind's policy has no definition".into(),
        )
        .into()
    })
}

pub(super) fn check_issue(issuance: &Issuance) -> Result<RecordTerms, Failure> {
    match issuance.terms {
        Terms::Plain => Ok(RecordTerms::Plain),
        _ => Err(TxError::TermsMismatch(format!(
            "{} is registered by governance: its certificates have plain terms",
            issuance.kind
        ))
        .into()),
    }
}

pub(super) fn check_supersede<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    previous: &CertificateRecord,
) -> Result<(), Failure> {
    if !definition(policy)?.supersedable {
        return Err(TxError::SupersedeNotAllowed(previous.kind).into());
    }
    ctx.require_issuer_or_accreditor(&previous.issuer, policy)
}

pub(super) fn record_event<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    record: &CertificateRecord,
    event: &CertEvent,
) -> Result<(), Failure> {
    let allowed = match event {
        CertEvent::Named { name, .. } => definition(policy)?.events.contains(name),
        CertEvent::MortgageSet { .. } | CertEvent::MortgageCancelled { .. } => false,
    };
    if !allowed {
        return Err(TxError::EventNotAllowed { kind: record.kind }.into());
    }
    ctx.require_issuer_or_accreditor(&record.issuer, policy)
}
