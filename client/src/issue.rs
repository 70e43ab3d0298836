//! The issuance an agency submits, built from plain inputs: a certificate's kind, its
//! commitment, a land title's parcel reference and a validity in days. The CLI and the agency
//! gateway both build theirs here, so that a certificate anchored either way has the same terms.
//!
//! It is not the rules (whether the kind's policy takes such a window is the chain's to say).

use cachet_chain::document::Commitment;
use cachet_chain::hash::Domain;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::tx::{Issuance, Terms};

/// Days an investment permit is valid when no validity is given.
pub const DEFAULT_PERMIT_DAYS: u64 = 365;

/// This machine's clock, in milliseconds since the Unix epoch: where a validity window starts.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A day, in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// The issuance of a `kind` certificate committing to `commitment`: a land title's terms commit
/// to its `parcel` reference (section and lot; required for land titles), and `valid_days`
/// from `now_ms` bounds its validity (investment permits always have one, by default
/// [`DEFAULT_PERMIT_DAYS`]). `Err` says what is missing.
pub fn issuance(
    kind: CertKind,
    commitment: Commitment,
    parcel: Option<&str>,
    valid_days: Option<u64>,
    now_ms: u64,
) -> Result<Issuance, String> {
    let days = match kind {
        CertKind::InvestmentPermit => Some(valid_days.unwrap_or(DEFAULT_PERMIT_DAYS)),
        _ => valid_days,
    };
    let (valid_from, valid_until) = match days {
        Some(d) => (
            Some(Timestamp(now_ms)),
            Some(Timestamp(now_ms.saturating_add(d.saturating_mul(DAY_MS)))),
        ),
        None => (None, None),
    };
    let terms = match kind {
        CertKind::LandTitle => {
            let parcel = parcel.ok_or("a land title needs its parcel reference")?;
            Terms::LandTitle {
                parcel: Domain::Commitment.hash(parcel.as_bytes()),
            }
        }
        CertKind::CulturalLicense => Terms::WorkDeposit,
        CertKind::InvestmentPermit | CertKind::RewardOrder | CertKind::Registered(_) => {
            Terms::Plain
        }
    };
    Ok(Issuance {
        kind,
        commitment,
        valid_from,
        valid_until,
        terms,
    })
}

/// The issuance of a Merkle batch of `leaf_count` `kind` certificates under `root`, every one
/// valid until `valid_days` after `now_ms` if given.
pub fn batch_issuance(
    kind: CertKind,
    root: cachet_chain::hash::Hash32,
    leaf_count: u32,
    valid_days: Option<u64>,
    now_ms: u64,
) -> cachet_chain::tx::BatchIssuance {
    cachet_chain::tx::BatchIssuance {
        kind,
        root,
        leaf_count,
        valid_from: None,
        valid_until: valid_days.map(|d| Timestamp(now_ms.saturating_add(d.saturating_mul(DAY_MS)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachet_chain::hash::Hash32;

    #[test]
    fn each_kind_gets_its_terms_and_window() {
        let c = Commitment(Hash32([1; 32]));
        let permit = issuance(CertKind::InvestmentPermit, c, None, None, 1000).unwrap();
        assert_eq!(permit.valid_from, Some(Timestamp(1000)));
        assert_eq!(permit.valid_until, Some(Timestamp(1000 + 365 * DAY_MS)));
        let order = issuance(CertKind::RewardOrder, c, None, None, 1000).unwrap();
        assert_eq!((order.valid_from, order.terms), (None, Terms::Plain));
        let title = issuance(CertKind::LandTitle, c, Some("大安段 12-3"), Some(2), 0).unwrap();
        assert_eq!(
            title.terms,
            Terms::LandTitle {
                parcel: Domain::Commitment.hash("大安段 12-3".as_bytes())
            }
        );
        assert_eq!(title.valid_until, Some(Timestamp(2 * DAY_MS)));
        assert!(issuance(CertKind::LandTitle, c, None, None, 0).is_err());
        let registered = issuance(CertKind::Registered(0), c, None, Some(30), 0).unwrap();
        assert_eq!(registered.terms, Terms::Plain);
        assert_eq!(registered.valid_until, Some(Timestamp(30 * DAY_MS)));
    }
}
