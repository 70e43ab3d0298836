//! Investment permits (僑外投資許可證明).
//!
//! - Issue: by MOEA (accredited), with a validity window; the permit is *pending* until
//!   `approvals_required` distinct approvers of the policy (e.g. NIA, MOL) approve it.
//! - Amend = supersede: by the issuer or an accreditor; the amendment is pending in its turn and
//!   replaces the old permit only when it becomes active.
//! - Revoke: by the issuer or an accreditor (a pending permit can be withdrawn this way).

use crate::error::{Failure, TxError};
use cachet_chain::state::RecordTerms;
use cachet_chain::tx::{Issuance, Terms};

pub(super) fn check_issue(issuance: &Issuance) -> Result<RecordTerms, Failure> {
    match issuance.terms {
        Terms::Plain => Ok(RecordTerms::Plain),
        _ => Err(TxError::TermsMismatch("an investment permit has plain terms".into()).into()),
    }
}
