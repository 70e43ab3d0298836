//! Hot paths of the core: state proofs, batch trees, signatures, encoding.
//! Run: `cargo bench -p cachet-chain --bench core`.

use cachet_chain::crypto::{SecretKey, verify_many};
use cachet_chain::hash::{DigestMap, Domain, Hash32};
use cachet_chain::merkle::{MerkleTree, leaf_hash, root_of};
use cachet_chain::state_tree::{self, EMPTY, MemoryTreeStore, value_hash};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn state_tree_with(n: u32) -> (MemoryTreeStore, Hash32) {
    let mut store = MemoryTreeStore::new();
    let mut changes: Vec<_> = (0..n)
        .map(|i| {
            (
                Domain::StateKey.hash(&i.to_le_bytes()),
                Some(vec![7u8; 200]),
            )
        })
        .collect();
    changes.sort_by_key(|(k, _)| *k);
    let (root, batch) = state_tree::update(&store, &EMPTY, &changes).expect("in memory");
    store.write(batch);
    (store, root)
}

fn state_proofs(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_proof");
    g.throughput(Throughput::Elements(1));
    for n in [10_000u32, 1_000_000] {
        let (store, root) = state_tree_with(n);
        let key = Domain::StateKey.hash(&42u32.to_le_bytes());
        let proof = state_tree::prove(&store, &root, &key).expect("present");
        let vh = value_hash(&[7u8; 200]);
        g.bench_with_input(BenchmarkId::new("generate", n), &n, |b, _| {
            b.iter(|| state_tree::prove(&store, &root, black_box(&key)))
        });
        g.bench_with_input(BenchmarkId::new("verify", n), &n, |b, _| {
            b.iter(|| assert!(proof.verify_membership(&root, black_box(&key), &vh)))
        });
    }
    g.finish();
}

fn state_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_update");
    let (store, root) = state_tree_with(100_000);
    let mut changes: Vec<_> = (1_000_000u32..1_001_000)
        .map(|i| {
            (
                Domain::StateKey.hash(&i.to_le_bytes()),
                Some(vec![1u8; 200]),
            )
        })
        .collect();
    changes.sort_by_key(|(k, _)| *k);
    g.throughput(Throughput::Elements(changes.len() as u64));
    g.bench_function("insert_1000_into_100k", |b| {
        b.iter(|| state_tree::update(&store, &root, black_box(&changes)))
    });
    g.finish();
}

/// What a node whose tree is held in memory does at start: the whole tree from the sorted
/// index of its entries, into the map it reads from.
fn state_rebuilds(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_rebuild");
    g.sample_size(10);
    let n = 1_000_000u32;
    let mut entries: Vec<_> = (0..n)
        .map(|i| {
            (
                Domain::StateKey.hash(&i.to_le_bytes()),
                value_hash(&i.to_le_bytes()),
            )
        })
        .collect();
    entries.sort_by_key(|(k, _)| *k);
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("build_1m_entries", |b| {
        b.iter(|| {
            let mut nodes = DigestMap::default();
            nodes.reserve(entries.len() * 2);
            let root = state_tree::build(black_box(&entries), &mut |key, node| {
                nodes.insert(key, node);
            });
            (root, nodes.len())
        })
    });
    g.finish();
}

fn batch_trees(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_tree");
    let leaves: Vec<Hash32> = (0..100_000u32)
        .map(|i| leaf_hash(&i.to_le_bytes()))
        .collect();
    g.throughput(Throughput::Elements(leaves.len() as u64));
    g.bench_function("root_100k", |b| b.iter(|| root_of(black_box(&leaves))));
    let tree = MerkleTree::new(&leaves);
    let proof = tree.proof(777).expect("in range");
    let root = tree.root();
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_inclusion_100k", |b| {
        b.iter(|| assert!(proof.verify(&root, 100_000, black_box(&leaves[777]))))
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("ed25519");
    let items: Vec<_> = (0..64u32)
        .map(|i| {
            let k = SecretKey::dev(&format!("bench-{i}"));
            let m = Domain::TxId.hash(&i.to_le_bytes());
            (k.public(), m, k.sign(&m))
        })
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_strict", |b| {
        let (k, m, s) = &items[0];
        b.iter(|| k.verify(black_box(m), s))
    });
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("verify_many_64", |b| {
        b.iter(|| verify_many(black_box(&items)))
    });
    g.finish();
}

criterion_group!(
    benches,
    state_proofs,
    state_updates,
    state_rebuilds,
    batch_trees,
    signatures
);
criterion_main!(benches);
