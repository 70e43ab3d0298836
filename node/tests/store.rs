//! The RocksDB store: a committed height survives reopening (as after a crash) with the same
//! head and state, and a partial write is never visible.

use cachet_chain::state::{CertificateRecord, StateKey, decode_value};
use cachet_chain::state_tree;
use cachet_contracts::{LocalChain, Signatures, build_block, example, genesis_state};
use cachet_node::store::Store;
use cachet_tests::txs;

fn example_chain() -> cachet_chain::ChainId {
    cachet_chain::ChainId::new(example::EXAMPLE_CHAIN_ID).unwrap()
}

#[test]
fn committed_heights_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let doc = example::genesis();
    let (genesis, tree) = genesis_state(&doc).unwrap();
    let mut chain = LocalChain::new(&doc).unwrap();
    let issuance = txs::title("deed");
    let id = issuance.cert_id();
    let tx = txs::signed_on(
        example_chain(),
        "moi-land",
        0,
        cachet_chain::Action::Issue(issuance),
    );
    {
        let store = Store::open(dir.path()).unwrap();
        store.init_genesis(&genesis, &tree).unwrap();
        let head = store.head().unwrap().unwrap();
        assert_eq!(head, genesis);
        let built = build_block(
            &store,
            &head,
            head.time.plus_ms(1000),
            example::validator_key("moi-land").public(),
            vec![tx.clone()],
            Signatures::Verify,
        )
        .unwrap();
        assert!(built.refused.is_empty());
        store
            .commit(&built.block, b"certificate", &built.executed.tree_batch)
            .unwrap();
        // The same block through the in-memory chain gives the same header.
        chain.apply(&built.block).unwrap();
        // Dropped without any shutdown: as a crash after the commit returned.
    }
    let store = Store::open(dir.path()).unwrap();
    let head = store.head().unwrap().unwrap();
    assert_eq!(&head, chain.head());
    assert_eq!(store.genesis().unwrap().unwrap(), genesis);
    let bytes = state_tree::get(&store, &head.state_root, &StateKey::Certificate(id).hash())
        .unwrap()
        .unwrap();
    let record: CertificateRecord = decode_value(&bytes).unwrap();
    assert_eq!(record.issuer.as_str(), "moi-land");
    assert_eq!(store.certificate(1).unwrap().unwrap(), b"certificate");
    assert_eq!(store.tx_location(&tx.id()).unwrap().unwrap().height, 1);
    assert_eq!(store.block(1).unwrap().unwrap().hash(), head.hash());
}
