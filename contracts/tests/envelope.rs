//! The transaction envelope: chain id, signature, signer, key, nonce and expiry.

mod common;
use cachet_chain::crypto::SecretKey;
use cachet_chain::ids::{ChainId, Height};
use cachet_chain::tx::Action;
use cachet_contracts::TxError;
use common::*;

fn an_issue(w: &World, name: &str) -> Action {
    Action::Issue(w.permit(name))
}

#[test]
fn a_valid_transaction_advances_the_nonce() {
    let mut w = World::new();
    assert_eq!(w.agency("moea-investment").next_nonce, 0);
    w.submit("moea-investment", an_issue(&w, "p1")).unwrap();
    assert_eq!(w.agency("moea-investment").next_nonce, 1);
}

#[test]
fn wrong_chain_is_refused() {
    let mut w = World::new();
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.chain_id = ChainId::new("other-chain").unwrap();
    let tx = tx.body.sign(&w.keys["moea-investment"]);
    let e = w.submit_tx(tx).unwrap_err();
    assert!(matches!(e, TxError::WrongChain { .. }), "{e}");
    assert_eq!(e.code(), 1101);
}

#[test]
fn bad_signature_is_refused() {
    let mut w = World::new();
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.nonce += 0; // unchanged body, foreign signature:
    tx.signature = SecretKey::dev("someone else").sign(&tx.signing_message());
    assert_eq!(w.submit_tx(tx).unwrap_err(), TxError::BadSignature);
    // A body changed after signing.
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.expires_at = Height(tx.body.expires_at.0 + 1);
    assert_eq!(w.submit_tx(tx).unwrap_err(), TxError::BadSignature);
}

#[test]
fn unknown_signer_is_refused() {
    let mut w = World::new();
    let stranger = SecretKey::dev("stranger");
    w.keys.insert("stranger".into(), stranger.clone());
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.signer = id("stranger");
    tx.body.key = stranger.public();
    let tx = tx.body.sign(&stranger);
    assert_eq!(
        w.submit_tx(tx).unwrap_err(),
        TxError::UnknownAgency(id("stranger"))
    );
}

#[test]
fn a_key_that_is_not_the_signers_current_key_is_refused() {
    let mut w = World::new();
    // Correctly signed, but with the key of another agency.
    let other = w.keys["moi-land"].clone();
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.key = other.public();
    let tx = tx.body.sign(&other);
    assert_eq!(
        w.submit_tx(tx).unwrap_err(),
        TxError::KeyNotAuthorized(id("moea-investment"))
    );
}

#[test]
fn a_replayed_transaction_is_refused() {
    let mut w = World::new();
    let tx = w.tx("moea-investment", an_issue(&w, "p1"));
    w.submit_tx(tx.clone()).unwrap();
    let e = w.submit_tx(tx).unwrap_err();
    assert_eq!(
        e,
        TxError::NonceReplayed {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(e.code(), 1106);
}

#[test]
fn a_nonce_ahead_is_refused() {
    let mut w = World::new();
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.nonce = 5;
    let tx = tx.body.sign(&w.keys["moea-investment"]);
    assert_eq!(
        w.submit_tx(tx).unwrap_err(),
        TxError::NonceTooHigh {
            expected: 0,
            got: 5
        }
    );
}

#[test]
fn an_expired_transaction_is_refused() {
    let mut w = World::new();
    let mut tx = w.tx("moea-investment", an_issue(&w, "p1"));
    tx.body.expires_at = Height(0);
    let tx = tx.body.sign(&w.keys["moea-investment"]);
    assert!(matches!(
        w.submit_tx(tx).unwrap_err(),
        TxError::TxExpired { .. }
    ));
}

#[test]
fn error_codes_are_distinct_and_stable() {
    use cachet_chain::ids::CertKind;
    let samples = [
        TxError::Malformed(String::new()),
        TxError::Oversized { len: 0, max: 0 },
        TxError::BadSignature,
        TxError::UnknownAgency(id("a")),
        TxError::NonceReplayed {
            expected: 0,
            got: 0,
        },
        TxError::NotAccredited {
            agency: id("a"),
            kind: CertKind::LandTitle,
        },
        TxError::UnknownCertificate(cachet_chain::CertId(cachet_chain::Hash32::ZERO)),
        TxError::AlreadyRevoked,
        TxError::PendingApproval,
        TxError::AttestationReplayed {
            oracle: String::new(),
            nonce: 0,
        },
        TxError::AttestationOutsideWindow(String::new()),
        TxError::ProposalClosed,
    ];
    let codes: Vec<u32> = samples.iter().map(TxError::code).collect();
    assert_eq!(
        codes,
        [
            1001, 1002, 1102, 1103, 1106, 1201, 1301, 1303, 1305, 1406, 1404, 1502
        ]
    );
    let names: Vec<&str> = samples.iter().map(TxError::name).collect();
    let mut dedup = names.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len());
}
