//! Pinned test vectors for the formats in `docs/spec/`. Each vector is an encoding or a hash
//! computed from fixed inputs; a change to any of them is a format change.
//!
//! The file `docs/spec/vectors/core.json` is the reference another implementation checks
//! itself against. Regenerating it is an explicit approval of a new format:
//! `CACHET_WRITE_VECTORS=1 cargo test -p cachet-contracts --test vectors`. Never regenerate
//! it just to make this test pass.

use cachet_chain::block::{BlockHeader, tx_root};
use cachet_chain::codec::encode;
use cachet_chain::crypto::{SignPurpose, signing_message};
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::{Domain, Hash32};
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height, Timestamp};
use cachet_chain::merkle::{MerkleTree, leaf_hash};
use cachet_chain::receipt::{Receipt, verify};
use cachet_chain::state::StateKey;
use cachet_chain::state_tree::{self, EMPTY, MemoryTreeStore};
use cachet_chain::tx::{
    Action, Issuance, RevocationReason, Terms, Transaction, TxBody, batch_leaf,
};
use cachet_chain::verdict::Verdict;
use cachet_contracts::{Signatures, build_block, example, genesis_state};

mod common;
use common::World;
use common::receipts::{certificate_receipt, trust};
use std::collections::BTreeMap;

fn vectors() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let mut put = |k: &str, bytes: &[u8]| {
        v.insert(k.to_string(), hex::encode(bytes));
    };

    // Every domain of the format; development keys are not part of it.
    for d in Domain::ALL.into_iter().filter(|d| *d != Domain::DevKey) {
        put(
            &format!("domain/{}", d.context()),
            Domain::hash(d, b"cachet").as_bytes(),
        );
    }

    // A snapshot of five entries, keys 0x00…, 0x33…, 0x66…, 0x99…, 0xcc… (each byte repeated
    // 32 times), values "value-0" … "value-4": cut at depth 2 (chunk 0 holds two entries) and
    // at depth 3 (lone leaves, empty chunks).
    {
        use cachet_chain::snapshot::{Chunk, Entry, Manifest};
        let entries: Vec<Entry> = (0u8..5)
            .map(|i| Entry {
                key: Hash32([i * 0x33; 32]),
                value: format!("value-{i}").into_bytes(),
            })
            .collect();
        let hashed: Vec<(Hash32, Hash32)> = entries
            .iter()
            .map(|e| (e.key, state_tree::value_hash(&e.value)))
            .collect();
        put(
            "snapshot/state_root",
            state_tree::build(&hashed, &mut |_, _| {}).as_bytes(),
        );
        put(
            "snapshot/manifest_depth2",
            &Manifest::cut(7, 2, &hashed).encode(),
        );
        put(
            "snapshot/manifest_depth3",
            &Manifest::cut(7, 3, &hashed).encode(),
        );
        let chunk0 = Chunk {
            entries: entries[..2].to_vec(),
        };
        put("snapshot/chunk0_depth2", &chunk0.encode());
    }

    let chain_id = ChainId::new("cachet-example").unwrap();
    let fp = Fingerprint::of(FingerprintAlg::Sha256, b"abc");
    let salt = Salt(Hash32([7; 32]));
    let commitment = Commitment::new(&fp, &salt);
    put("document/fingerprint_sha256_abc", &encode(&fp));
    put("document/commitment_abc_salt07", commitment.0.as_bytes());
    put(
        "document/cert_id_land_title",
        CertId::derive(CertKind::LandTitle, &commitment)
            .0
            .as_bytes(),
    );

    let key = example::agency_key("moi-land");
    put("keys/dev_agency_moi_land_public", &encode(&key.public()));
    let body = TxBody {
        chain_id: chain_id.clone(),
        signer: AgencyId::new("moi-land").unwrap(),
        key: key.public(),
        nonce: 7,
        expires_at: Height(100),
        action: Action::Issue(Issuance {
            kind: CertKind::LandTitle,
            commitment,
            valid_from: None,
            valid_until: Some(Timestamp(1_800_000_000_000)),
            terms: Terms::LandTitle {
                parcel: Hash32([1; 32]),
            },
        }),
    };
    let tx = body.clone().sign(&key);
    put("tx/issue_land_title/body", &encode(&body));
    put(
        "tx/issue_land_title/signing_message",
        signing_message(SignPurpose::Transaction, &chain_id, &encode(&body)).as_bytes(),
    );
    put("tx/issue_land_title/encoded", &tx.encode());
    put("tx/issue_land_title/id", tx.id().0.as_bytes());

    // A kind registered by governance: its number's encoding, the policy the vote carries (the
    // construction-firm policy of the rule tests), and a proposal of it.
    put("kind/registered_258", &encode(&CertKind::Registered(258)));
    put(
        "document/cert_id_registered_0",
        CertId::derive(CertKind::Registered(0), &commitment)
            .0
            .as_bytes(),
    );
    let policy = common::construction_firm_policy();
    put("policy/construction_firm/encoded", &encode(&policy));
    let propose = TxBody {
        nonce: 8,
        action: Action::Propose {
            change: cachet_chain::tx::GovernanceChange::AddKind { policy },
        },
        ..body.clone()
    };
    put("tx/add_kind/body", &encode(&propose));
    put("tx/add_kind/encoded", &propose.sign(&key).encode());

    let leaves: Vec<Hash32> = (0..5u8)
        .map(|i| batch_leaf(&Commitment(Hash32([i; 32]))))
        .collect();
    let tree = MerkleTree::new(&leaves);
    put("merkle/batch5/root", tree.root().as_bytes());
    put("merkle/batch5/proof3", &encode(&tree.proof(3).unwrap()));
    put("merkle/leaf_hash_empty", leaf_hash(b"").as_bytes());
    put(
        "merkle/tx_root_one",
        tx_root(std::slice::from_ref(&tx)).as_bytes(),
    );

    let mut store = MemoryTreeStore::new();
    let mut changes: Vec<_> = (0..3u8)
        .map(|i| {
            (
                StateKey::Agency(AgencyId::new(format!("agency-{i}")).unwrap()).hash(),
                Some(vec![i; 4]),
            )
        })
        .collect();
    changes.sort_by_key(|(k, _)| *k);
    let (root, batch) = state_tree::update(&store, &EMPTY, &changes).unwrap();
    store.write(batch);
    put("state/three/root", root.as_bytes());
    let present = StateKey::Agency(AgencyId::new("agency-1").unwrap()).hash();
    let absent = StateKey::Agency(AgencyId::new("agency-9").unwrap()).hash();
    put("state/three/key_agency_1", present.as_bytes());
    put(
        "state/three/proof_present",
        &encode(&state_tree::prove(&store, &root, &present).unwrap()),
    );
    put(
        "state/three/proof_absent",
        &encode(&state_tree::prove(&store, &root, &absent).unwrap()),
    );

    let (genesis, genesis_batch) = genesis_state(&example::genesis()).unwrap();
    put("genesis/example/header", &encode(&genesis));
    put("genesis/example/hash", genesis.hash().as_bytes());
    let header = BlockHeader {
        chain_id,
        height: Height(1),
        time: Timestamp(1_767_225_601_000),
        parent: genesis.hash(),
        proposer: Some(example::validator_key("moi-land").public()),
        tx_root: tx_root(&[tx]),
        tx_count: 1,
        state_root: Hash32([2; 32]),
        validators_hash: genesis.next_validators_hash,
        next_validators_hash: genesis.next_validators_hash,
    };
    put("block/header_h1/encoded", &encode(&header));
    put("block/header_h1/hash", header.hash().as_bytes());

    // A block whose third transaction is refused in it: only its signer's nonce moves.
    let issued = match &body.action {
        Action::Issue(issuance) => issuance.cert_id(),
        _ => unreachable!("the vector's transaction issues"),
    };
    let revoke = Action::Revoke {
        id: issued,
        reason: RevocationReason::Cancelled,
    };
    let pipeline: Vec<Transaction> = [body.action.clone(), revoke.clone(), revoke]
        .into_iter()
        .enumerate()
        .map(|(nonce, action)| {
            let mut body = body.clone();
            body.nonce = nonce as u64;
            body.action = action;
            body.sign(&key)
        })
        .collect();
    let mut genesis_store = MemoryTreeStore::new();
    genesis_store.write(genesis_batch);
    let built = build_block(
        &genesis_store,
        &genesis,
        Timestamp(1_767_225_601_000),
        example::validator_key("moi-land").public(),
        pipeline,
        Signatures::Verify,
    )
    .unwrap();
    assert!(built.left_out.is_empty(), "{:?}", built.left_out);
    let refused: Vec<_> = built
        .executed
        .refused
        .iter()
        .map(|(i, e)| (*i, e.code()))
        .collect();
    assert_eq!(
        refused,
        vec![(2, 1303)],
        "the second revocation is refused in the block"
    );
    put(
        "block/refused_third/state_root",
        built.block.header.state_root.as_bytes(),
    );
    put("receipt/land_title/encoded", &example_receipt().encode());
    put(
        "receipt/construction_firm/encoded",
        &registered_receipt().encode(),
    );
    v
}

/// A receipt of a construction-firm certificate, a kind the example consortium registered by
/// a vote (see `common::construction_firm_policy`): version 2, with the kind's policy.
fn registered_receipt() -> Receipt {
    let mut w = World::new();
    let kind = w.register_construction_firms();
    let cert = w.firm_certificate(kind, "firm-1");
    let id = cert.cert_id();
    w.submit("moi-land", Action::Issue(cert)).unwrap();
    certificate_receipt(&w, id)
}

/// A receipt of the example consortium: a land title issued at height 1, signed by validators
/// at positions 0, 1 and 2 (deterministic ed25519 signatures).
fn example_receipt() -> Receipt {
    let mut w = World::new();
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    certificate_receipt(&w, t)
}

#[test]
fn the_pinned_receipt_verifies_as_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/spec/vectors/core.json"
    );
    let pinned: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).unwrap();
    let bytes = hex::decode(&pinned["receipt/land_title/encoded"]).unwrap();
    let receipt = Receipt::decode(&bytes).unwrap();
    let now = receipt.header.time.plus_ms(1000);
    let v = verify(&receipt, &trust(), now, None).unwrap();
    assert_eq!(v.verdict, Verdict::Valid);
    assert_eq!(v.issuer.unwrap().as_str(), "moi-land");
}

#[test]
fn vectors_match_the_spec() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/spec/vectors/core.json"
    );
    let computed = vectors();
    if std::env::var_os("CACHET_WRITE_VECTORS").is_some() {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let pinned: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).unwrap();
    for (name, value) in &computed {
        assert_eq!(
            pinned.get(name),
            Some(value),
            "vector {name} changed: this is a format change"
        );
    }
    assert_eq!(
        pinned.len(),
        computed.len(),
        "vectors were added or removed"
    );
}
