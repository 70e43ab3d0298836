//! Investment permits: M-of-N approval, validity window, amend, revoke.

mod common;
use cachet_chain::state::CertStatus;
use cachet_chain::tx::{Action, CertEvent, RevocationReason};
use cachet_contracts::{Event, TxError};
use common::*;

fn issue_permit(w: &mut World, name: &str) -> cachet_chain::CertId {
    let p = w.permit(name);
    let id = p.cert_id();
    w.submit("moea-investment", Action::Issue(p)).unwrap();
    id
}

fn approve_all(w: &mut World, id: cachet_chain::CertId) {
    w.submit("nia-immigration", Action::Approve { id }).unwrap();
    w.submit("mol-labor", Action::Approve { id }).unwrap();
}

#[test]
fn a_permit_is_pending_until_two_approvals() {
    let mut w = World::new();
    let id = issue_permit(&mut w, "permit-1");
    assert_eq!(w.cert(&id).status, CertStatus::Pending);
    let events = w.submit("nia-immigration", Action::Approve { id }).unwrap();
    assert!(!events.contains(&Event::Activated { id }));
    assert_eq!(w.cert(&id).status, CertStatus::Pending);
    let events = w.submit("mol-labor", Action::Approve { id }).unwrap();
    assert!(events.contains(&Event::Activated { id }));
    let r = w.cert(&id);
    assert_eq!(r.status, CertStatus::Active);
    assert_eq!(r.approvals.len(), 2);
}

#[test]
fn approvals_come_from_listed_approvers_once_each() {
    let mut w = World::new();
    let id = issue_permit(&mut w, "permit-1");
    assert_eq!(
        w.submit("moi-land", Action::Approve { id }).unwrap_err(),
        TxError::NotApprover(id_of("moi-land"))
    );
    w.submit("nia-immigration", Action::Approve { id }).unwrap();
    assert_eq!(
        w.submit("nia-immigration", Action::Approve { id })
            .unwrap_err(),
        TxError::AlreadyApproved(id_of("nia-immigration"))
    );
    w.submit("mol-labor", Action::Approve { id }).unwrap();
    assert_eq!(
        w.submit("mol-labor", Action::Approve { id }).unwrap_err(),
        TxError::NotPending
    );
}

fn id_of(s: &str) -> cachet_chain::AgencyId {
    id(s)
}

#[test]
fn a_permit_needs_a_bounded_validity_window() {
    let mut w = World::new();
    let mut p = w.permit("permit-1");
    p.valid_until = None;
    assert!(matches!(
        w.submit("moea-investment", Action::Issue(p)).unwrap_err(),
        TxError::InvalidValidity(_)
    ));
    let mut p = w.permit("permit-2");
    p.valid_until = Some(w.now().plus_ms(6 * 366 * DAY));
    assert!(matches!(
        w.submit("moea-investment", Action::Issue(p)).unwrap_err(),
        TxError::InvalidValidity(_)
    ));
    let mut p = w.permit("permit-3");
    p.valid_from = p.valid_until;
    assert!(matches!(
        w.submit("moea-investment", Action::Issue(p)).unwrap_err(),
        TxError::InvalidValidity(_)
    ));
    let mut p = w.permit("permit-4");
    p.valid_until = Some(w.now());
    assert!(matches!(
        w.submit("moea-investment", Action::Issue(p)).unwrap_err(),
        TxError::InvalidValidity(_)
    ));
}

#[test]
fn an_amendment_replaces_the_permit_once_approved() {
    let mut w = World::new();
    let old = issue_permit(&mut w, "permit-1");
    // A pending permit cannot be amended yet.
    let amend = Action::Supersede {
        previous: old,
        next: w.permit("permit-1-amended"),
    };
    assert_eq!(
        w.submit("moea-investment", amend.clone()).unwrap_err(),
        TxError::PendingApproval
    );
    approve_all(&mut w, old);
    let new = w.permit("permit-1-amended").cert_id();
    w.submit("moea-investment", amend).unwrap();
    // Until approved, the old permit stays in force.
    assert_eq!(w.cert(&old).status, CertStatus::Active);
    assert_eq!(w.cert(&new).status, CertStatus::Pending);
    approve_all(&mut w, new);
    assert!(matches!(w.cert(&old).status, CertStatus::Superseded { by, .. } if by == new));
    assert_eq!(w.cert(&new).supersedes, Some(old));
}

#[test]
fn an_amendment_of_a_permit_revoked_meanwhile_cannot_activate() {
    let mut w = World::new();
    let old = issue_permit(&mut w, "permit-1");
    approve_all(&mut w, old);
    let amend = Action::Supersede {
        previous: old,
        next: w.permit("permit-1-amended"),
    };
    let new = w.permit("permit-1-amended").cert_id();
    w.submit("moea-investment", amend).unwrap();
    w.submit(
        "moea-investment",
        Action::Revoke {
            id: old,
            reason: RevocationReason::Fraud,
        },
    )
    .unwrap();
    w.submit("nia-immigration", Action::Approve { id: new })
        .unwrap();
    assert_eq!(
        w.submit("mol-labor", Action::Approve { id: new })
            .unwrap_err(),
        TxError::AlreadyRevoked
    );
}

#[test]
fn only_moea_or_the_issuer_revokes_and_permits_record_no_events() {
    let mut w = World::new();
    let id = issue_permit(&mut w, "permit-1");
    assert_eq!(
        w.submit(
            "nia-immigration",
            Action::Revoke {
                id,
                reason: RevocationReason::Other
            }
        )
        .unwrap_err(),
        TxError::NotIssuer(id_of("nia-immigration"))
    );
    approve_all(&mut w, id);
    let ev = Action::RecordEvent {
        id,
        event: CertEvent::MortgageSet {
            mortgage: parcel("m"),
        },
    };
    assert!(matches!(
        w.submit("moea-investment", ev).unwrap_err(),
        TxError::EventNotAllowed { .. }
    ));
    w.submit(
        "moea-investment",
        Action::Revoke {
            id,
            reason: RevocationReason::Cancelled,
        },
    )
    .unwrap();
}

#[test]
fn a_pending_permit_can_be_withdrawn() {
    let mut w = World::new();
    let id = issue_permit(&mut w, "permit-1");
    w.submit(
        "moea-investment",
        Action::Revoke {
            id,
            reason: RevocationReason::Cancelled,
        },
    )
    .unwrap();
    assert_eq!(
        w.submit("nia-immigration", Action::Approve { id })
            .unwrap_err(),
        TxError::NotPending
    );
}
