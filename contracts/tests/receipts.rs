//! Receipts verify with the core alone; any flipped byte, an untrusted validator set, too few
//! signatures, another chain or too old a receipt is refused.

mod common;
use cachet_chain::crypto::SecretKey;
use cachet_chain::document::{Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::receipt::{
    CommitSignatures, EntryRevocation, Receipt, ReceiptError, Subject, Transitions, verify,
};
use cachet_chain::state::ValidatorSet;
use cachet_chain::tx::{Action, RevocationReason};
use cachet_chain::verdict::Verdict;
use cachet_contracts::example;
use common::receipts::*;
use common::*;

fn soon(w: &World) -> Timestamp {
    w.chain.head().time.plus_ms(1000)
}

#[test]
fn a_title_receipt_verifies_offline_with_its_document() {
    let mut w = World::new();
    let salt = Salt(Hash32([9; 32]));
    let fp = Fingerprint::of(FingerprintAlg::Sha256, b"deed-1");
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let r = certificate_receipt(&w, t);
    let decoded = Receipt::decode(&r.encode()).unwrap();
    let v = verify(&decoded, &trust(), soon(&w), Some((&fp, &salt))).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
    assert_eq!(v.document_matches, Some(true));
    assert_eq!(v.issuer.unwrap().as_str(), "moi-land");
    let other = Fingerprint::of(FingerprintAlg::Sha256, b"deed-2");
    assert_eq!(
        verify(&decoded, &trust(), soon(&w), Some((&other, &salt)))
            .unwrap()
            .document_matches,
        Some(false)
    );
    assert!(
        r.encode().len() <= 1536,
        "receipt is {} bytes",
        r.encode().len()
    );
}

#[test]
fn verdicts_follow_the_lifecycle() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    w.submit(
        "moi-land",
        Action::Revoke {
            id: t,
            reason: RevocationReason::Fraud,
        },
    )
    .unwrap();
    assert_eq!(
        verify(&certificate_receipt(&w, t), &trust(), soon(&w), None)
            .unwrap()
            .verdict,
        Verdict::Revoked
    );
    let ghost = cachet_chain::CertId::derive(CertKind::LandTitle, &doc("ghost"));
    let r = certificate_receipt(&w, ghost);
    assert!(matches!(r.subject, Subject::Absent { .. }));
    assert_eq!(
        verify(&r, &trust(), soon(&w), None).unwrap().verdict,
        Verdict::Unknown
    );
    let p = w.permit("permit-1");
    let pid = p.cert_id();
    let until = p.valid_until.unwrap();
    w.submit("moea-investment", Action::Issue(p)).unwrap();
    assert_eq!(
        verify(&certificate_receipt(&w, pid), &trust(), soon(&w), None)
            .unwrap()
            .verdict,
        Verdict::Pending
    );
    w.submit("nia-immigration", Action::Approve { id: pid })
        .unwrap();
    w.submit("mol-labor", Action::Approve { id: pid }).unwrap();
    let r = certificate_receipt(&w, pid);
    assert_eq!(
        verify(&r, &trust(), soon(&w), None).unwrap().verdict,
        Verdict::Valid
    );
    // Past its window it is expired, but only a fresh receipt can say so: an old one fails closed.
    let late = until.plus_ms(1);
    assert!(matches!(
        verify(&r, &trust(), late, None),
        Err(ReceiptError::TooOld { .. })
    ));
}

#[test]
fn a_batch_entry_receipt_proves_inclusion_and_non_revocation() {
    let mut w = World::new();
    let (b, tree, commitments) = issue_reward_orders(&mut w);
    let entry_receipt =
        |w: &World, i: usize| batch_entry_receipt(w, "dgpa-personnel", &b, &tree, &commitments, i);
    // While no entry is revoked, the batch record says so and nothing more is proven.
    let before = entry_receipt(&w, 417);
    assert!(matches!(
        &before.subject,
        Subject::BatchEntry {
            revocation: EntryRevocation::NoneInBatch,
            ..
        }
    ));
    assert_eq!(
        verify(&before, &trust(), soon(&w), None).unwrap().verdict,
        Verdict::Valid
    );
    revoke_reward_order(&mut w, &b, &tree, &commitments, 417);
    // Once one is, every entry's receipt must prove its own: the old shape is refused.
    let mut unproven = entry_receipt(&w, 418);
    if let Subject::BatchEntry { revocation, .. } = &mut unproven.subject {
        assert!(matches!(revocation, EntryRevocation::NotRevoked { .. }));
        *revocation = EntryRevocation::NoneInBatch;
    }
    assert!(matches!(
        verify(&unproven, &trust(), soon(&w), None),
        Err(ReceiptError::BadProof(_))
    ));
    assert_eq!(
        verify(&entry_receipt(&w, 417), &trust(), soon(&w), None)
            .unwrap()
            .verdict,
        Verdict::Revoked
    );
    assert_eq!(
        verify(&entry_receipt(&w, 418), &trust(), soon(&w), None)
            .unwrap()
            .verdict,
        Verdict::Valid
    );
    // The wrong commitment for a position is not in the batch.
    let mut r = entry_receipt(&w, 10);
    if let Subject::BatchEntry { commitment, .. } = &mut r.subject {
        *commitment = commitments[11];
    }
    assert!(matches!(
        verify(&r, &trust(), soon(&w), None),
        Err(ReceiptError::BadProof(_))
    ));
}

#[test]
fn any_flipped_byte_is_rejected() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let bytes = certificate_receipt(&w, t).encode();
    let now = soon(&w);
    let trust = trust();
    for i in 0..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            let accepted = Receipt::decode(&bad)
                .ok()
                .and_then(|r| verify(&r, &trust, now, None).ok());
            assert!(
                accepted.is_none(),
                "flipping bit {bit} of byte {i} of {} was accepted",
                bytes.len()
            );
        }
    }
}

#[test]
fn untrusted_sets_too_few_signatures_and_other_chains_are_refused() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let r = certificate_receipt(&w, t);
    // A verifier that trusts another consortium.
    let mut other = trust();
    other.validators = ValidatorSet::new(vec![cachet_chain::state::Validator {
        agency: id("moi-land"),
        key: SecretKey::dev("somebody else").public(),
        power: 1,
    }])
    .unwrap();
    assert_eq!(
        verify(&r, &other, soon(&w), None).unwrap_err(),
        ReceiptError::UntrustedValidators
    );
    // Two of four validators are not two thirds.
    let mut two = r.clone();
    two.commit = commit(&w, &[0, 1]);
    assert!(matches!(
        verify(&two, &trust(), soon(&w), None),
        Err(ReceiptError::InsufficientPower {
            signed: 2,
            total: 4
        })
    ));
    // The same signature twice does not count twice.
    let mut dup = r.clone();
    let first = dup.commit.signatures[0].clone();
    dup.commit.signatures =
        CommitSignatures::new(vec![first.clone(), first.clone(), first]).unwrap();
    assert!(matches!(
        verify(&dup, &trust(), soon(&w), None),
        Err(ReceiptError::BadCommit(_))
    ));
    let mut chain = trust();
    chain.chain_id = cachet_chain::ChainId::new("other-chain").unwrap();
    assert!(matches!(
        verify(&r, &chain, soon(&w), None),
        Err(ReceiptError::WrongChain { .. })
    ));
    // The example policy trusts land-title receipts for one day.
    let later = w.chain.head().time.plus_ms(24 * 3600 * 1000 + 1);
    assert!(matches!(
        verify(&r, &trust(), later, None),
        Err(ReceiptError::TooOld { .. })
    ));
}

#[test]
fn receipts_cross_validator_set_changes_with_transitions() {
    let mut w = World::new();
    let Joined {
        transition,
        old_set,
        new_set,
        new_keys,
    } = a_validator_joins(&mut w);
    assert_eq!(new_set.validators.len(), 5);
    assert_eq!(transition.header.next_validators_hash, new_set.hash());

    // A title issued after the change is signed by the new set.
    let t = w.issue_title("moi-land", "deed-after-change", "lot-9");
    let mut r = certificate_receipt(&w, t);
    r.commit = sign_with(w.chain.head(), &new_set, &new_keys);
    assert_eq!(
        verify(&r, &trust(), soon(&w), None).unwrap_err(),
        ReceiptError::UntrustedValidators
    );
    r.transitions = Transitions::new(vec![transition.clone()]).unwrap();
    let decoded = Receipt::decode(&r.encode()).unwrap();
    assert_eq!(
        verify(&decoded, &trust(), soon(&w), None).unwrap().verdict,
        Verdict::Valid
    );
    // A transition naming another set than its header does not count.
    let mut forged = transition;
    forged.next = old_set;
    r.transitions = Transitions::new(vec![forged]).unwrap();
    assert!(verify(&r, &trust(), soon(&w), None).is_err());
}

#[test]
fn a_title_issued_earlier_in_the_block_that_rotates_its_issuers_key_is_valid() {
    let mut w = World::new();
    let new_key = SecretKey::dev("guting-land-office-2027");
    let proposal = rotation_one_vote_short(&mut w, "guting-land-office", &new_key);
    // One block: the land office issues with its old key, then the last vote rotates it.
    let issuance = title("deed-same-block", "lot-same-block");
    let cert = issuance.cert_id();
    let issue = w.tx("guting-land-office", Action::Issue(issuance));
    let vote = w.tx("dgpa-personnel", Action::Vote { proposal });
    let built = w.submit_block(vec![issue, vote]);
    assert!(built.failures().is_empty(), "{:?}", built.failures());
    let agency = w.agency("guting-land-office");
    assert_eq!(agency.current_key(), Some(&new_key.public()));
    assert_eq!(w.cert(&cert).issued_at, w.chain.head().height);
    // The rules accepted the title under the key valid when it executed: a verifier agrees.
    let v = verify(&certificate_receipt(&w, cert), &trust(), soon(&w), None).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
}

#[test]
fn a_title_stays_valid_after_its_issuers_key_is_rotated() {
    let mut w = World::new();
    let cert = w.issue_title("guting-land-office", "deed-before", "lot-before");
    let new_key = SecretKey::dev("guting-land-office-2028");
    let proposal = rotation_one_vote_short(&mut w, "guting-land-office", &new_key);
    w.submit("dgpa-personnel", Action::Vote { proposal })
        .unwrap();
    let agency = w.agency("guting-land-office");
    assert_eq!(agency.current_key(), Some(&new_key.public()));
    let v = verify(&certificate_receipt(&w, cert), &trust(), soon(&w), None).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
}

#[test]
fn a_permit_is_not_yet_valid_before_its_window_and_expired_after_it() {
    let mut w = World::new();
    let (pid, from, until) = approved_permit_from_tomorrow(&mut w);
    let verdict = |w: &World| {
        verify(&certificate_receipt(w, pid), &trust(), soon(w), None)
            .unwrap()
            .verdict
    };
    assert_eq!(verdict(&w), Verdict::NotYetValid);
    // The chain's clock inside the window, then past it (each block's time is the next one's
    // floor), with a fresh receipt each time.
    w.time = from;
    w.issue_title("moi-land", "deed-in-window", "lot-in-window");
    assert_eq!(verdict(&w), Verdict::Valid);
    w.time = until;
    w.issue_title("moi-land", "deed-after-window", "lot-after-window");
    assert_eq!(verdict(&w), Verdict::Expired);
}

#[test]
fn the_genesis_anchor_stands_for_the_genesis_hash_and_nothing_else() {
    use cachet_chain::trust::{AnchorError, TrustAnchor};
    let doc = example::genesis();
    let anchor = cachet_contracts::anchor(&doc).unwrap();
    let root = cachet_contracts::genesis_state(&doc).unwrap().0.hash();
    let decoded = TrustAnchor::decode(&anchor.encode()).unwrap();
    let trusted = decoded.trust(&root).unwrap();
    let from_file = trust();
    assert_eq!(trusted.chain_id, from_file.chain_id);
    assert_eq!(trusted.height.0, 0);
    assert_eq!(trusted.validators, from_file.validators);
    assert_eq!(trusted.policies, from_file.policies);
    assert_eq!(trusted.policies.len(), CertKind::ALL.len());

    let other_root = Hash32([7; 32]);
    assert!(matches!(
        anchor.trust(&other_root),
        Err(AnchorError::WrongRoot { .. })
    ));
    let mut other_set = anchor.clone();
    other_set.validators = ValidatorSet::new(vec![cachet_chain::state::Validator {
        agency: id("moi-land"),
        key: SecretKey::dev("somebody else").public(),
        power: 1,
    }])
    .unwrap();
    assert_eq!(
        other_set.trust(&root).unwrap_err(),
        AnchorError::WrongValidators
    );
    // A policy with a longer receipt age than the state holds does not verify.
    let mut looser = anchor.clone();
    let mut policies: Vec<_> = looser.policies.iter().cloned().collect();
    let mut p: cachet_chain::state::KindPolicy =
        cachet_chain::state::decode_value(&policies[0].policy).unwrap();
    p.max_receipt_age_ms *= 10;
    policies[0].policy = cachet_chain::codec::encode(&p);
    looser.policies = cachet_chain::trust::PolicyProofs::new(policies.clone()).unwrap();
    assert!(matches!(
        looser.trust(&root),
        Err(AnchorError::BadPolicy(_))
    ));
    // Nor does a kind listed twice.
    let mut twice = anchor.clone();
    let mut doubled: Vec<_> = anchor.policies.iter().cloned().collect();
    doubled.insert(1, doubled[0].clone());
    twice.policies = cachet_chain::trust::PolicyProofs::new(doubled).unwrap();
    assert!(matches!(twice.trust(&root), Err(AnchorError::BadPolicy(_))));
}

#[test]
fn a_receipt_at_or_below_the_trusted_height_is_refused() {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let r = certificate_receipt(&w, t);
    let mut later = trust();
    later.height = r.header.height;
    assert!(matches!(
        verify(&r, &later, soon(&w), None),
        Err(ReceiptError::BadCommit(_))
    ));
}

#[test]
fn a_verifier_advances_to_a_checkpoint_and_then_needs_no_older_transitions() {
    use cachet_chain::checkpoint::{Advance, AdvanceError};
    let mut w = World::new();
    let Joined {
        transition,
        new_set,
        new_keys,
        ..
    } = a_validator_joins(&mut w);
    w.issue_title("moi-land", "deed-at-checkpoint", "lot-c");
    let checkpoint = w.chain.head().clone();
    let advance = Advance {
        transitions: Transitions::new(vec![transition.clone()]).unwrap(),
        commit: sign_with(&checkpoint, &new_set, &new_keys),
        anchor: w.chain.anchor().unwrap(),
    };
    let decoded = Advance::decode(&advance.encode()).unwrap();
    let (advanced, root) = decoded.verify(&trust()).unwrap();
    assert_eq!(root, checkpoint.hash());
    assert_eq!(advanced.height, checkpoint.height);
    assert_eq!(advanced.validators, new_set);
    assert_eq!(advanced.policies, trust().policies);

    // A title issued after the checkpoint: its receipt carries no transition for this verifier;
    // one that trusts only the genesis needs the set change.
    let t = w.issue_title("moi-land", "deed-after-checkpoint", "lot-d");
    let mut r = certificate_receipt(&w, t);
    r.commit = sign_with(w.chain.head(), &new_set, &new_keys);
    assert_eq!(
        verify(&r, &advanced, soon(&w), None).unwrap().verdict,
        Verdict::Valid
    );
    assert_eq!(
        verify(&r, &trust(), soon(&w), None).unwrap_err(),
        ReceiptError::UntrustedValidators
    );
    // Transitions at or below the checkpoint are not the advanced verifier's to follow.
    r.transitions = Transitions::new(vec![transition.clone()]).unwrap();
    assert!(matches!(
        verify(&r, &advanced, soon(&w), None),
        Err(ReceiptError::BadCommit(_))
    ));
    // A receipt from before the checkpoint proves nothing to a verifier past it.
    let old = certificate_receipt(&w, t);
    assert!(verify(&old, &advanced, soon(&w), None).is_err());

    // The advance itself: without the set change, signed by too few, or from a verifier that
    // is already past it.
    let mut skipped = advance.clone();
    skipped.transitions = Transitions::default();
    assert_eq!(
        skipped.verify(&trust()).unwrap_err(),
        AdvanceError::NotCommitted(ReceiptError::UntrustedValidators)
    );
    let mut thin = advance.clone();
    thin.commit = sign_with(&checkpoint, &new_set, &new_keys[..3]);
    assert!(matches!(
        thin.verify(&trust()),
        Err(AdvanceError::NotCommitted(
            ReceiptError::InsufficientPower { .. }
        ))
    ));
    assert!(matches!(
        advance.verify(&advanced),
        Err(AdvanceError::NotCommitted(ReceiptError::BadCommit(_)))
    ));
    // An anchor whose validator set is not the one its header names.
    let mut other = advance;
    other.anchor.validators = example::genesis().validator_set().unwrap();
    assert!(matches!(
        other.verify(&trust()),
        Err(AdvanceError::Anchor(_))
    ));
}

#[test]
fn a_title_transferred_ten_times_carries_its_whole_lineage_in_one_receipt() {
    use cachet_chain::receipt::Lineage;
    let mut w = World::new();
    let ids = transferred_title(&mut w, "deed", "lot-chain", "guting-land-office", 10);
    let current = *ids.last().unwrap();
    let r = lineage_receipt(&w, current);
    let decoded = Receipt::decode(&r.encode()).unwrap();
    let v = verify(&decoded, &trust(), soon(&w), None).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
    // Newest first: the ten earlier titles, each superseded by the one after it.
    let hops: Vec<_> = v.lineage.iter().map(|(id, _)| *id).collect();
    let mut expected: Vec<_> = ids[..10].to_vec();
    expected.reverse();
    assert_eq!(hops, expected);
    assert!(v.lineage[9].1.supersedes.is_none(), "the first title");

    // A lineage with a hop left out, or with another certificate's record, is refused.
    let Subject::Certificate { lineage, .. } = &r.subject else {
        panic!("a certificate receipt")
    };
    let mut gapped: Vec<_> = lineage.iter().cloned().collect();
    gapped.remove(3);
    let mut broken = r.clone();
    if let Subject::Certificate { lineage, .. } = &mut broken.subject {
        *lineage = Lineage::new(gapped).unwrap();
    }
    assert!(matches!(
        verify(&broken, &trust(), soon(&w), None),
        Err(ReceiptError::Malformed(_))
    ));
    let other = w.issue_title("moi-land", "deed-elsewhere", "lot-elsewhere");
    let Subject::Certificate {
        record: other_record,
        proof: other_proof,
        ..
    } = certificate_receipt(&w, other).subject
    else {
        panic!("a certificate receipt")
    };
    let mut foreign = lineage_receipt(&w, current);
    if let Subject::Certificate { lineage, .. } = &mut foreign.subject {
        let mut hops: Vec<_> = lineage.iter().cloned().collect();
        hops[0] = cachet_chain::receipt::LineageHop {
            record: other_record,
            proof: other_proof,
        };
        *lineage = Lineage::new(hops).unwrap();
    }
    assert!(verify(&foreign, &trust(), soon(&w), None).is_err());
}
