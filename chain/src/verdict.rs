//! What a verifier concludes about a certificate from its (authenticated) record and a time.
//! Proof checking comes first; this is the reading of a record once it is trusted.

use crate::ids::Timestamp;
use crate::state::{BatchRecord, CertStatus, CertificateRecord, RevocationRecord};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The answer a verifier gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// In force.
    Valid,
    /// Issued but waiting for approvals.
    Pending,
    /// Revoked.
    Revoked,
    /// Replaced by a successor.
    Superseded,
    /// Its validity window has ended.
    Expired,
    /// Its validity window has not begun.
    NotYetValid,
    /// The chain has no such certificate.
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Pending => "pending",
            Verdict::Revoked => "revoked",
            Verdict::Superseded => "superseded",
            Verdict::Expired => "expired",
            Verdict::NotYetValid => "not yet valid",
            Verdict::Unknown => "unknown",
        })
    }
}

fn window(from: Option<Timestamp>, until: Option<Timestamp>, at: Timestamp) -> Verdict {
    if from.is_some_and(|f| at < f) {
        Verdict::NotYetValid
    } else if until.is_some_and(|u| at >= u) {
        Verdict::Expired
    } else {
        Verdict::Valid
    }
}

/// The verdict on a single certificate at time `at`.
pub fn certificate_verdict(record: &CertificateRecord, at: Timestamp) -> Verdict {
    match record.status {
        CertStatus::Pending => Verdict::Pending,
        CertStatus::Revoked { .. } => Verdict::Revoked,
        CertStatus::Superseded { .. } => Verdict::Superseded,
        CertStatus::Active => window(record.valid_from, record.valid_until, at),
    }
}

/// The verdict on one entry of a batch at time `at`, given its revocation record if any.
pub fn batch_entry_verdict(
    batch: &BatchRecord,
    revocation: Option<&RevocationRecord>,
    at: Timestamp,
) -> Verdict {
    if revocation.is_some() {
        return Verdict::Revoked;
    }
    window(batch.valid_from, batch.valid_until, at)
}
