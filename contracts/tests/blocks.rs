//! Whole blocks: header checks, replay on another instance, determinism of the state root.

mod common;
use cachet_chain::block::Block;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::tx::{Action, Issuance, Terms, Transaction};
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
        assert!(built.refused.is_empty(), "{:?}", built.refused);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same blocks give the same state root, whatever else happens around them.
    #[test]
    fn same_blocks_same_state_root(names in prop::collection::vec("[a-z]{1,6}", 1..30), split in 1usize..10) {
        let run = || {
            let mut w = World::new();
            let mut nonce = 0;
            for chunk in names.chunks(split) {
                let txs: Vec<_> = chunk.iter().map(|n| { let t = title_tx(&w, "moi-land", nonce, n); nonce += 1; t }).collect();
                w.time = w.time.plus_ms(1000);
                let built = w.chain.propose(w.time, proposer(), txs).unwrap();
                // Duplicate names are refused (AlreadyExists) and leave later nonces dangling.
                nonce -= built.refused.len() as u64;
                for tx in &built.block.txs { let _ = tx; }
            }
            w.chain.head().clone()
        };
        let a = run();
        let b = run();
        prop_assert_eq!(a, b);
    }
}
