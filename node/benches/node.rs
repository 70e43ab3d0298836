//! The node's hot paths against a real RocksDB store holding 20,000 anchors: admission of one
//! transaction (decode, strict signature, agency lookup, dry run of the rules), of 1,000 one by
//! one and together (one batch signature verification), execution of a
//! 2,000-anchor block against the store (what every validator does with a proposal), and the
//! synced commit of that block. Execution is measured with and without the node's in-memory
//! cache of tree nodes and values. Also the node cache itself, full at its default size, read
//! at random as a receipt's walk to a deep node reads it. Run:
//! `cargo bench -p cachet-node --bench node`.

use cachet_chain::block::BlockHeader;
use cachet_chain::hash::Hash32;
use cachet_chain::state_tree::Node;
use cachet_chain::tx::Transaction;
use cachet_contracts::{Signatures, build_block, example, execute_block, genesis_state};
use cachet_node::cache::Cache;
use cachet_node::mempool::{Head, Mempool};
use cachet_node::store::{CacheSizes, DEFAULT_CACHED_NODES, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const BLOCK: usize = 2_000;

fn anchors(head: &BlockHeader, from: u64, count: usize) -> Vec<Transaction> {
    example::land_title_anchors(&head.chain_id, from, count)
}

/// A store with the example genesis and ten committed blocks of anchors, caching up to
/// `cached` tree nodes and values (0: none).
fn store_with_history(dir: &std::path::Path, cached: usize) -> (Store, BlockHeader) {
    let sizes = CacheSizes {
        nodes: cached,
        values: cached,
        ..CacheSizes::default()
    };
    let store = Store::open_with_cache(dir, sizes).expect("open");
    let (genesis, tree) = genesis_state(&example::genesis()).expect("example genesis");
    store.init_genesis(&genesis, &tree).expect("init");
    let proposer = example::validator_key("moi-land").public();
    let mut head = genesis;
    for round in 0..10u64 {
        let txs = anchors(&head, round * BLOCK as u64, BLOCK);
        let built = build_block(
            &store,
            &head,
            head.time.plus_ms(1000),
            proposer,
            txs,
            Signatures::AlreadyVerified,
        )
        .expect("store");
        assert!(built.failures().is_empty());
        store
            .commit(&built.block, &[], &built.executed)
            .expect("commit");
        head = built.block.header;
    }
    (store, head)
}

fn node(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, head) = store_with_history(dir.path(), DEFAULT_CACHED_NODES);
    let uncached_dir = tempfile::tempdir().expect("tempdir");
    let (uncached, _) = store_with_history(uncached_dir.path(), 0);
    let from = 10 * BLOCK as u64;
    let txs = anchors(&head, from, BLOCK);
    let proposer = example::validator_key("moi-land").public();
    let built = build_block(
        &store,
        &head,
        head.time.plus_ms(1000),
        proposer,
        txs.clone(),
        Signatures::AlreadyVerified,
    )
    .expect("store");
    let state = Head {
        store: &store,
        state_root: head.state_root,
        height: head.height,
        time: head.time,
        chain_id: &head.chain_id,
    };
    let next_in_line = txs[0].encode();
    let queued: Vec<Vec<u8>> = txs[1..1001].iter().map(Transaction::encode).collect();

    let mut g = c.benchmark_group("node");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("admit_next_in_line", |b| {
        b.iter_batched(
            || Mempool::new(10_000, 64 << 20),
            |pool| pool.admit(&next_in_line, &state).expect("admitted"),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(queued.len() as u64));
    g.bench_function("admit_1000_queued", |b| {
        b.iter_batched(
            || Mempool::new(10_000, 64 << 20),
            |pool| {
                for tx in &queued {
                    pool.admit(tx, &state).expect("admitted");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("admit_many_1000_queued", |b| {
        let refs: Vec<&[u8]> = queued.iter().map(Vec::as_slice).collect();
        b.iter_batched(
            || Mempool::new(10_000, 64 << 20),
            |pool| {
                for r in pool.admit_many(&refs, &state) {
                    r.expect("admitted");
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.bench_function("execute_block_2000_anchors_rocksdb_sigs_cached", |b| {
        b.iter(|| {
            execute_block(&store, &head, &built.block, Signatures::AlreadyVerified).expect("valid")
        })
    });
    g.bench_function("execute_block_2000_anchors_rocksdb_no_cache", |b| {
        b.iter(|| {
            execute_block(&uncached, &head, &built.block, Signatures::AlreadyVerified)
                .expect("valid")
        })
    });
    g.bench_function("commit_block_2000_anchors", |b| {
        b.iter(|| {
            store
                .commit(&built.block, &[], &built.executed)
                .expect("commit")
        })
    });
    g.finish();
}

/// A node cache of the default size, nearly full,, read at random: most reads miss the CPU's caches,
/// as the deep levels of a large tree's walks do.
fn node_cache(c: &mut Criterion) {
    let key = |i: u64| Hash32(*blake3::hash(&i.to_le_bytes()).as_bytes());
    // Five sixths full, so that no shard (chosen by a key's first byte) overflows and evicts.
    let held = DEFAULT_CACHED_NODES as u64 * 5 / 6;
    let cache = Cache::new(DEFAULT_CACHED_NODES);
    for i in 0..held {
        let k = key(i);
        cache.insert(k, Node::Internal { left: k, right: k });
    }
    // Every held key once, in an order unrelated to insertion; each iteration reads the next
    // 4,096, so that what one reads is not in the CPU's caches for the next.
    let lookups: Vec<Hash32> = (0..held)
        .map(|i| key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % held))
        .collect();
    const READS: usize = 4_096;
    let mut next = 0;
    let mut g = c.benchmark_group("node_cache");
    g.throughput(Throughput::Elements(READS as u64));
    g.bench_function("get_4096_random_of_500k_held", |b| {
        b.iter(|| {
            next = (next + READS) % (lookups.len() - READS);
            let found = lookups[next..next + READS]
                .iter()
                .filter(|k| cache.get(k).is_some())
                .count();
            assert_eq!(found, READS);
        })
    });
    g.finish();
}

criterion_group!(benches, node, node_cache);
criterion_main!(benches);
