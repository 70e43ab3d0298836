//! Cultural-content copyright deposits and licences (數位文化內容 版權存證/授權).
//!
//! - Deposit: an accredited agency registers a work (`WorkDeposit` terms).
//! - Grant: a licence over an active deposit, with licensee, scope and a validity window that
//!   must end. It needs `oracle_threshold` attestations from distinct oracles of the policy,
//!   each signed over the licence statement ([`license_statement`]), inside its time window
//!   (block time in `[not_before, not_after)`, window no longer than the policy allows), with a
//!   nonce never used before by that oracle. Used nonces are kept in state: an attestation
//!   cannot be replayed into another grant, even one with identical terms.
//! - Revoke: by the issuer or an accreditor; supersede (re-grant) by the same, same work.

use crate::ctx::Ctx;
use crate::error::{Failure, TxError};
use cachet_chain::ids::CertKind;
use cachet_chain::state::{
    CertStatus, CertificateRecord, KindPolicy, OracleNonceUse, RecordTerms, StateKey,
};
use cachet_chain::state_tree::TreeStore;
use cachet_chain::tx::{Issuance, LicenseScope, LicenseTerms, Terms, license_statement};

pub(super) fn check_issue<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    issuance: &Issuance,
) -> Result<RecordTerms, Failure> {
    match &issuance.terms {
        Terms::WorkDeposit => Ok(RecordTerms::WorkDeposit),
        Terms::License(terms) => {
            check_license(ctx, policy, issuance, terms)?;
            Ok(RecordTerms::License {
                work: terms.work,
                licensee: terms.licensee,
                scope: terms.scope,
            })
        }
        _ => Err(TxError::TermsMismatch(
            "a cultural certificate is a work deposit or a licence".into(),
        )
        .into()),
    }
}

fn check_license<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    issuance: &Issuance,
    terms: &LicenseTerms,
) -> Result<(), Failure> {
    if terms.scope == 0 || terms.scope & !LicenseScope::ALL != 0 {
        return Err(TxError::TermsMismatch("licence scope must grant known rights".into()).into());
    }
    if issuance.valid_until.is_none() {
        return Err(TxError::InvalidValidity("a licence must have an end".into()).into());
    }
    let work = ctx.certificate(&terms.work)?;
    if work.kind != CertKind::CulturalLicense || work.terms != RecordTerms::WorkDeposit {
        return Err(
            TxError::TermsMismatch("the licensed work is not a deposited work".into()).into(),
        );
    }
    if work.status != CertStatus::Active {
        return Err(TxError::TermsMismatch("the licensed work is not active".into()).into());
    }
    let statement = license_statement(
        &terms.work,
        &issuance.commitment,
        &terms.licensee,
        terms.scope,
        issuance.valid_from,
        issuance.valid_until,
    );
    let needed = policy.oracle_threshold as usize;
    let mut seen = Vec::new();
    for a in terms.attestations.iter() {
        let who = a.oracle.short();
        if !policy.oracles.contains(&a.oracle) {
            return Err(TxError::UnknownOracle(who).into());
        }
        if seen.contains(&a.oracle) {
            return Err(TxError::DuplicateOracle(who).into());
        }
        if a.not_after <= a.not_before
            || a.not_after.0 - a.not_before.0 > policy.max_attestation_window_ms
        {
            return Err(TxError::AttestationWindowTooLong(who).into());
        }
        if ctx.time < a.not_before || ctx.time >= a.not_after {
            return Err(TxError::AttestationOutsideWindow(who).into());
        }
        a.verify(&ctx.chain_id, &statement)
            .map_err(|_| TxError::BadAttestationSignature(who.clone()))?;
        let nonce_key = StateKey::OracleNonce(a.oracle, a.nonce);
        if ctx.view.exists(&nonce_key)? {
            return Err(TxError::AttestationReplayed {
                oracle: who,
                nonce: a.nonce,
            }
            .into());
        }
        ctx.view.put(&nonce_key, &OracleNonceUse { at: ctx.height });
        seen.push(a.oracle);
    }
    if seen.len() < needed {
        return Err(TxError::NotEnoughAttestations {
            got: seen.len(),
            needed,
        }
        .into());
    }
    Ok(())
}

pub(super) fn check_supersede<S: TreeStore>(
    ctx: &mut Ctx<'_, '_, S>,
    policy: &KindPolicy,
    previous: &CertificateRecord,
    next: &Issuance,
) -> Result<(), Failure> {
    ctx.require_issuer_or_accreditor(&previous.issuer, policy)?;
    let same_shape = match (&previous.terms, &next.terms) {
        (RecordTerms::WorkDeposit, Terms::WorkDeposit) => true,
        (RecordTerms::License { work, .. }, Terms::License(t)) => *work == t.work,
        _ => false,
    };
    if !same_shape {
        return Err(TxError::TermsMismatch(
            "a successor keeps the deposit, or the licensed work".into(),
        )
        .into());
    }
    Ok(())
}
