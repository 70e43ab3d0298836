//! Whole blocks: header checks, replay on another instance, determinism of the state root.

mod common;
use cachet_chain::block::Block;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::state::{CertificateRecord, StateKey};
use cachet_chain::tx::{Action, Issuance, RevocationReason, Terms, Transaction};
use cachet_contracts::{BlockError, LocalChain, TxError, example};
use common::*;
use proptest::prelude::*;

fn title_tx(w: &World, agency: &str, nonce: u64, name: &str) -> Transaction {
    let mut tx = w.tx(
        agency,
        Action::Issue(Issuance {
            kind: CertKind::LandTitle,
            commitment: doc(name),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: parcel(name),
            },
        }),
    );
    tx.body.nonce = nonce;
    tx.body.sign(&w.keys[agency])
}

fn proposer() -> cachet_chain::PublicKey {
    example::validator_key("moi-land").public()
}

#[test]
fn a_follower_replays_blocks_to_the_same_state() {
    let mut leader = World::new();
    let mut follower = LocalChain::new(&example::genesis()).unwrap();
    for round in 0..5u64 {
        let txs: Vec<_> = (0..10)
            .map(|i| {
                title_tx(
                    &leader,
                    "moi-land",
                    round * 10 + i,
                    &format!("d{round}-{i}"),
                )
            })
            .collect();
        leader.time = leader.time.plus_ms(1000);
        let built = leader.chain.propose(leader.time, proposer(), txs).unwrap();
        assert!(built.failures().is_empty(), "{:?}", built.failures());
        // Through the wire format.
        let block = Block::decode(&built.block.encode()).unwrap();
        follower.apply(&block).unwrap();
        assert_eq!(follower.head(), leader.chain.head());
    }
}

#[test]
fn tampered_blocks_are_rejected() {
    let mut w = World::new();
    let mut follower = LocalChain::new(&example::genesis()).unwrap();
    let txs = vec![
        title_tx(&w, "moi-land", 0, "a"),
        title_tx(&w, "moi-land", 1, "b"),
    ];
    w.time = w.time.plus_ms(1000);
    let good = w.chain.propose(w.time, proposer(), txs).unwrap().block;

    let mut b = good.clone();
    b.header.state_root = Hash32([1; 32]);
    assert!(matches!(
        follower.clone().apply(&b),
        Err(BlockError::StateRoot { .. })
    ));

    let mut b = good.clone();
    b.txs.swap(0, 1);
    assert!(
        matches!(follower.clone().apply(&b), Err(BlockError::Header(_))),
        "tx root"
    );

    let mut b = good.clone();
    b.header.tx_root = cachet_chain::block::tx_root(&b.txs[..1]);
    b.txs.truncate(1);
    assert!(
        matches!(follower.clone().apply(&b), Err(BlockError::Header(_))),
        "tx count"
    );

    let mut b = good.clone();
    b.header.time = Timestamp(0);
    assert!(
        matches!(follower.clone().apply(&b), Err(BlockError::Header(_))),
        "time"
    );

    let mut b = good.clone();
    b.header.parent = Hash32([2; 32]);
    assert!(
        matches!(follower.clone().apply(&b), Err(BlockError::Header(_))),
        "parent"
    );

    // A transaction whose signature was tampered with, with the roots recomputed.
    let mut b = good.clone();
    b.txs[1].body.nonce = 1;
    b.txs[1].signature = example::agency_key("moea-investment").sign(&b.txs[1].signing_message());
    b.header.tx_root = cachet_chain::block::tx_root(&b.txs);
    assert!(matches!(
        follower.clone().apply(&b),
        Err(BlockError::Tx {
            index: 1,
            error: TxError::BadSignature
        })
    ));

    // A refused transaction makes the block invalid.
    let mut b = good.clone();
    b.txs[1] = title_tx(&w, "moi-land", 0, "c"); // nonce 0 again: a replay
    b.header.tx_root = cachet_chain::block::tx_root(&b.txs);
    assert!(matches!(
        follower.clone().apply(&b),
        Err(BlockError::Tx {
            index: 1,
            error: TxError::NonceReplayed { .. }
        })
    ));

    follower.apply(&good).unwrap();
}

/// A transaction the rules refuse, pipelined between good ones of the same agency, is refused
/// in the block: its nonce is used, nothing else changes, the ones after it are carried out,
/// and a follower reaches the same state.
#[test]
fn a_refused_transaction_uses_its_nonce_and_holds_nothing_up() {
    let mut w = World::new();
    let mut follower = LocalChain::new(&example::genesis()).unwrap();
    let issued = |tx: &Transaction| match &tx.body.action {
        Action::Issue(issuance) => issuance.cert_id(),
        _ => unreachable!(),
    };
    let first = title_tx(&w, "moi-land", 0, "a");
    let id = issued(&first);
    let revoke = |nonce: u64| {
        let mut tx = w.tx(
            "moi-land",
            Action::Revoke {
                id,
                reason: RevocationReason::Cancelled,
            },
        );
        tx.body.nonce = nonce;
        tx.body.sign(&w.keys["moi-land"])
    };
    let mut expired = title_tx(&w, "moi-land", 3, "expired");
    expired.body.expires_at = w.chain.head().height;
    let expired = expired.body.sign(&w.keys["moi-land"]);
    let never_issued = issued(&expired);
    let txs = vec![
        first,
        revoke(1),
        revoke(2), // revoked already by the one before
        expired,
        title_tx(&w, "moi-land", 4, "b"),
    ];
    w.time = w.time.plus_ms(1000);
    let built = w.chain.propose(w.time, proposer(), txs).unwrap();
    assert!(built.left_out.is_empty(), "{:?}", built.left_out);
    assert_eq!(built.block.txs.len(), 5);
    let codes: Vec<_> = built
        .executed
        .refused
        .iter()
        .map(|(i, e)| (*i, e.code()))
        .collect();
    assert_eq!(
        codes,
        vec![(2, 1303), (3, 1108)],
        "{:?}",
        built.executed.refused
    );
    assert!(built.executed.events[2].is_empty() && built.executed.events[3].is_empty());
    assert_eq!(w.agency("moi-land").next_nonce, 5);
    let never: Option<CertificateRecord> =
        w.chain.get(&StateKey::Certificate(never_issued)).unwrap();
    assert!(never.is_none(), "the expired issuance was not carried out");
    follower.apply(&built.block).unwrap();
    assert_eq!(follower.head(), w.chain.head());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same blocks give the same state root, whatever else happens around them.
    #[test]
    fn same_blocks_same_state_root(names in prop::collection::vec("[a-z]{1,6}", 1..30), split in 1usize..10) {
        let run = || -> Result<_, TestCaseError> {
            let mut w = World::new();
            let mut nonce = 0;
            for chunk in names.chunks(split) {
                let txs: Vec<_> = chunk.iter().map(|n| { let t = title_tx(&w, "moi-land", nonce, n); nonce += 1; t }).collect();
                w.time = w.time.plus_ms(1000);
                let built = w.chain.propose(w.time, proposer(), txs).unwrap();
                // Duplicate names are refused in the block (AlreadyExists): every one is in it.
                prop_assert!(built.left_out.is_empty(), "{:?}", built.left_out);
                prop_assert_eq!(built.block.txs.len(), chunk.len());
            }
            Ok(w.chain.head().clone())
        };
        let a = run()?;
        let b = run()?;
        prop_assert_eq!(a, b);
    }
}
