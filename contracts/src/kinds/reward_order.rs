//! Civil-servant reward orders (公務人員獎勵令).
//!
//! - Issue: one order, or a Merkle batch of many, by an agency the DGPA (an accreditor of the
//!   kind) has accredited; thousands of agencies issue, so accreditation is an ordinary
//!   transaction of the accreditor, not a governance vote.
//! - Revoke: one order by id, or one entry of a batch with its inclusion proof, by the issuer
//!   or an accreditor.

use crate::error::{Failure, TxError};
use cachet_chain::state::RecordTerms;
use cachet_chain::tx::{Issuance, Terms};

pub(super) fn check_issue(issuance: &Issuance) -> Result<RecordTerms, Failure> {
    match issuance.terms {
        Terms::Plain => Ok(RecordTerms::Plain),
        _ => Err(TxError::TermsMismatch("a reward order has plain terms".into()).into()),
    }
}
