//! Digital land titles (數位權狀).
//!
//! - Issue: by an accredited land office, over a parcel commitment.
//! - Transfer (sale registration) = supersede: by any accredited land office (the buyer's
//!   filing office need not be the one that issued the title), same parcel, and only while no
//!   mortgage is active: a mortgage must be cancelled before the title moves.
//! - Mortgage set / cancel: events recorded by an accredited land office on an active title.
//! - Revoke: by the issuing office or an accreditor.

use crate::ctx::Ctx;
use crate::error::{Failure, TxError};
use cachet_chain::ids::CertKind;
use cachet_chain::state::{CertificateRecord, MortgageList, RecordTerms};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{CertEvent, Issuance, Terms};

pub(super) fn check_issue(issuance: &Issuance) -> Result<RecordTerms, Failure> {
    match issuance.terms {
        Terms::LandTitle { parcel } => Ok(RecordTerms::LandTitle { parcel }),
        _ => Err(
            TxError::TermsMismatch("a land title needs land-title terms (the parcel)".into())
                .into(),
        ),
    }
}

pub(super) fn check_supersede(
    previous: &CertificateRecord,
    next: &Issuance,
) -> Result<(), Failure> {
    // Any accredited land office may register a transfer; accreditation is checked by issue.
    let RecordTerms::LandTitle { parcel } = previous.terms else {
        return Err(TxError::TermsMismatch("record has no parcel".into()).into());
    };
    if next.terms != (Terms::LandTitle { parcel }) {
        return Err(TxError::TermsMismatch("a transfer keeps the parcel".into()).into());
    }
    if !previous.mortgages.is_empty() {
        return Err(TxError::MortgageActive.into());
    }
    Ok(())
}

pub(super) fn record_event<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    record: &mut CertificateRecord,
    event: &CertEvent,
) -> Result<(), Failure> {
    ctx.require_accredited(CertKind::LandTitle)?;
    let mut mortgages = record.mortgages.clone().into_vec();
    match event {
        CertEvent::MortgageSet { mortgage } => {
            if mortgages.contains(mortgage) {
                return Err(TxError::DuplicateMortgage.into());
            }
            mortgages.push(*mortgage);
        }
        CertEvent::MortgageCancelled { mortgage } => {
            let Some(pos) = mortgages.iter().position(|m| m == mortgage) else {
                return Err(TxError::UnknownMortgage.into());
            };
            mortgages.remove(pos);
        }
        CertEvent::Named { .. } => {
            return Err(TxError::EventNotAllowed {
                kind: CertKind::LandTitle,
            }
            .into());
        }
    }
    record.mortgages =
        MortgageList::new(mortgages).map_err(|e| TxError::TermsMismatch(e.to_string()))?;
    Ok(())
}
