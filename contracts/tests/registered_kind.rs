//! Kinds registered by governance: a consortium adds construction-firm certificates by a vote,
//! with no code of their own, and they follow the generic lifecycle their policy describes.

mod common;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, EventName, KindName};
use cachet_chain::receipt::{RECEIPT_VERSION, Receipt, ReceiptError, verify};
use cachet_chain::state::{CertStatus, KindPolicy, Name, StateKey};
use cachet_chain::tx::{Action, CertEvent, GovernanceChange, RevocationReason};
use cachet_chain::verdict::Verdict;
use cachet_contracts::TxError;
use common::receipts::{certificate_receipt, trust};
use common::*;

fn named(name: &str) -> CertEvent {
    CertEvent::Named {
        name: EventName::new(name).unwrap(),
        detail: Hash32([9; 32]),
    }
}

#[test]
fn a_kind_registered_by_vote_is_issued_recorded_and_revoked_by_its_policy() {
    let mut w = World::new();
    // Before the vote, the number names no kind.
    let early = w.firm_certificate(CertKind::Registered(0), "firm-0");
    assert_eq!(
        w.submit("moi-land", Action::Issue(early)),
        Err(TxError::UnknownKind(CertKind::Registered(0)))
    );

    let kind = w.register_construction_firms();
    assert_eq!(kind, CertKind::Registered(0));
    let stored: KindPolicy = w.chain.get(&StateKey::Policy(kind)).unwrap().unwrap();
    assert_eq!(stored, construction_firm_policy());
    let name = KindName::new("construction-firm-certificate").unwrap();
    assert_eq!(
        w.chain
            .get::<CertKind>(&StateKey::KindByName(name))
            .unwrap(),
        Some(kind)
    );
    assert_eq!(
        w.chain.get::<u16>(&StateKey::RegisteredKinds).unwrap(),
        Some(1)
    );

    // Its policy's bounds hold: a validity window, at most five years, plain terms, and
    // only accredited issuers.
    let mut open_ended = w.firm_certificate(kind, "firm-1");
    open_ended.valid_until = None;
    assert!(matches!(
        w.submit("moi-land", Action::Issue(open_ended)),
        Err(TxError::InvalidValidity(_))
    ));
    let mut with_parcel = w.firm_certificate(kind, "firm-1");
    with_parcel.terms = cachet_chain::tx::Terms::LandTitle {
        parcel: parcel("lot"),
    };
    assert!(matches!(
        w.submit("moi-land", Action::Issue(with_parcel)),
        Err(TxError::TermsMismatch(_))
    ));
    assert!(matches!(
        w.submit(
            "moea-investment",
            Action::Issue(w.firm_certificate(kind, "firm-1"))
        ),
        Err(TxError::NotAccredited { .. })
    ));
    let cert = w.firm_certificate(kind, "firm-1");
    let cid = cert.cert_id();
    w.submit("moi-land", Action::Issue(cert)).unwrap();
    assert_eq!(w.cert(&cid).status, CertStatus::Active);

    // Its named events, and no others; mortgages are land titles' own.
    w.submit(
        "moi-land",
        Action::RecordEvent {
            id: cid,
            event: named("suspended"),
        },
    )
    .unwrap();
    for other in [
        named("seized"),
        CertEvent::MortgageSet {
            mortgage: Hash32([1; 32]),
        },
    ] {
        assert_eq!(
            w.submit(
                "moi-land",
                Action::RecordEvent {
                    id: cid,
                    event: other
                }
            ),
            Err(TxError::EventNotAllowed { kind })
        );
    }
    // A land title takes no named event.
    let title = w.issue_title("moi-land", "deed-1", "lot-1");
    assert_eq!(
        w.submit(
            "moi-land",
            Action::RecordEvent {
                id: title,
                event: named("suspended"),
            }
        ),
        Err(TxError::EventNotAllowed {
            kind: CertKind::LandTitle
        })
    );

    // Not supersedable, by its definition.
    assert_eq!(
        w.submit(
            "moi-land",
            Action::Supersede {
                previous: cid,
                next: w.firm_certificate(kind, "firm-1b"),
            }
        ),
        Err(TxError::SupersedeNotAllowed(kind))
    );
    w.submit(
        "moi-land",
        Action::Revoke {
            id: cid,
            reason: RevocationReason::Cancelled,
        },
    )
    .unwrap();
    assert!(matches!(w.cert(&cid).status, CertStatus::Revoked { .. }));
}

#[test]
fn a_kind_is_registered_only_under_a_name_of_its_own_and_keeps_it() {
    let mut w = World::new();
    let kind = w.register_construction_firms();
    // The same name again.
    assert_eq!(
        w.pass(GovernanceChange::AddKind {
            policy: construction_firm_policy(),
        }),
        Err(TxError::KindNameTaken(
            "construction-firm-certificate".into()
        ))
    );
    let with_name = |name: &str| {
        let mut p = construction_firm_policy();
        p.definition.as_mut().unwrap().name = KindName::new(name).unwrap();
        p
    };
    // A built-in kind's name, a kind number, no definition, an event twice.
    let mut twice = with_name("exchange-record");
    twice.definition.as_mut().unwrap().events =
        cachet_chain::state::EventNames::new(vec![EventName::new("sent").unwrap(); 2]).unwrap();
    let mut undefined = construction_firm_policy();
    undefined.definition = None;
    for policy in [
        with_name("land-title"),
        with_name("kind-1"),
        undefined,
        twice,
    ] {
        assert!(
            matches!(
                w.pass(GovernanceChange::AddKind { policy }),
                Err(TxError::InvalidChange(_))
            ),
            "refused"
        );
    }
    // A second kind takes the next number.
    w.pass(GovernanceChange::AddKind {
        policy: with_name("official-document-exchange-record"),
    })
    .unwrap();
    assert!(
        w.chain
            .get::<KindPolicy>(&StateKey::Policy(CertKind::Registered(1)))
            .unwrap()
            .is_some()
    );

    // A policy change keeps the name; titles and bounds may change.
    let mut renamed = construction_firm_policy();
    renamed.definition.as_mut().unwrap().name = KindName::new("builders").unwrap();
    assert!(matches!(
        w.pass(GovernanceChange::SetKindPolicy {
            kind,
            policy: renamed
        }),
        Err(TxError::InvalidChange(_))
    ));
    let mut retitled = construction_firm_policy();
    retitled.definition.as_mut().unwrap().title_en = Name::new("Builder licence").unwrap();
    w.pass(GovernanceChange::SetKindPolicy {
        kind,
        policy: retitled.clone(),
    })
    .unwrap();
    assert_eq!(
        w.chain.get::<KindPolicy>(&StateKey::Policy(kind)).unwrap(),
        Some(retitled)
    );
    // A built-in kind's policy takes no definition; an unregistered number has no policy.
    let mut builtin: KindPolicy = w
        .chain
        .get(&StateKey::Policy(CertKind::LandTitle))
        .unwrap()
        .unwrap();
    builtin.definition = construction_firm_policy().definition;
    assert!(matches!(
        w.pass(GovernanceChange::SetKindPolicy {
            kind: CertKind::LandTitle,
            policy: builtin
        }),
        Err(TxError::InvalidChange(_))
    ));
    assert_eq!(
        w.pass(GovernanceChange::SetKindPolicy {
            kind: CertKind::Registered(9),
            policy: construction_firm_policy()
        }),
        Err(TxError::UnknownKind(CertKind::Registered(9)))
    );
}

/// A verifier that holds only the genesis file — which never heard of the kind — verifies a
/// registered kind's receipt, names the kind as registered and trusts it as long as the
/// kind's own policy says, all from the policy the receipt carries.
#[test]
fn a_registered_kinds_receipt_carries_its_policy_for_a_verifier_that_never_heard_of_it() {
    let mut w = World::new();
    let kind = w.register_construction_firms();
    let cert = w.firm_certificate(kind, "firm-1");
    let cid = cert.cert_id();
    w.submit("moi-land", Action::Issue(cert)).unwrap();
    let receipt = certificate_receipt(&w, cid);
    assert_eq!(
        receipt.version,
        cachet_chain::receipt::RECEIPT_VERSION_WITH_POLICY
    );
    let receipt = Receipt::decode(&receipt.encode()).unwrap();
    let trust = trust();
    assert!(!trust.policies.contains_key(&kind));
    let now = receipt.header.time.plus_ms(1000);
    let v = verify(&receipt, &trust, now, None).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
    let definition = v.kind_definition.unwrap();
    assert_eq!(definition.name.as_str(), "construction-firm-certificate");
    assert_eq!(definition.title_zh_tw.as_str(), "營造業電子證書");

    // Trusted for three days, its policy's age, not the genesis kinds' one or thirty days.
    let old = receipt.header.time.plus_ms(3 * DAY + 1);
    match verify(&receipt, &trust, old, None) {
        Err(ReceiptError::TooOld { kind, max_ms, .. }) => {
            assert_eq!(kind, "construction-firm-certificate");
            assert_eq!(max_ms, 3 * DAY);
        }
        other => panic!("{other:?}"),
    }

    // Without its policy, with another kind's, with a changed one, or with one on a built-in
    // kind's receipt: refused.
    let mut stripped = receipt.clone();
    stripped.kind_policy = None;
    stripped.version = RECEIPT_VERSION;
    assert!(matches!(
        verify(&stripped, &trust, now, None),
        Err(ReceiptError::Malformed(_))
    ));
    let mut other = receipt.clone();
    other.kind_policy.as_mut().unwrap().kind = CertKind::LandTitle;
    assert!(matches!(
        verify(&other, &trust, now, None),
        Err(ReceiptError::Malformed(_))
    ));
    let mut longer = receipt.clone();
    let mut policy = construction_firm_policy();
    policy.max_receipt_age_ms = 365 * DAY;
    longer.kind_policy.as_mut().unwrap().policy = cachet_chain::codec::encode(&policy);
    assert!(matches!(
        verify(&longer, &trust, now, None),
        Err(ReceiptError::BadProof(_))
    ));
    let title = w.issue_title("moi-land", "deed-1", "lot-1");
    let mut title_receipt = certificate_receipt(&w, title);
    assert_eq!(title_receipt.version, RECEIPT_VERSION);
    title_receipt.kind_policy = receipt.kind_policy.clone();
    title_receipt.version = cachet_chain::receipt::RECEIPT_VERSION_WITH_POLICY;
    let now = title_receipt.header.time.plus_ms(1000);
    assert!(matches!(
        verify(&title_receipt, &trust, now, None),
        Err(ReceiptError::Malformed(_))
    ));
    // A version and a policy that disagree cannot even be encoded.
    title_receipt.version = RECEIPT_VERSION;
    assert!(borsh::to_vec(&title_receipt).is_err());
}
