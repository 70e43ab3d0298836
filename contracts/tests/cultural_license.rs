//! Cultural licences: deposits, grants with k-of-n oracle attestations, anti-replay.

mod common;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::state::{CertStatus, RecordTerms};
use cachet_chain::tx::{
    Action, Attestations, Issuance, LicenseScope, LicenseTerms, OracleAttestation, Terms,
    license_statement,
};
use cachet_contracts::{TxError, example};
use common::*;

fn deposit(w: &mut World, name: &str) -> cachet_chain::CertId {
    let i = Issuance {
        kind: CertKind::CulturalLicense,
        commitment: doc(name),
        valid_from: None,
        valid_until: None,
        terms: Terms::WorkDeposit,
    };
    let id = i.cert_id();
    w.submit("moc-culture", Action::Issue(i)).unwrap();
    id
}

/// A licence grant over `work`, attested by `oracles` with `nonce`, window around now.
fn grant(
    w: &World,
    work: cachet_chain::CertId,
    name: &str,
    oracles: &[&str],
    nonce: u64,
    window: (Timestamp, Timestamp),
) -> Issuance {
    let commitment = doc(name);
    let licensee = Hash32([5; 32]);
    let scope = LicenseScope::REPRODUCE | LicenseScope::PUBLIC_DISPLAY;
    let valid_from = Some(w.now());
    let valid_until = Some(w.now().plus_ms(30 * DAY));
    let statement = license_statement(
        &work,
        &commitment,
        &licensee,
        scope,
        valid_from,
        valid_until,
    );
    let chain_id = w.chain.head().chain_id.clone();
    let attestations = oracles
        .iter()
        .map(|o| {
            OracleAttestation::sign(
                &example::oracle_key(o),
                &chain_id,
                statement,
                nonce,
                window.0,
                window.1,
            )
        })
        .collect();
    Issuance {
        kind: CertKind::CulturalLicense,
        commitment,
        valid_from,
        valid_until,
        terms: Terms::License(LicenseTerms {
            work,
            licensee,
            scope,
            attestations: Attestations::new(attestations).unwrap(),
        }),
    }
}

fn window(w: &World) -> (Timestamp, Timestamp) {
    (w.now(), w.now().plus_ms(5 * MINUTE))
}

#[test]
fn a_licence_with_two_of_three_attestations_is_granted() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let g = grant(
        &w,
        work,
        "licence-1",
        &["oracle-1", "oracle-3"],
        1,
        window(&w),
    );
    let id = g.cert_id();
    w.submit("moc-culture", Action::Issue(g)).unwrap();
    let r = w.cert(&id);
    assert_eq!(r.status, CertStatus::Active);
    assert!(matches!(r.terms, RecordTerms::License { work: wk, .. } if wk == work));
}

#[test]
fn one_attestation_is_not_enough() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let g = grant(&w, work, "licence-1", &["oracle-1"], 1, window(&w));
    assert_eq!(
        w.submit("moc-culture", Action::Issue(g)).unwrap_err(),
        TxError::NotEnoughAttestations { got: 1, needed: 2 }
    );
}

#[test]
fn a_replayed_attestation_is_refused() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let win = window(&w);
    w.submit(
        "moc-culture",
        Action::Issue(grant(
            &w,
            work,
            "licence-1",
            &["oracle-1", "oracle-2"],
            7,
            win,
        )),
    )
    .unwrap();
    // The same oracles and nonce for a new grant: refused, even though the signatures are fresh.
    let e = w
        .submit(
            "moc-culture",
            Action::Issue(grant(
                &w,
                work,
                "licence-2",
                &["oracle-1", "oracle-2"],
                7,
                win,
            )),
        )
        .unwrap_err();
    assert!(
        matches!(e, TxError::AttestationReplayed { nonce: 7, .. }),
        "{e}"
    );
    assert_eq!(e.code(), 1406);
}

#[test]
fn attestations_are_time_windowed() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let past = (w.now().plus_ms(0), w.now().plus_ms(500)); // ends before the next block
    assert!(matches!(
        w.submit(
            "moc-culture",
            Action::Issue(grant(&w, work, "l1", &["oracle-1", "oracle-2"], 1, past))
        )
        .unwrap_err(),
        TxError::AttestationOutsideWindow(_)
    ));
    let future = (w.now().plus_ms(MINUTE), w.now().plus_ms(2 * MINUTE));
    assert!(matches!(
        w.submit(
            "moc-culture",
            Action::Issue(grant(&w, work, "l2", &["oracle-1", "oracle-2"], 2, future))
        )
        .unwrap_err(),
        TxError::AttestationOutsideWindow(_)
    ));
    let long = (w.now(), w.now().plus_ms(11 * MINUTE));
    assert!(matches!(
        w.submit(
            "moc-culture",
            Action::Issue(grant(&w, work, "l3", &["oracle-1", "oracle-2"], 3, long))
        )
        .unwrap_err(),
        TxError::AttestationWindowTooLong(_)
    ));
}

#[test]
fn attestations_must_come_from_distinct_known_oracles_over_this_grant() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let win = window(&w);
    // An oracle that is not in the set (keys derived the same way, another name).
    let e = w
        .submit(
            "moc-culture",
            Action::Issue(grant(&w, work, "l1", &["oracle-1", "oracle-9"], 1, win)),
        )
        .unwrap_err();
    assert!(matches!(e, TxError::UnknownOracle(_)), "{e}");
    let e = w
        .submit(
            "moc-culture",
            Action::Issue(grant(&w, work, "l1", &["oracle-1", "oracle-1"], 1, win)),
        )
        .unwrap_err();
    assert!(matches!(e, TxError::DuplicateOracle(_)), "{e}");
    // Attestations made for another grant do not carry over.
    let mut g = grant(&w, work, "l1", &["oracle-1", "oracle-2"], 1, win);
    let other = grant(&w, work, "l-other", &["oracle-1", "oracle-2"], 1, win);
    if let (Terms::License(t), Terms::License(o)) = (&mut g.terms, other.terms) {
        t.attestations = o.attestations;
    }
    let e = w.submit("moc-culture", Action::Issue(g)).unwrap_err();
    assert!(matches!(e, TxError::BadAttestationSignature(_)), "{e}");
}

#[test]
fn a_licence_needs_a_deposited_active_work_and_an_end() {
    let mut w = World::new();
    let ghost = cachet_chain::CertId::derive(CertKind::CulturalLicense, &doc("ghost"));
    let e = w
        .submit(
            "moc-culture",
            Action::Issue(grant(
                &w,
                ghost,
                "l1",
                &["oracle-1", "oracle-2"],
                1,
                window(&w),
            )),
        )
        .unwrap_err();
    assert_eq!(e, TxError::UnknownCertificate(ghost));
    let work = deposit(&mut w, "painting");
    let mut g = grant(&w, work, "l2", &["oracle-1", "oracle-2"], 2, window(&w));
    g.valid_until = None;
    assert!(matches!(
        w.submit("moc-culture", Action::Issue(g)).unwrap_err(),
        TxError::InvalidValidity(_)
    ));
    // A licence over a licence is not a licence over a work.
    let lic = grant(&w, work, "l3", &["oracle-1", "oracle-2"], 3, window(&w));
    let lic_id = lic.cert_id();
    w.submit("moc-culture", Action::Issue(lic)).unwrap();
    let e = w
        .submit(
            "moc-culture",
            Action::Issue(grant(
                &w,
                lic_id,
                "l4",
                &["oracle-1", "oracle-2"],
                4,
                window(&w),
            )),
        )
        .unwrap_err();
    assert!(matches!(e, TxError::TermsMismatch(_)), "{e}");
}

#[test]
fn a_licence_is_revoked_by_its_issuer() {
    let mut w = World::new();
    let work = deposit(&mut w, "painting");
    let g = grant(&w, work, "l1", &["oracle-2", "oracle-3"], 1, window(&w));
    let id = g.cert_id();
    w.submit("moc-culture", Action::Issue(g)).unwrap();
    let revoke = Action::Revoke {
        id,
        reason: cachet_chain::tx::RevocationReason::Cancelled,
    };
    assert!(matches!(
        w.submit("moi-land", revoke.clone()).unwrap_err(),
        TxError::NotIssuer(_)
    ));
    w.submit("moc-culture", revoke).unwrap();
    assert!(matches!(w.cert(&id).status, CertStatus::Revoked { .. }));
}
