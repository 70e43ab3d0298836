//! Land titles: issue, transfer (supersede with lineage), mortgages, revoke.

mod common;
use cachet_chain::ids::CertKind;
use cachet_chain::state::{CertStatus, RecordTerms};
use cachet_chain::tx::{Action, CertEvent, Issuance, RevocationReason, Terms};
use cachet_contracts::TxError;
use common::*;

fn transfer(w: &World, title: cachet_chain::CertId, new_doc: &str, parcel_name: &str) -> Action {
    let _ = w;
    Action::Supersede {
        previous: title,
        next: Issuance {
            kind: CertKind::LandTitle,
            commitment: doc(new_doc),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: parcel(parcel_name),
            },
        },
    }
}

#[test]
fn a_land_office_issues_a_title() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let r = w.cert(&t);
    assert_eq!(r.status, CertStatus::Active);
    assert_eq!(r.issuer, id("moi-land"));
    assert_eq!(
        r.terms,
        RecordTerms::LandTitle {
            parcel: parcel("lot-1")
        }
    );
    // The record is stored under the id its kind and commitment give.
    assert_eq!(r.id(), t);
}

#[test]
fn an_unaccredited_agency_cannot_issue_titles() {
    let mut w = World::new();
    let issuance = Issuance {
        kind: CertKind::LandTitle,
        commitment: doc("deed-1"),
        valid_from: None,
        valid_until: None,
        terms: Terms::LandTitle {
            parcel: parcel("lot-1"),
        },
    };
    let e = w
        .submit("moea-investment", Action::Issue(issuance))
        .unwrap_err();
    assert_eq!(
        e,
        TxError::NotAccredited {
            agency: id("moea-investment"),
            kind: CertKind::LandTitle
        }
    );
}

#[test]
fn a_title_needs_parcel_terms_and_a_fresh_id() {
    let mut w = World::new();
    let plain = Issuance {
        kind: CertKind::LandTitle,
        commitment: doc("deed-1"),
        valid_from: None,
        valid_until: None,
        terms: Terms::Plain,
    };
    assert!(matches!(
        w.submit("moi-land", Action::Issue(plain)).unwrap_err(),
        TxError::TermsMismatch(_)
    ));
    w.issue_title("moi-land", "deed-1", "lot-1");
    let again = Issuance {
        kind: CertKind::LandTitle,
        commitment: doc("deed-1"),
        valid_from: None,
        valid_until: None,
        terms: Terms::LandTitle {
            parcel: parcel("lot-1"),
        },
    };
    let e = w
        .submit("guting-land-office", Action::Issue(again))
        .unwrap_err();
    assert!(matches!(e, TxError::AlreadyExists(_)), "{e}");
}

#[test]
fn another_office_registers_a_transfer_with_lineage() {
    let mut w = World::new();
    let t1 = w.issue_title("moi-land", "deed-1", "lot-1");
    let action = transfer(&w, t1, "deed-2", "lot-1");
    w.submit("guting-land-office", action).unwrap();
    let t2 = cachet_chain::CertId::derive(CertKind::LandTitle, &doc("deed-2"));
    let old = w.cert(&t1);
    assert!(matches!(old.status, CertStatus::Superseded { by, .. } if by == t2));
    let new = w.cert(&t2);
    assert_eq!(new.status, CertStatus::Active);
    assert_eq!(new.supersedes, Some(t1));
    assert_eq!(new.issuer, id("guting-land-office"));
    // The superseded title cannot move again.
    let again = transfer(&w, t1, "deed-3", "lot-1");
    assert_eq!(
        w.submit("moi-land", again).unwrap_err(),
        TxError::AlreadySuperseded
    );
}

#[test]
fn a_transfer_keeps_the_parcel() {
    let mut w = World::new();
    let t1 = w.issue_title("moi-land", "deed-1", "lot-1");
    let action = transfer(&w, t1, "deed-2", "lot-2");
    assert!(matches!(
        w.submit("moi-land", action).unwrap_err(),
        TxError::TermsMismatch(_)
    ));
}

#[test]
fn mortgages_are_set_and_cancelled_and_block_transfers() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let m = parcel("mortgage-bank-a");
    let set = Action::RecordEvent {
        id: t,
        event: CertEvent::MortgageSet { mortgage: m },
    };
    w.submit("guting-land-office", set.clone()).unwrap();
    assert_eq!(w.cert(&t).mortgages.as_slice(), &[m]);
    assert_eq!(
        w.submit("moi-land", set).unwrap_err(),
        TxError::DuplicateMortgage
    );
    let action = transfer(&w, t, "deed-2", "lot-1");
    assert_eq!(
        w.submit("moi-land", action).unwrap_err(),
        TxError::MortgageActive
    );
    let other = Action::RecordEvent {
        id: t,
        event: CertEvent::MortgageCancelled {
            mortgage: parcel("other"),
        },
    };
    assert_eq!(
        w.submit("moi-land", other).unwrap_err(),
        TxError::UnknownMortgage
    );
    let cancel = Action::RecordEvent {
        id: t,
        event: CertEvent::MortgageCancelled { mortgage: m },
    };
    w.submit("moi-land", cancel).unwrap();
    assert!(w.cert(&t).mortgages.is_empty());
    let action = transfer(&w, t, "deed-2", "lot-1");
    w.submit("moi-land", action).unwrap();
}

#[test]
fn mortgage_events_need_a_land_office() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let set = Action::RecordEvent {
        id: t,
        event: CertEvent::MortgageSet {
            mortgage: parcel("m"),
        },
    };
    assert!(matches!(
        w.submit("dgpa-personnel", set).unwrap_err(),
        TxError::NotAccredited { .. }
    ));
}

#[test]
fn revoke_by_issuer_or_accreditor_only_and_once() {
    let mut w = World::new();
    let t = w.issue_title("guting-land-office", "deed-1", "lot-1");
    let t2 = w.issue_title("moi-land", "deed-2", "lot-2");
    let revoke = |id| Action::Revoke {
        id,
        reason: RevocationReason::CourtOrder,
    };
    // Another land office is neither the issuer nor an accreditor.
    assert_eq!(
        w.submit("guting-land-office", revoke(t2)).unwrap_err(),
        TxError::NotIssuer(id("guting-land-office"))
    );
    // The accreditor (MOI) may revoke a land office's title.
    w.submit("moi-land", revoke(t)).unwrap();
    assert!(matches!(
        w.cert(&t).status,
        CertStatus::Revoked {
            reason: RevocationReason::CourtOrder,
            ..
        }
    ));
    assert_eq!(
        w.submit("moi-land", revoke(t)).unwrap_err(),
        TxError::AlreadyRevoked
    );
    // Nothing more happens to a revoked title.
    let set = Action::RecordEvent {
        id: t,
        event: CertEvent::MortgageSet {
            mortgage: parcel("m"),
        },
    };
    assert_eq!(
        w.submit("moi-land", set).unwrap_err(),
        TxError::AlreadyRevoked
    );
}

#[test]
fn unknown_certificates_are_reported() {
    let mut w = World::new();
    let ghost = cachet_chain::CertId::derive(CertKind::LandTitle, &doc("ghost"));
    let e = w
        .submit(
            "moi-land",
            Action::Revoke {
                id: ghost,
                reason: RevocationReason::Other,
            },
        )
        .unwrap_err();
    assert_eq!(e, TxError::UnknownCertificate(ghost));
    assert_eq!(e.code(), 1301);
}
