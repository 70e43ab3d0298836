//! Governance by two thirds of the validator agencies.

mod common;
use cachet_chain::crypto::SecretKey;
use cachet_chain::ids::{CertKind, Height};
use cachet_chain::state::{KindPolicy, Name, Proposal, ProposalStatus, StateKey, ValidatorSet};
use cachet_chain::tx::{Action, AgencyRegistration, GovernanceChange, Issuance, Terms};
use cachet_contracts::{Event, TxError, example};
use common::*;

fn add_agency(name: &str) -> GovernanceChange {
    GovernanceChange::AddAgency {
        id: id(name),
        registration: AgencyRegistration {
            name: Name::new(name).unwrap(),
            key: SecretKey::dev(name).public(),
        },
    }
}

#[test]
fn a_change_needs_two_thirds_of_validator_agencies() {
    let mut w = World::new();
    let events = w
        .submit(
            "moi-land",
            Action::Propose {
                change: add_agency("ncc"),
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    let get = |w: &World| -> Proposal { w.chain.get(&StateKey::Proposal(p)).unwrap().unwrap() };
    assert_eq!(get(&w).status, ProposalStatus::Open);
    w.submit("moea-investment", Action::Vote { proposal: p })
        .unwrap();
    assert_eq!(
        get(&w).status,
        ProposalStatus::Open,
        "2 of 4 is not two thirds"
    );
    assert!(
        w.chain
            .get::<cachet_chain::state::AgencyRecord>(&StateKey::Agency(id("ncc")))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        w.submit("moea-investment", Action::Vote { proposal: p })
            .unwrap_err(),
        TxError::AlreadyVoted(id("moea-investment"))
    );
    let events = w
        .submit("dgpa-personnel", Action::Vote { proposal: p })
        .unwrap();
    assert!(events.contains(&Event::GovernanceExecuted { proposal: p }));
    assert!(matches!(get(&w).status, ProposalStatus::Executed { .. }));
    assert!(
        w.chain
            .get::<cachet_chain::state::AgencyRecord>(&StateKey::Agency(id("ncc")))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        w.submit("moc-culture", Action::Vote { proposal: p })
            .unwrap_err(),
        TxError::ProposalClosed
    );
}

#[test]
fn only_validator_agencies_propose_and_vote() {
    let mut w = World::new();
    assert_eq!(
        w.submit(
            "nia-immigration",
            Action::Propose {
                change: add_agency("x")
            }
        )
        .unwrap_err(),
        TxError::NotValidatorAgency(id("nia-immigration"))
    );
    let events = w
        .submit(
            "moi-land",
            Action::Propose {
                change: add_agency("x"),
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    assert_eq!(
        w.submit("guting-land-office", Action::Vote { proposal: p })
            .unwrap_err(),
        TxError::NotValidatorAgency(id("guting-land-office"))
    );
    let ghost = cachet_chain::TxId(cachet_chain::Hash32([1; 32]));
    assert!(matches!(
        w.submit("moea-investment", Action::Vote { proposal: ghost })
            .unwrap_err(),
        TxError::UnknownProposal(_)
    ));
}

#[test]
fn proposals_expire() {
    let mut doc = example::genesis();
    doc.proposal_ttl = 2;
    let mut w = World::with(doc);
    let events = w
        .submit(
            "moi-land",
            Action::Propose {
                change: add_agency("x"),
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    w.submit("moea-investment", Action::Vote { proposal: p })
        .unwrap();
    w.submit(
        "moi-land",
        Action::Issue(Issuance {
            kind: CertKind::LandTitle,
            commitment: doc_c("d"),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: parcel("p"),
            },
        }),
    )
    .unwrap();
    assert!(matches!(
        w.submit("dgpa-personnel", Action::Vote { proposal: p })
            .unwrap_err(),
        TxError::ProposalExpired(Height(3))
    ));
}

fn doc_c(s: &str) -> cachet_chain::Commitment {
    doc(s)
}

#[test]
fn key_rotation_keeps_history_and_retires_the_old_key() {
    let mut w = World::new();
    let new_key = SecretKey::dev("moi-land-2027");
    let old_key = w.keys["moi-land"].clone();
    let stale = w.tx(
        "moi-land",
        Action::Issue(Issuance {
            kind: CertKind::LandTitle,
            commitment: doc("deed-9"),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: parcel("p9"),
            },
        }),
    );
    w.pass(GovernanceChange::RotateAgencyKey {
        id: id("moi-land"),
        key: new_key.public(),
    })
    .unwrap();
    let rotated_at = w.chain.head().height;
    let agency = w.agency("moi-land");
    assert_eq!(agency.current_key(), Some(&new_key.public()));
    // The history keeps the old key, retired at the rotation's height, and the new one from it.
    let [.., old, new] = &agency.keys[..] else {
        panic!("two keys in the history: {:?}", agency.keys)
    };
    assert_eq!((old.key, old.until), (old_key.public(), Some(rotated_at)));
    assert_eq!(
        (new.key, new.from, new.until),
        (new_key.public(), rotated_at, None)
    );
    // moi-land's nonce has moved on since `stale` was signed; re-sign with the old key at the right nonce.
    let mut stale = stale;
    stale.body.nonce = agency.next_nonce;
    let stale = stale.body.sign(&old_key);
    assert_eq!(
        w.submit_tx(stale).unwrap_err(),
        TxError::KeyNotAuthorized(id("moi-land"))
    );
    w.keys.insert("moi-land".into(), new_key);
    w.issue_title("moi-land", "deed-9", "p9");
}

#[test]
fn validators_are_added_and_removed_from_the_next_height() {
    let mut w = World::new();
    let before = w.chain.head().next_validators_hash;
    let v5 = SecretKey::dev("validator-5").public();
    w.pass(GovernanceChange::AddValidator {
        agency: id("nia-immigration"),
        key: v5,
        power: 1,
    })
    .unwrap();
    let head = w.chain.head().clone();
    assert_eq!(
        head.validators_hash, before,
        "this block is still signed by the old set"
    );
    let set: ValidatorSet = w.chain.get(&StateKey::Validators).unwrap().unwrap();
    assert_eq!(set.validators.len(), 5);
    assert_eq!(head.next_validators_hash, set.hash());
    // NIA now runs a validator, so it takes part in governance: 5 agencies, 4 votes needed.
    let events = w
        .submit(
            "nia-immigration",
            Action::Propose {
                change: add_agency("y"),
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    for a in ["moi-land", "moea-investment"] {
        w.submit(a, Action::Vote { proposal: p }).unwrap();
    }
    let open: Proposal = w.chain.get(&StateKey::Proposal(p)).unwrap().unwrap();
    assert_eq!(
        open.status,
        ProposalStatus::Open,
        "three of five is not two thirds"
    );
    w.submit("dgpa-personnel", Action::Vote { proposal: p })
        .unwrap();
    let done: Proposal = w.chain.get(&StateKey::Proposal(p)).unwrap().unwrap();
    assert!(matches!(done.status, ProposalStatus::Executed { .. }));
    let events = w
        .submit(
            "moi-land",
            Action::Propose {
                change: GovernanceChange::RemoveValidator { key: v5 },
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    for a in ["moea-investment", "dgpa-personnel"] {
        w.submit(a, Action::Vote { proposal: p }).unwrap();
    }
    let events = w
        .submit("nia-immigration", Action::Vote { proposal: p })
        .unwrap();
    assert!(events.contains(&Event::GovernanceExecuted { proposal: p }));
    let set: ValidatorSet = w.chain.get(&StateKey::Validators).unwrap().unwrap();
    assert_eq!(set.validators.len(), 4);
}

#[test]
fn removing_a_validator_agency_is_refused_until_its_validator_goes() {
    let mut w = World::new();
    let events = w
        .submit(
            "moi-land",
            Action::Propose {
                change: GovernanceChange::RemoveAgency {
                    id: id("moc-culture"),
                },
            },
        )
        .unwrap();
    let p = proposal_id(&events);
    w.submit("moea-investment", Action::Vote { proposal: p })
        .unwrap();
    assert_eq!(
        w.submit("dgpa-personnel", Action::Vote { proposal: p })
            .unwrap_err(),
        TxError::AgencyRunsValidator(id("moc-culture"))
    );
}

#[test]
fn a_removed_agency_can_no_longer_sign() {
    let mut w = World::new();
    w.pass(GovernanceChange::RemoveAgency {
        id: id("guting-land-office"),
    })
    .unwrap();
    let e = w
        .submit(
            "guting-land-office",
            Action::Issue(Issuance {
                kind: CertKind::LandTitle,
                commitment: doc("d"),
                valid_from: None,
                valid_until: None,
                terms: Terms::LandTitle {
                    parcel: parcel("p"),
                },
            }),
        )
        .unwrap_err();
    assert_eq!(e, TxError::AgencyRemoved(id("guting-land-office")));
}

#[test]
fn policies_change_by_governance_and_are_checked() {
    let mut w = World::new();
    let mut policy: KindPolicy = w
        .chain
        .get(&StateKey::Policy(CertKind::InvestmentPermit))
        .unwrap()
        .unwrap();
    policy.approvals_required = 3; // more than its two approvers
    let e = w.pass(GovernanceChange::SetKindPolicy {
        kind: CertKind::InvestmentPermit,
        policy: policy.clone(),
    });
    assert!(matches!(e, Err(TxError::InvalidChange(_))), "{e:?}");
    policy.approvals_required = 1;
    w.pass(GovernanceChange::SetKindPolicy {
        kind: CertKind::InvestmentPermit,
        policy,
    })
    .unwrap();
    let p = w.permit("permit-1");
    let pid = p.cert_id();
    w.submit("moea-investment", Action::Issue(p)).unwrap();
    w.submit("mol-labor", Action::Approve { id: pid }).unwrap();
    assert_eq!(w.cert(&pid).status, cachet_chain::state::CertStatus::Active);
}
