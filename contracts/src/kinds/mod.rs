//! Rules that differ by certificate kind, one module per built-in kind and one for every kind
//! registered by governance. The shared lifecycle ([`crate::lifecycle`]) calls these hooks; a
//! kind registered on chain needs no code (see [`registered`]); a built-in kind with rules of
//! its own is a new module here, a new [`CertKind`] variant and its genesis policy.

use crate::ctx::Ctx;
use crate::error::Failure;
use cachet_chain::ids::CertKind;
use cachet_chain::state::{CertificateRecord, KindPolicy, RecordTerms};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{CertEvent, Issuance};

mod cultural_license;
mod investment_permit;
mod land_title;
mod registered;
mod reward_order;

/// Check the kind-specific terms of a new certificate and say what the record keeps of them.
pub(crate) fn check_issue<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    issuance: &Issuance,
) -> Result<RecordTerms, Failure> {
    match issuance.kind {
        CertKind::LandTitle => land_title::check_issue(issuance),
        CertKind::InvestmentPermit => investment_permit::check_issue(issuance),
        CertKind::RewardOrder => reward_order::check_issue(issuance),
        CertKind::CulturalLicense => cultural_license::check_issue(ctx, policy, issuance),
        CertKind::Registered(_) => registered::check_issue(issuance),
    }
}

/// May the signer replace `previous` with `next`?
pub(crate) fn check_supersede<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    previous: &CertificateRecord,
    next: &Issuance,
) -> Result<(), Failure> {
    match previous.kind {
        CertKind::LandTitle => land_title::check_supersede(previous, next),
        CertKind::InvestmentPermit | CertKind::RewardOrder => {
            ctx.require_issuer_or_accreditor(&previous.issuer, policy)
        }
        CertKind::CulturalLicense => cultural_license::check_supersede(ctx, policy, previous, next),
        CertKind::Registered(_) => registered::check_supersede(ctx, policy, previous),
    }
}

/// Apply a lifecycle event to an active record.
pub(crate) fn record_event<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    record: &mut CertificateRecord,
    event: &CertEvent,
) -> Result<(), Failure> {
    match record.kind {
        CertKind::LandTitle => land_title::record_event(ctx, record, event),
        CertKind::Registered(_) => registered::record_event(ctx, policy, record, event),
        kind => Err(crate::error::TxError::EventNotAllowed { kind }.into()),
    }
}
