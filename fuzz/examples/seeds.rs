//! Writes a seed corpus for every fuzz target: valid encodings the fuzzer mutates from.
//! Run from `fuzz/`: `cargo run --release --example seeds`.

use cachet_chain::checkpoint::Advance;
use cachet_chain::codec::encode;
use cachet_chain::receipt::{CommitProof, RECEIPT_VERSION, Receipt, Subject};
use cachet_chain::document::{Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{AgencyId, CertKind, Height, Timestamp};
use cachet_chain::merkle::MerkleTree;
use cachet_chain::state::StateKey;
use cachet_chain::state_tree;
use cachet_chain::tx::*;
use cachet_contracts::{LocalChain, example};
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let genesis = example::genesis();
    let mut chain = LocalChain::new(&genesis).expect("example genesis");
    let commitment = |s: &str| Commitment::new(&Fingerprint::of(FingerprintAlg::Sha256, s.as_bytes()), &Salt(Hash32([1; 32])));
    let tree = MerkleTree::new(&(0..8u8).map(|i| batch_leaf(&Commitment(Hash32([i; 32])))).collect::<Vec<_>>());
    let title = Issuance { kind: CertKind::LandTitle, commitment: commitment("t"), valid_from: None, valid_until: None, terms: Terms::LandTitle { parcel: Hash32([2; 32]) } };
    let batch = BatchIssuance { kind: CertKind::RewardOrder, root: tree.root(), leaf_count: 8, valid_from: None, valid_until: Some(Timestamp(1_900_000_000_000)) };
    let actions: Vec<(&str, Action)> = vec![
        ("moi-land", Action::Issue(title.clone())),
        ("dgpa-personnel", Action::IssueBatch(batch.clone())),
        ("moi-land", Action::RecordEvent { id: title.cert_id(), event: CertEvent::MortgageSet { mortgage: Hash32([3; 32]) } }),
        ("moi-land", Action::Supersede { previous: title.cert_id(), next: Issuance { commitment: commitment("t2"), ..title.clone() } }),
        ("dgpa-personnel", Action::RevokeBatchEntry { entry: BatchEntry { batch: batch.batch_id(), commitment: Commitment(Hash32([3; 32])), proof: tree.proof(3).expect("in range") }, reason: RevocationReason::Fraud }),
        ("moi-land", Action::Propose { change: GovernanceChange::RotateAgencyKey { id: AgencyId::new("moi-land").expect("valid"), key: example::agency_key("x").public() } }),
        ("dgpa-personnel", Action::Accredit { kind: CertKind::RewardOrder, agency: AgencyId::new("x").expect("valid"), registration: None }),
    ];
    let mut txs = Vec::new();
    let mut nonces = std::collections::BTreeMap::new();
    for (i, (agency, action)) in actions.into_iter().enumerate() {
        let nonce = nonces.entry(agency).or_insert(0u64);
        let tx = TxBody {
            chain_id: genesis.chain_id.clone(),
            signer: AgencyId::new(agency).expect("valid"),
            key: example::agency_key(agency).public(),
            nonce: *nonce,
            expires_at: Height(1000),
            action,
        }
        .sign(&example::agency_key(agency));
        *nonce += 1;
        write("decode_tx", &format!("tx{i}"), &tx.encode());
        write("apply_tx", &format!("tx{i}"), &tx.encode());
        txs.push(tx);
    }
    let t = chain.head().time.plus_ms(1000);
    let built = chain.propose(t, example::validator_key("moi-land").public(), txs).expect("in memory");
    write("decode_block", "block1", &built.block.encode());
    let root = chain.head().state_root;
    for (i, key) in [StateKey::Certificate(title.cert_id()), StateKey::Batch(batch.batch_id()), StateKey::Params].iter().enumerate() {
        let proof = state_tree::prove(chain.store(), &root, &key.hash()).expect("in memory");
        write("decode_proofs", &format!("state{i}"), &[&[0u8][..], &encode(&proof)].concat());
        if let Some(v) = state_tree::get(chain.store(), &root, &key.hash()).expect("in memory") {
            let selector = [4u8, 5, 0][i];
            write("decode_state_values", &format!("value{i}"), &[&[selector][..], &v].concat());
        }
    }
    write("decode_proofs", "batch", &[&[1u8][..], &encode(&tree.proof(5).expect("in range"))].concat());
    write("genesis_json", "example", genesis.to_json().as_bytes());
    // The snapshot target's own state (keys 0x00…, 0x1d…, …; values of i bytes i), cut at
    // depth 2: its manifest, and each chunk with the selector that checks it against its line.
    {
        use cachet_chain::snapshot::{Chunk, Entry, Manifest, chunk_of};
        let entries: Vec<Entry> = (0u8..9).map(|i| Entry { key: Hash32([i * 0x1d; 32]), value: vec![i; usize::from(i)] }).collect();
        let hashed: Vec<_> = entries.iter().map(|e| (e.key, state_tree::value_hash(&e.value))).collect();
        write("decode_snapshot", "manifest", &[&[0u8][..], &Manifest::cut(3, 2, &hashed).encode()].concat());
        let mut chunks = vec![Chunk::default(); 4];
        for e in entries {
            chunks[chunk_of(&e.key, 2) as usize].entries.push(e);
        }
        for (i, c) in chunks.iter().enumerate() {
            write("decode_snapshot", &format!("chunk{i}"), &[&[((i as u8) << 1) | 1][..], &c.encode()].concat());
        }
    }
    // A receipt of the title as a node builds it (its commit left unsigned: the structure is
    // what the fuzzer mutates), the head's trust anchor, and an advance to it.
    let (record, proof) = state_tree::get_with_proof(chain.store(), &root, &StateKey::Certificate(title.cert_id()).hash()).expect("in memory");
    let commit = CommitProof { round: 0, signatures: Default::default() };
    let receipt = Receipt {
        version: RECEIPT_VERSION,
        header: chain.head().clone(),
        commit: commit.clone(),
        subject: Subject::Certificate { record: record.expect("issued"), proof, lineage: Default::default() },
        issuer: None,
        transitions: Default::default(),
        kind_policy: None,
    };
    write("decode_receipt", "receipt", &[&[0u8][..], &receipt.encode()].concat());
    let anchor = chain.anchor().expect("in memory");
    write("decode_receipt", "anchor", &[&[1u8][..], &anchor.encode()].concat());
    let advance = Advance { transitions: Default::default(), commit, anchor };
    write("decode_receipt", "advance", &[&[2u8][..], &advance.encode()].concat());
    println!("seeds written under fuzz/corpus/");
}
