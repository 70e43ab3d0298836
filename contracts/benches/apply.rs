//! Apply throughput: blocks of signed anchors executed by the rules, signatures included, on one
//! core. Run: `cargo bench -p cachet-contracts --bench apply`.

use cachet_chain::tx::Transaction;
use cachet_contracts::{LocalChain, Signatures, build_block, example, execute_block};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BLOCK: usize = 2_000;

fn anchors(chain: &LocalChain, from: u64) -> Vec<Transaction> {
    example::land_title_anchors(&chain.head().chain_id, from, BLOCK)
}

fn apply(c: &mut Criterion) {
    let mut chain = LocalChain::new(&example::genesis()).expect("example genesis");
    let proposer = example::validator_key("moi-land").public();
    // Some history, so the tree is not trivially small.
    for round in 0..10u64 {
        let txs = anchors(&chain, round * BLOCK as u64);
        let t = chain.head().time.plus_ms(1000);
        let built = chain.propose(t, proposer, txs).expect("in memory");
        assert!(built.failures().is_empty());
    }
    let txs = anchors(&chain, 10 * BLOCK as u64);
    let time = chain.head().time.plus_ms(1000);
    let built = build_block(
        chain.store(),
        chain.head(),
        time,
        proposer,
        txs.clone(),
        Signatures::Verify,
    )
    .expect("in memory");
    assert!(built.failures().is_empty());

    let mut g = c.benchmark_group("apply");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.bench_function("build_block_2000_anchors_strict_sigs", |b| {
        b.iter(|| {
            build_block(
                chain.store(),
                chain.head(),
                time,
                proposer,
                txs.clone(),
                Signatures::Verify,
            )
        })
    });
    g.bench_function("execute_block_2000_anchors_batched_sigs", |b| {
        b.iter(|| {
            execute_block(
                chain.store(),
                chain.head(),
                &built.block,
                Signatures::Verify,
            )
            .expect("valid")
        })
    });
    g.bench_function("execute_block_2000_anchors_sigs_cached", |b| {
        b.iter(|| {
            execute_block(
                chain.store(),
                chain.head(),
                &built.block,
                Signatures::AlreadyVerified,
            )
            .expect("valid")
        })
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
