//! Reward orders: batches by accredited agencies, revoking one entry, accreditation.

mod common;
use cachet_chain::Commitment;
use cachet_chain::crypto::SecretKey;
use cachet_chain::ids::CertKind;
use cachet_chain::merkle::MerkleTree;
use cachet_chain::state::{BatchRecord, Name, RevocationRecord, StateKey};
use cachet_chain::tx::{
    Action, AgencyRegistration, BatchEntry, BatchIssuance, Issuance, RevocationReason, Terms,
    batch_leaf,
};
use cachet_contracts::TxError;
use common::*;

fn orders(n: usize) -> (Vec<Commitment>, MerkleTree) {
    let commitments: Vec<Commitment> = (0..n).map(|i| doc(&format!("order-{i}"))).collect();
    let leaves: Vec<_> = commitments.iter().map(batch_leaf).collect();
    (commitments, MerkleTree::new(&leaves))
}

fn batch(tree: &MerkleTree) -> BatchIssuance {
    BatchIssuance {
        kind: CertKind::RewardOrder,
        root: tree.root(),
        leaf_count: tree.len() as u32,
        valid_from: None,
        valid_until: None,
    }
}

#[test]
fn a_batch_is_anchored_and_one_entry_revoked() {
    let mut w = World::new();
    let (commitments, tree) = orders(1000);
    let b = batch(&tree);
    let batch_id = b.batch_id();
    w.submit("dgpa-personnel", Action::IssueBatch(b.clone()))
        .unwrap();
    let record: BatchRecord = w.chain.get(&StateKey::Batch(batch_id)).unwrap().unwrap();
    assert_eq!(record.leaf_count, 1000);
    assert_eq!(record.issuer, id("dgpa-personnel"));
    // The same batch twice is refused.
    assert!(matches!(
        w.submit("dgpa-personnel", Action::IssueBatch(b))
            .unwrap_err(),
        TxError::AlreadyExists(_)
    ));
    let entry = BatchEntry {
        batch: batch_id,
        commitment: commitments[417],
        proof: tree.proof(417).unwrap(),
    };
    let revoke = Action::RevokeBatchEntry {
        entry: entry.clone(),
        reason: RevocationReason::IssuedInError,
    };
    w.submit("dgpa-personnel", revoke.clone()).unwrap();
    let r: RevocationRecord = w
        .chain
        .get(&StateKey::BatchRevocation(batch_id, 417))
        .unwrap()
        .unwrap();
    assert_eq!(r.commitment, commitments[417]);
    assert!(
        w.chain
            .get::<RevocationRecord>(&StateKey::BatchRevocation(batch_id, 418))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        w.submit("dgpa-personnel", revoke).unwrap_err(),
        TxError::AlreadyRevoked
    );
}

#[test]
fn revoking_an_entry_needs_a_valid_proof_and_a_known_batch() {
    let mut w = World::new();
    let (commitments, tree) = orders(10);
    let b = batch(&tree);
    w.submit("dgpa-personnel", Action::IssueBatch(b.clone()))
        .unwrap();
    // The proof of entry 3 with the commitment of entry 4.
    let wrong = BatchEntry {
        batch: b.batch_id(),
        commitment: commitments[4],
        proof: tree.proof(3).unwrap(),
    };
    assert_eq!(
        w.submit(
            "dgpa-personnel",
            Action::RevokeBatchEntry {
                entry: wrong,
                reason: RevocationReason::Other
            }
        )
        .unwrap_err(),
        TxError::BadBatchProof
    );
    let (_, other_tree) = orders(11);
    let unknown = BatchEntry {
        batch: batch(&other_tree).batch_id(),
        commitment: commitments[3],
        proof: tree.proof(3).unwrap(),
    };
    assert!(matches!(
        w.submit(
            "dgpa-personnel",
            Action::RevokeBatchEntry {
                entry: unknown,
                reason: RevocationReason::Other
            }
        )
        .unwrap_err(),
        TxError::UnknownBatch(_)
    ));
    // Someone who is neither issuer nor accreditor.
    let entry = BatchEntry {
        batch: b.batch_id(),
        commitment: commitments[3],
        proof: tree.proof(3).unwrap(),
    };
    assert!(matches!(
        w.submit(
            "moi-land",
            Action::RevokeBatchEntry {
                entry,
                reason: RevocationReason::Other
            }
        )
        .unwrap_err(),
        TxError::NotIssuer(_)
    ));
}

#[test]
fn batch_sizes_and_kinds_are_checked() {
    let mut w = World::new();
    let mut b = batch(&orders(4).1);
    b.leaf_count = 0;
    assert!(matches!(
        w.submit("dgpa-personnel", Action::IssueBatch(b.clone()))
            .unwrap_err(),
        TxError::BatchSize { .. }
    ));
    b.leaf_count = (1 << 20) + 1;
    assert!(matches!(
        w.submit("dgpa-personnel", Action::IssueBatch(b.clone()))
            .unwrap_err(),
        TxError::BatchSize { .. }
    ));
    // Land titles are never issued in batches.
    b.kind = CertKind::LandTitle;
    b.leaf_count = 4;
    assert_eq!(
        w.submit("moi-land", Action::IssueBatch(b)).unwrap_err(),
        TxError::BatchNotAllowed(CertKind::LandTitle)
    );
}

#[test]
fn dgpa_accredits_a_new_agency_which_then_issues() {
    let mut w = World::new();
    let key = SecretKey::dev("hsinchu-county");
    w.keys.insert("hsinchu-county".into(), key.clone());
    let single = Issuance {
        kind: CertKind::RewardOrder,
        commitment: doc("order-x"),
        valid_from: None,
        valid_until: None,
        terms: Terms::Plain,
    };
    let accredit = Action::Accredit {
        kind: CertKind::RewardOrder,
        agency: id("hsinchu-county"),
        registration: Some(AgencyRegistration {
            name: Name::new("新竹縣政府 Hsinchu County Government").unwrap(),
            key: key.public(),
        }),
    };
    // Only an accreditor of the kind may accredit.
    assert_eq!(
        w.submit("moi-land", accredit.clone()).unwrap_err(),
        TxError::NotAccreditor(id("moi-land"))
    );
    w.submit("dgpa-personnel", accredit.clone()).unwrap();
    assert!(matches!(
        w.submit("dgpa-personnel", accredit).unwrap_err(),
        TxError::AlreadyExists(_)
    ));
    w.submit("hsinchu-county", Action::Issue(single.clone()))
        .unwrap();
    // Accreditation for one kind is not for another.
    let mut title = single.clone();
    title.kind = CertKind::LandTitle;
    title.terms = Terms::LandTitle {
        parcel: parcel("p"),
    };
    assert!(matches!(
        w.submit("hsinchu-county", Action::Issue(title))
            .unwrap_err(),
        TxError::NotAccredited { .. }
    ));
    // Withdrawn accreditation stops issuance.
    w.submit(
        "dgpa-personnel",
        Action::Unaccredit {
            kind: CertKind::RewardOrder,
            agency: id("hsinchu-county"),
        },
    )
    .unwrap();
    let mut next = single;
    next.commitment = doc("order-y");
    assert!(matches!(
        w.submit("hsinchu-county", Action::Issue(next)).unwrap_err(),
        TxError::NotAccredited { .. }
    ));
}

#[test]
fn registering_a_weak_key_is_refused() {
    let mut w = World::new();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let accredit = Action::Accredit {
        kind: CertKind::RewardOrder,
        agency: id("weak-agency"),
        registration: Some(AgencyRegistration {
            name: Name::new("weak").unwrap(),
            key: cachet_chain::PublicKey::Ed25519(identity),
        }),
    };
    assert_eq!(
        w.submit("dgpa-personnel", accredit).unwrap_err(),
        TxError::WeakKey
    );
}
