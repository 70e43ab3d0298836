//! The RocksDB store: a committed height survives reopening (as after a crash) with the same
//! head and state, and a partial write is never visible.

use cachet_chain::state::{CertificateRecord, StateKey, decode_value};
use cachet_chain::state_tree;
use cachet_contracts::{LocalChain, Signatures, build_block, example, genesis_state};
use cachet_node::store::{CacheSizes, DEFAULT_BLOCK_CACHE_BYTES, Store, TreePlacement};
use cachet_tests::txs;

fn example_chain() -> cachet_chain::ChainId {
    cachet_chain::ChainId::new(example::EXAMPLE_CHAIN_ID).unwrap()
}

/// The block after `parent` holding `tx` (proposed by the land agency's validator), built on
/// `store`'s state; `tx` must be accepted.
fn build_one(
    store: &Store,
    parent: &cachet_chain::block::BlockHeader,
    tx: cachet_chain::tx::Transaction,
) -> cachet_contracts::BuiltBlock {
    let built = build_block(
        store,
        parent,
        parent.time.plus_ms(1000),
        example::validator_key("moi-land").public(),
        vec![tx],
        Signatures::Verify,
    )
    .unwrap();
    assert!(built.failures().is_empty());
    built
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
        let built = build_one(&store, &head, tx.clone());
        store
            .commit(&built.block, b"certificate", &built.executed)
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
    // The reopened log was flushed to a table, which that read went through: its blocks are
    // in the block cache, counted within its bound.
    let cached = store.block_cache_bytes();
    assert!(
        cached > 0 && cached <= DEFAULT_BLOCK_CACHE_BYTES as u64,
        "{cached}"
    );
    // That table's reader is open, and RocksDB counts its memory outside the cache.
    let readers: u64 = store
        .family_sizes()
        .iter()
        .map(|f| f.table_readers_bytes)
        .sum();
    assert!(readers > 0);
    assert_eq!(store.certificate(1).unwrap().unwrap(), b"certificate");
    assert_eq!(store.tx_location(&tx.id()).unwrap().unwrap().height, 1);
    assert_eq!(store.block(1).unwrap().unwrap().hash(), head.hash());
}

/// A store at `dir` with the example genesis and one block anchoring a title: the store, the
/// block's header, the genesis header, and the anchor's id.
fn store_with_one_anchor(
    dir: &std::path::Path,
    name: &str,
) -> (
    Store,
    cachet_chain::block::BlockHeader,
    cachet_chain::block::BlockHeader,
    cachet_chain::TxId,
) {
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let store = Store::open(dir).unwrap();
    store.init_genesis(&genesis, &tree).unwrap();
    let tx = txs::signed_on(
        example_chain(),
        "moi-land",
        0,
        cachet_chain::Action::Issue(txs::title(name)),
    );
    let id = tx.id();
    let built = build_one(&store, &genesis, tx);
    store
        .commit(&built.block, b"certificate", &built.executed)
        .unwrap();
    (store, built.block.header, genesis, id)
}

/// Commit an empty block at the height after `header` whose state is `changes` applied to
/// `header`'s; `header` becomes the new one. Returns how many nodes went stale.
fn commit_changes(
    store: &Store,
    header: &mut cachet_chain::block::BlockHeader,
    validators: &cachet_chain::state::ValidatorSet,
    changes: &[(cachet_chain::hash::Hash32, Option<Vec<u8>>)],
) -> usize {
    let (root, batch) = state_tree::update(store, &header.state_root, changes).unwrap();
    let stale = batch.stale.len();
    header.parent = header.hash();
    header.height = cachet_chain::ids::Height(header.height.0 + 1);
    header.state_root = root;
    let executed = cachet_contracts::Executed {
        state_root: root,
        tree_batch: batch,
        next_validators: validators.clone(),
        events: vec![],
        refused: vec![],
    };
    let block = cachet_chain::block::Block {
        header: header.clone(),
        txs: vec![],
    };
    store.commit(&block, b"certificate", &executed).unwrap();
    stale
}

#[test]
fn pruning_deletes_replaced_state_keeps_recent_heights_and_what_came_back() {
    use cachet_chain::hash::{Domain, Hash32};
    use cachet_chain::state_tree::StoreError;

    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let key = |i: u64| Domain::StateKey.hash(&i.to_le_bytes());
    const KEEP: u64 = 2;
    let mut roots = vec![genesis.state_root];
    {
        let store = Store::open(dir.path()).unwrap();
        store.init_genesis(&genesis, &tree).unwrap();
        let validators = store.validators_after(0).unwrap();
        let mut header = genesis.clone();
        for h in 1..=12u64 {
            // Key 0 alternates between two values, so its leaf goes stale and comes back every
            // other height; key 1000 + h is new at height h.
            let mut changes: Vec<(Hash32, Option<Vec<u8>>)> = vec![
                (key(0), Some(vec![(h % 2) as u8])),
                (key(1000 + h), Some(b"entry".to_vec())),
            ];
            changes.sort_by_key(|(k, _)| *k);
            let stale = commit_changes(&store, &mut header, &validators, &changes);
            assert!(h == 1 || stale > 0);
            let root = header.state_root;
            while store.prune(KEEP).unwrap().nodes > 0 {}
            roots.push(root);
        }
        assert_eq!(store.pruned_upto().unwrap(), 12 - KEEP);
    }
    // Reopened (as after a crash): the head and the last KEEP heights read whole.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.pruned_upto().unwrap(), 12 - KEEP);
    for h in 12 - KEEP..=12 {
        let root = &roots[h as usize];
        assert_eq!(
            state_tree::get(&store, root, &key(0)).unwrap(),
            Some(vec![(h % 2) as u8]),
            "key 0 at height {h}: its leaf came back after going stale and must survive"
        );
        for i in 1..=h {
            assert!(
                state_tree::get(&store, root, &key(1000 + i))
                    .unwrap()
                    .is_some()
            );
        }
    }
    // Older versions are gone.
    assert!(matches!(
        state_tree::get(&store, &roots[3], &key(1003)),
        Err(StoreError::Missing { .. })
    ));
    // The validator set stays readable for any height.
    assert_eq!(
        store.validators_after(7).unwrap(),
        store.validators_after(0).unwrap()
    );
}

/// The keys of a column family, read from the database directly.
fn family_keys(dir: &std::path::Path, family: &str) -> Vec<Vec<u8>> {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let db =
        rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, &cfs, false).unwrap();
    db.iterator_cf(db.cf_handle(family).unwrap(), rocksdb::IteratorMode::Start)
        .map(|item| item.unwrap().0.to_vec())
        .collect()
}

/// Prune every stale node and value, up to the head.
fn prune_everything(store: &Store) {
    loop {
        let before = store.pruned_upto().unwrap();
        store.prune(0).unwrap();
        if store.pruned_upto().unwrap() == before {
            break;
        }
    }
}

/// The stored keys of the tree at `root` (sorted): its nodes' keys, and its leaves' hashes
/// (the keys of their values).
fn tree_keys(store: &Store, root: cachet_chain::hash::Hash32) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use cachet_chain::state_tree::{Node, NodeKey, Position, TreeStore};
    let (mut nodes, mut leaves) = (Vec::new(), Vec::new());
    let mut pending = vec![(root, Position::ROOT)];
    while let Some((at, pos)) = pending.pop() {
        if at == state_tree::EMPTY {
            continue;
        }
        let key = NodeKey::new(pos, at);
        nodes.push(key.to_bytes().to_vec());
        match store.node(&key).unwrap().expect("a node of the tree") {
            Node::Leaf { .. } => leaves.push(at.as_bytes().to_vec()),
            Node::Internal { left, right } => {
                pending.push((left, pos.child(false)));
                pending.push((right, pos.child(true)));
            }
        }
    }
    nodes.sort();
    leaves.sort();
    (nodes, leaves)
}

fn churn_key(i: u64) -> cachet_chain::hash::Hash32 {
    cachet_chain::hash::Domain::StateKey.hash(&i.to_le_bytes())
}

/// The changes of height `h` in a history over few keys and values, so that entries (and whole
/// subtrees) often come back to earlier contents: inserts, rewrites to an earlier value, and
/// deletions, over the keys [`churn_key`] of 0 to 23.
fn churn(h: u64) -> Vec<(cachet_chain::hash::Hash32, Option<Vec<u8>>)> {
    let mut changes: Vec<_> = (0..4)
        .map(|i| {
            let value = (!(h + i).is_multiple_of(3)).then(|| vec![((h * 3 + i) % 2) as u8]);
            (churn_key((h * 7 + i * 5) % 24), value)
        })
        .collect();
    changes.sort_by_key(|(k, _)| *k);
    changes.dedup_by_key(|(k, _)| *k);
    changes
}

#[test]
fn pruning_leaves_exactly_the_heads_nodes_whether_stale_nodes_were_tracked_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let mut header = genesis.clone();
    let mut store = Store::open(dir.path()).unwrap();
    store.init_genesis(&genesis, &tree).unwrap();
    let validators = store.validators_after(0).unwrap();
    for h in 1..=40u64 {
        if h == 27 {
            // A restart forgets what was tracked: the next steps read again, then track.
            drop(store);
            store = Store::open(dir.path()).unwrap();
        }
        commit_changes(&store, &mut header, &validators, &churn(h));
        // No pruning before height 15: those heights' stale nodes were never tracked, and a
        // pruning step reads their records. From then on, keep 3 heights.
        if h == 15 || h > 15 && h % 4 == 0 {
            while store.prune(3).unwrap().nodes > 0 {}
        }
    }
    prune_everything(&store);
    assert_eq!(store.pruned_upto().unwrap(), 40);
    // The head reads whole; the stored nodes are exactly those reachable from it.
    let (live, leaves) = tree_keys(&store, header.state_root);
    drop(store);
    assert_eq!(
        family_keys(dir.path(), "nodes"),
        live,
        "nothing stale left, nothing live lost"
    );
    assert_eq!(
        family_keys(dir.path(), "values"),
        leaves,
        "one value per live leaf"
    );
}

fn in_memory() -> CacheSizes {
    CacheSizes {
        tree: TreePlacement::Memory,
        ..CacheSizes::default()
    }
}

/// What `churn` leaves after each height up to `h`, by key.
fn churned(h: u64) -> std::collections::BTreeMap<cachet_chain::hash::Hash32, Vec<u8>> {
    let mut state = std::collections::BTreeMap::new();
    for height in 1..=h {
        for (key, value) in churn(height) {
            match value {
                Some(value) => state.insert(key, value),
                None => state.remove(&key),
            };
        }
    }
    state
}

/// Every churned key reads at `root` as `churned(h)` says, and its proof verifies.
fn assert_churned_state(store: &Store, root: &cachet_chain::hash::Hash32, h: u64) {
    let expected = churned(h);
    for i in 0..24 {
        let key = churn_key(i);
        let (value, proof) = state_tree::get_with_proof(store, root, &key).unwrap();
        assert_eq!(value.as_ref(), expected.get(&key), "key {i} at height {h}");
        match value {
            Some(v) => assert!(proof.verify_membership(root, &key, &state_tree::value_hash(&v))),
            None => assert!(proof.verify_absence(root, &key)),
        }
    }
}

#[test]
fn a_tree_held_in_memory_keeps_recent_heights_prunes_to_the_head_and_is_rebuilt_on_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let mut header = genesis.clone();
    let mut roots = vec![genesis.state_root];
    let mut store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
    store.init_genesis(&genesis, &tree).unwrap();
    let validators = store.validators_after(0).unwrap();
    const KEEP: u64 = 3;
    for h in 1..=40u64 {
        if h == 21 {
            // As after a crash: only the head's tree comes back, rebuilt from the key index,
            // and the history kept from then on is this process's.
            drop(store);
            store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
            assert_churned_state(&store, &header.state_root, h - 1);
            if roots[19] != header.state_root {
                assert!(state_tree::get(&store, &roots[19], &churn_key(0)).is_err());
            }
        }
        commit_changes(&store, &mut header, &validators, &churn(h));
        roots.push(header.state_root);
        if h % 5 == 0 {
            while store.prune(KEEP).unwrap().nodes > 0 {}
            // The last KEEP heights read whole (those since the restart, which began at 20).
            let first = h - KEEP;
            for back in if h > 20 { first.max(20) } else { first }..=h {
                assert_churned_state(&store, &roots[back as usize], back);
            }
        }
    }
    prune_everything(&store);
    let (live, leaves) = tree_keys(&store, header.state_root);
    assert_eq!(
        store.resident_nodes(),
        Some(live.len()),
        "memory holds exactly the head's nodes: nothing stale left, nothing live lost"
    );
    assert_eq!(store.cached_entries().0, 0, "no node cache beside the tree");
    drop(store);
    assert_eq!(family_keys(dir.path(), "nodes"), Vec::<Vec<u8>>::new());
    assert_eq!(family_keys(dir.path(), "values"), leaves);
    let store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
    assert_eq!(store.resident_nodes(), Some(live.len()));
    assert_churned_state(&store, &header.state_root, 40);
}

fn derived(levels: usize) -> CacheSizes {
    CacheSizes {
        tree: TreePlacement::Derived,
        tree_top_levels: levels,
        ..CacheSizes::default()
    }
}

/// How many of the tree's nodes at `root` sit above depth `levels`.
fn top_node_count(store: &Store, root: cachet_chain::hash::Hash32, levels: usize) -> usize {
    use cachet_chain::state_tree::{Node, NodeKey, Position, TreeStore};
    let mut count = 0;
    let mut pending = vec![(root, Position::ROOT)];
    while let Some((at, pos)) = pending.pop() {
        if at == state_tree::EMPTY {
            continue;
        }
        count += usize::from(pos.depth < levels);
        if let Node::Internal { left, right } = store.node(&NodeKey::new(pos, at)).unwrap().unwrap()
        {
            pending.push((left, pos.child(false)));
            pending.push((right, pos.child(true)));
        }
    }
    count
}

#[test]
fn a_derived_tree_reads_recent_roots_holds_only_its_top_and_is_rebuilt_on_reopening() {
    // One level: two buckets hold nearly everything; three: some buckets of one entry, whose
    // leaves sit above or at the cut; six: most entries alone in a bucket.
    for levels in [1, 3, 6] {
        let dir = tempfile::tempdir().unwrap();
        let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
        let mut header = genesis.clone();
        let mut roots = vec![genesis.state_root];
        let mut store = Store::open_with_cache(dir.path(), derived(levels)).unwrap();
        store.init_genesis(&genesis, &tree).unwrap();
        let validators = store.validators_after(0).unwrap();
        const KEEP: u64 = 3;
        for h in 1..=40u64 {
            if h == 21 {
                drop(store);
                store = Store::open_with_cache(dir.path(), derived(levels)).unwrap();
                assert_churned_state(&store, &header.state_root, h - 1);
            }
            commit_changes(&store, &mut header, &validators, &churn(h));
            roots.push(header.state_root);
            // Every root since the last pruning reads whole: below the top, the key index
            // holds only the head, so the nodes the later heights replaced were kept.
            let pruned_at = (h - 1) / 5 * 5;
            let first = if h > 20 { 20 } else { 0 }.max(pruned_at.saturating_sub(KEEP));
            for back in first..=h {
                assert_churned_state(&store, &roots[back as usize], back);
            }
            if h % 5 == 0 {
                while store.prune(KEEP).unwrap().nodes > 0 {}
            }
        }
        prune_everything(&store);
        assert_eq!(
            store.resident_nodes(),
            Some(top_node_count(&store, header.state_root, levels)),
            "memory holds exactly the head's top {levels} levels"
        );
        drop(store);
        assert_eq!(family_keys(dir.path(), "nodes"), Vec::<Vec<u8>>::new());
        let store = Store::open_with_cache(dir.path(), derived(levels)).unwrap();
        assert_eq!(
            store.resident_nodes(),
            Some(top_node_count(&store, header.state_root, levels))
        );
        assert_churned_state(&store, &header.state_root, 40);
        // A store whose tree is not derived reads the same state.
        drop(store);
        let store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
        assert_churned_state(&store, &header.state_root, 40);
    }
}

#[test]
fn the_tree_moves_between_disk_memory_and_derived_when_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let mut header = genesis.clone();
    let validators = {
        let store = Store::open(dir.path()).unwrap();
        store.init_genesis(&genesis, &tree).unwrap();
        store.validators_after(0).unwrap()
    };
    let mut h = 0;
    for (placement, heights) in [
        (TreePlacement::Disk, 10),
        (TreePlacement::Memory, 10),
        (TreePlacement::Disk, 10),
        (TreePlacement::Derived, 10),
        (TreePlacement::Memory, 5),
        (TreePlacement::Memory, 5),
        (TreePlacement::Derived, 5),
        (TreePlacement::Disk, 5),
    ] {
        let sizes = CacheSizes {
            tree: placement,
            tree_top_levels: 3,
            ..CacheSizes::default()
        };
        let store = Store::open_with_cache(dir.path(), sizes).unwrap();
        assert_eq!(
            store.resident_nodes().is_some(),
            placement != TreePlacement::Disk
        );
        assert_churned_state(&store, &header.state_root, h);
        for _ in 0..heights {
            h += 1;
            commit_changes(&store, &mut header, &validators, &churn(h));
        }
        prune_everything(&store);
        let (live, leaves) = tree_keys(&store, header.state_root);
        drop(store);
        let stored = family_keys(dir.path(), "nodes");
        match placement {
            TreePlacement::Disk => assert_eq!(stored, live, "at {h}"),
            TreePlacement::Memory | TreePlacement::Derived => {
                assert!(stored.is_empty(), "at {h}")
            }
        }
        assert_eq!(family_keys(dir.path(), "values"), leaves, "at {h}");
    }
}

/// A store in `dir` with its tree in memory and the heights 1 to `heights` of [`churn`]
/// committed: the head's header.
fn churned_in_memory(dir: &std::path::Path, heights: u64) -> cachet_chain::block::BlockHeader {
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let mut header = genesis.clone();
    let store = Store::open_with_cache(dir, in_memory()).unwrap();
    store.init_genesis(&genesis, &tree).unwrap();
    let validators = store.validators_after(0).unwrap();
    for h in 1..=heights {
        commit_changes(&store, &mut header, &validators, &churn(h));
    }
    header
}

#[test]
fn a_move_of_the_tree_onto_disk_cut_short_is_finished_or_undone() {
    let dir = tempfile::tempdir().unwrap();
    let header = churned_in_memory(dir.path(), 8);
    let (live, _) = tree_keys(
        &Store::open_with_cache(dir.path(), in_memory()).unwrap(),
        header.state_root,
    );
    // As if a move onto disk had written some of the head's nodes, then crashed before it
    // removed the marker.
    let cut_short = || {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &cfs).unwrap();
        let nodes = db.cf_handle("nodes").unwrap();
        for key in live.iter().take(live.len() / 2) {
            db.put_cf(nodes, key, b"a record the move wrote").unwrap();
        }
    };
    cut_short();
    let store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
    assert_churned_state(&store, &header.state_root, 8);
    drop(store);
    assert!(family_keys(dir.path(), "nodes").is_empty(), "undone");
    cut_short();
    let store = Store::open(dir.path()).unwrap();
    assert_churned_state(&store, &header.state_root, 8);
    drop(store);
    assert_eq!(family_keys(dir.path(), "nodes"), live, "finished");
}

#[test]
fn a_key_index_that_does_not_make_the_heads_root_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let header = churned_in_memory(dir.path(), 1);
    {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &cfs).unwrap();
        let keys = db.cf_handle("keys").unwrap();
        db.put_cf(keys, churn_key(99).as_bytes(), [7u8; 32])
            .unwrap();
    }
    let error = Store::open_with_cache(dir.path(), in_memory())
        .err()
        .expect("an index that is not the head's state")
        .to_string();
    assert!(error.contains("key index"), "{error}");
    assert!(error.contains(&header.state_root.to_string()), "{error}");
}

#[test]
fn the_node_cache_holds_the_heads_tree_and_not_what_blocks_replaced() {
    use cachet_chain::hash::{Domain, Hash32};

    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    // Room for everything ever written, so that only eviction can make the counts agree.
    let store = Store::open_with_cache(
        dir.path(),
        CacheSizes {
            nodes: 1 << 20,
            values: 1 << 16,
            ..CacheSizes::default()
        },
    )
    .unwrap();
    store.init_genesis(&genesis, &tree).unwrap();
    let validators = store.validators_after(0).unwrap();
    let key = |i: u64| Domain::StateKey.hash(&i.to_le_bytes());
    let mut header = genesis.clone();
    let mut roots = vec![genesis.state_root];
    for h in 1..=20u64 {
        // Forty new entries and ten rewritten ones per height: every block replaces paths.
        let mut changes: Vec<(Hash32, Option<Vec<u8>>)> = (0..40)
            .map(|i| (key(h * 100 + i), Some(b"new".to_vec())))
            .chain((0..10).map(|i| (key(i * 7 + 100), Some(h.to_le_bytes().to_vec()))))
            .collect();
        changes.sort_by_key(|(k, _)| *k);
        changes.dedup_by_key(|(k, _)| *k);
        commit_changes(&store, &mut header, &validators, &changes);
        roots.push(header.state_root);
    }
    let live = tree_keys(&store, header.state_root).0.len();
    assert_eq!(
        store.cached_entries().0,
        live,
        "the cache holds exactly the head's nodes"
    );
    // An older root within the kept history still reads whole, from disk.
    assert_eq!(
        state_tree::get(&store, &roots[15], &key(1500)).unwrap(),
        Some(b"new".to_vec())
    );
    assert_eq!(
        state_tree::get(&store, &roots[15], &key(107)).unwrap(),
        Some(15u64.to_le_bytes().to_vec())
    );
}

#[test]
fn the_heads_entries_are_indexed_by_key_older_roots_walk_and_old_databases_are_read() {
    use cachet_chain::hash::{Domain, Hash32};
    use cachet_chain::state_tree::{NodeKey, TreeStore};

    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let key = |i: u64| Domain::StateKey.hash(&i.to_le_bytes());
    let value = |h: u64| h.to_le_bytes().to_vec();
    let mut header = genesis.clone();
    let mut roots = vec![genesis.state_root];
    {
        let store = Store::open(dir.path()).unwrap();
        store.init_genesis(&genesis, &tree).unwrap();
        let validators = store.validators_after(0).unwrap();
        for h in 1..=6u64 {
            // Each height adds two entries, rewrites entry 1 and deletes the entry two
            // heights old.
            let mut changes = vec![
                (key(h * 10), Some(value(h))),
                (key(h * 10 + 1), Some(value(h))),
                (key(1), Some(value(h))),
            ];
            if h > 2 {
                changes.push((key((h - 2) * 10), None));
            }
            changes.sort_by_key(|(k, _)| *k);
            commit_changes(&store, &mut header, &validators, &changes);
            roots.push(header.state_root);
        }
    }
    // Reference answers from walking each root, with the index bypassed.
    struct Walk<'a>(&'a Store);
    impl TreeStore for Walk<'_> {
        fn node(&self, k: &NodeKey) -> Result<Option<state_tree::Node>, state_tree::StoreError> {
            self.0.node(k)
        }
        fn value(&self, l: &Hash32) -> Result<Option<Vec<u8>>, state_tree::StoreError> {
            self.0.value(l)
        }
    }
    let keys: Vec<Hash32> = (0..80).map(key).collect();
    let check = |store: &Store| {
        let head = *roots.last().unwrap();
        for k in &keys {
            let walked = state_tree::get_value_hash(&Walk(store), &head, k).unwrap();
            assert_eq!(
                store.indexed(&head, k).unwrap(),
                Some(walked),
                "index at the head"
            );
            for root in &roots[..roots.len() - 1] {
                assert_eq!(
                    store.indexed(root, k).unwrap(),
                    None,
                    "no index for older roots"
                );
                assert_eq!(
                    state_tree::get(store, root, k).unwrap(),
                    state_tree::get(&Walk(store), root, k).unwrap()
                );
            }
        }
        assert_eq!(
            state_tree::get(store, &head, &key(1)).unwrap(),
            Some(value(6))
        );
        assert_eq!(state_tree::get(store, &head, &key(30)).unwrap(), None);
        assert_eq!(
            state_tree::get(store, &head, &key(50)).unwrap(),
            Some(value(5))
        );
    };
    check(&Store::open(dir.path()).unwrap());

    // Databases of the two previous formats are rewritten when opened: format 3 kept nodes
    // under their hash alone, values without the height they were written at, and one list of
    // node hashes per stale height; format 2 also had no index and one stale record per node.
    // Each from the same database, with the history of every height.
    let copy = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), copy.path().join(file.file_name())).unwrap();
    }
    for (format, dir) in [(3u8, dir.path()), (2, copy.path())] {
        let head = *roots.last().unwrap();
        let (head_nodes, head_leaves) = tree_keys(&Store::open(dir).unwrap(), head);
        downgrade(dir, format);
        let store = Store::open(dir).unwrap();
        check(&store);
        let nodes = family_keys(dir, "nodes");
        assert!(
            nodes.iter().all(|k| k.len() == NodeKey::LEN),
            "no node under its bare hash"
        );
        assert!(
            nodes.len() > head_nodes.len(),
            "older roots' nodes are kept too"
        );
        // Pruning deletes what the head does not use, once the head is far enough ahead.
        prune_everything(&store);
        assert_eq!(store.pruned_upto().unwrap(), 6);
        drop(store);
        assert_eq!(family_keys(dir, "nodes"), head_nodes, "format {format}");
        assert_eq!(family_keys(dir, "values"), head_leaves, "format {format}");
        // An interrupted rewrite is done again: some records are in the new format then.
        set_format(dir, format);
        let store = Store::open(dir).unwrap();
        assert_eq!(
            tree_keys(&store, head),
            (head_nodes.clone(), head_leaves.clone())
        );
        drop(store);
        assert_eq!(family_keys(dir, "nodes"), head_nodes);
        // Read from disk only (what was read above is in the node cache).
        let store = Store::open_with_cache(dir, CacheSizes::uncached()).unwrap();
        for k in &keys {
            assert_eq!(
                state_tree::get(&store, &head, k).unwrap(),
                state_tree::get(&Walk(&store), &head, k).unwrap()
            );
        }
        assert!(
            keys.iter()
                .any(|k| state_tree::get(&store, &roots[1], k).is_err()),
            "an old root's replaced nodes are gone"
        );
    }
    let store = Store::open(dir.path()).unwrap();
    let genesis_key = StateKey::Validators.hash();
    assert!(
        matches!(
            store.indexed(roots.last().unwrap(), &genesis_key).unwrap(),
            Some(Some(_))
        ),
        "genesis entries are indexed too"
    );
}

fn set_format(dir: &std::path::Path, format: u8) {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, &cfs).unwrap();
    db.put_cf(db.cf_handle("meta").unwrap(), b"format", [format])
        .unwrap();
}

/// Rewrite the database under `dir` as the node of format 2 or 3 wrote it.
fn downgrade(dir: &std::path::Path, format: u8) {
    use cachet_chain::state_tree::NodeKey;
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, &cfs).unwrap();
    type Records = Vec<(Box<[u8]>, Box<[u8]>)>;
    let all = |family: &str| -> Records {
        db.iterator_cf(db.cf_handle(family).unwrap(), rocksdb::IteratorMode::Start)
            .map(Result::unwrap)
            .collect()
    };
    let (nodes, values, stale) = (
        db.cf_handle("nodes").unwrap(),
        db.cf_handle("values").unwrap(),
        db.cf_handle("stale").unwrap(),
    );
    for (key, record) in all("nodes") {
        let key = NodeKey::from_bytes(&key).expect("a node key");
        db.delete_cf(nodes, key.to_bytes()).unwrap();
        db.put_cf(nodes, key.hash.as_bytes(), record).unwrap();
    }
    for (leaf, record) in all("values") {
        db.put_cf(values, leaf, &record[..record.len() - 8])
            .unwrap();
    }
    for (height, record) in all("stale") {
        let count = u32::from_be_bytes(record[..4].try_into().unwrap()) as usize;
        let hashes: Vec<&[u8]> = record[4..4 + count * NodeKey::LEN]
            .chunks(NodeKey::LEN)
            .map(|k| &k[4..])
            .collect();
        db.delete_cf(stale, &height).unwrap();
        if format == 3 {
            db.put_cf(stale, &height, hashes.concat()).unwrap();
        } else {
            for hash in hashes {
                db.put_cf(stale, [&height[..], hash].concat(), []).unwrap();
            }
        }
    }
    if format == 2 {
        let index = db.cf_handle("keys").unwrap();
        for (key, _) in all("keys") {
            db.delete_cf(index, key).unwrap();
        }
    }
    db.put_cf(db.cf_handle("meta").unwrap(), b"format", [format])
        .unwrap();
}

/// The newest `OPTIONS-*` file RocksDB wrote.
fn options_text(dir: &std::path::Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-"))
        })
        .collect();
    files.sort();
    std::fs::read_to_string(files.last().expect("an OPTIONS file")).unwrap()
}

/// One section of the newest `OPTIONS-*` file.
fn options_section(dir: &std::path::Path, header: &str) -> String {
    let text = options_text(dir);
    let section = text.split(header).nth(1).expect("the section");
    section.split("\n[").next().unwrap().to_string()
}

/// The options RocksDB wrote for column family `name`.
fn family_options_text(dir: &std::path::Path, name: &str) -> String {
    options_section(dir, &format!("[CFOptions \"{name}\"]"))
}

/// The options RocksDB wrote for the database as a whole.
fn db_options_text(dir: &std::path::Path) -> String {
    options_section(dir, "[DBOptions]")
}

/// The value of `key = value` in a section of an `OPTIONS` file.
fn option<T: std::str::FromStr>(options: &str, key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    options
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key}: {options}"))
        .parse()
        .unwrap()
}

#[test]
fn families_read_by_missing_keys_keep_a_bloom_filter_over_their_memtables() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    for name in ["nodes", "values", "keys", "txs"] {
        let options = family_options_text(dir.path(), name);
        assert!(
            options.contains("memtable_whole_key_filtering=true"),
            "{name}: {options}"
        );
        assert!(
            !options.contains("memtable_prefix_bloom_size_ratio=0.000000"),
            "{name}: {options}"
        );
    }
    // Blocks are read by height, always present: no filter to keep.
    let blocks = family_options_text(dir.path(), "blocks");
    assert!(blocks.contains("memtable_whole_key_filtering=false"));
}

#[test]
fn families_keyed_by_hash_collect_more_level0_files_before_compacting() {
    // Random keys: each compaction of level 0 rewrites the whole level below, so fewer, larger
    // ones (see `store::level0_files`).
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let trigger = |name: &str| -> (i32, i32, i32) {
        let options = family_options_text(dir.path(), name);
        (
            option(&options, "level0_file_num_compaction_trigger"),
            option(&options, "level0_slowdown_writes_trigger"),
            option(&options, "level0_stop_writes_trigger"),
        )
    };
    for name in ["values", "keys", "txs"] {
        assert_eq!(trigger(name), (12, 28, 44), "{name}");
    }
    assert_eq!(trigger("nodes"), (8, 20, 32));
    // Blocks are written in order of height: RocksDB's defaults.
    assert_eq!(trigger("blocks"), (4, 20, 36));
}

#[test]
fn tree_nodes_and_values_are_read_in_small_blocks() {
    // Each is read alone, at random: see `store::data_block_bytes`.
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let block_size = |name: &str| -> usize {
        let table = options_section(
            dir.path(),
            &format!("[TableOptions/BlockBasedTable \"{name}\"]"),
        );
        option(&table, "block_size")
    };
    assert_eq!(block_size("nodes"), 1024);
    assert_eq!(block_size("values"), 1024);
    for name in ["blocks", "keys", "txs", "stale", "meta"] {
        assert_eq!(block_size(name), 4096, "{name}");
    }
}

#[test]
fn each_family_flushes_its_own_memtable_and_the_log_is_bounded() {
    // One budget for all memtables flushed the small families in files of a few megabytes
    // (see `store::write_buffer_bytes`): each family now has its own, and no shared one.
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    assert_eq!(CacheSizes::default().memtables_bytes, 182 << 20);
    let field = option::<u64>;
    const MIB: u64 = 1 << 20;
    for (name, mib) in [
        ("nodes", 64),
        ("values", 32),
        ("keys", 16),
        ("txs", 16),
        ("blocks", 16),
        ("stale", 16),
        ("undecided", 16),
        ("commits", 4),
        ("meta", 1),
        ("evidence", 1),
    ] {
        let options = family_options_text(dir.path(), name);
        assert_eq!(field(&options, "write_buffer_size"), mib * MIB, "{name}");
    }
    let db = db_options_text(dir.path());
    assert_eq!(field(&db, "db_write_buffer_size"), 0, "{db}");
    assert_eq!(field(&db, "max_total_wal_size"), 256 * MIB, "{db}");

    // An operator's smaller budget is shared the same way, down to RocksDB's least size.
    let small = tempfile::tempdir().unwrap();
    let sizes = CacheSizes {
        memtables_bytes: 91 << 20,
        ..CacheSizes::default()
    };
    drop(Store::open_with_cache(small.path(), sizes).unwrap());
    for (name, bytes) in [("nodes", 32 * MIB), ("values", 16 * MIB), ("meta", MIB / 2)] {
        let options = family_options_text(small.path(), name);
        assert_eq!(field(&options, "write_buffer_size"), bytes, "{name}");
    }
    let tiny = tempfile::tempdir().unwrap();
    let sizes = CacheSizes {
        memtables_bytes: 1 << 20,
        ..CacheSizes::default()
    };
    drop(Store::open_with_cache(tiny.path(), sizes).unwrap());
    let meta = family_options_text(tiny.path(), "meta");
    assert_eq!(field(&meta, "write_buffer_size"), 64 << 10);
}

#[test]
fn the_block_cache_is_split_in_shards_that_hold_whole_index_and_filter_blocks() {
    // RocksDB would split the default 64 MiB cache into 64 shards of 1 MiB, too small for a
    // full-size table's filter (see `store::block_cache_shard_bits`); its log says what it got.
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let log = std::fs::read_to_string(dir.path().join("LOG")).unwrap();
    let field = |options: &str, name: &str| {
        options
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', ':']).trim().to_string())
            .unwrap_or_else(|| panic!("{name} in {options}"))
    };
    // A section per column family logged; the unused `default` family has RocksDB's own cache.
    let ours: Vec<&str> = log
        .split("block_cache_options:")
        .skip(1)
        .filter(|options| field(options, "capacity") == DEFAULT_BLOCK_CACHE_BYTES.to_string())
        .collect();
    assert!(!ours.is_empty(), "the store's block cache in RocksDB's log");
    for options in ours {
        assert_eq!(field(options, "num_shard_bits"), "2");
        assert_eq!(field(options, "high_pri_pool_ratio"), "0.500");
    }
}

#[test]
fn the_stores_reads_and_writes_are_counted_by_rocksdb() {
    use cachet_chain::hash::{Domain, Hash32};

    let dir = tempfile::tempdir().unwrap();
    let (genesis, tree) = genesis_state(&example::genesis()).unwrap();
    let key = |i: u64| Domain::StateKey.hash(&i.to_le_bytes());
    let head = {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.io().wal_bytes,
            0,
            "nothing logged before the first write"
        );
        store.init_genesis(&genesis, &tree).unwrap();
        let validators = store.validators_after(0).unwrap();
        let mut header = genesis.clone();
        for h in 0..10u64 {
            let mut changes: Vec<(Hash32, Option<Vec<u8>>)> = (0..200)
                .map(|i| (key(h * 1000 + i), Some(i.to_le_bytes().to_vec())))
                .collect();
            changes.sort_by_key(|(k, _)| *k);
            commit_changes(&store, &mut header, &validators, &changes);
        }
        assert!(store.io().wal_bytes > 0, "the commits went through the log");
        header
    };
    // Reopened: the recovered log is written to a table file, so reads now go through the
    // block cache (the store's own caches are off, so every read reaches RocksDB).
    let store = Store::open_with_cache(dir.path(), CacheSizes::uncached()).unwrap();
    for h in 0..10u64 {
        for i in 0..200 {
            assert_eq!(
                state_tree::get(&store, &head.state_root, &key(h * 1000 + i)).unwrap(),
                Some(i.to_le_bytes().to_vec())
            );
        }
    }
    let io = store.io();
    let data = io.block_cache.iter().find(|b| b.block == "data").unwrap();
    assert!(data.misses > 0 && data.inserted_bytes > 0, "{io:?}");
    assert!(
        data.hits > data.misses,
        "blocks read again come from the cache: {io:?}"
    );
    let filter = io.block_cache.iter().find(|b| b.block == "filter").unwrap();
    assert!(filter.hits + filter.misses > 0, "{io:?}");
    assert_eq!(io.wal_bytes, 0, "reads log nothing");
}

/// One row of the `# Format` table in the store's module doc: a family, and its key layout as
/// fields (`name:N`, N bytes of anything) and literals (`"text"`).
#[derive(Debug)]
struct DocumentedKey {
    family: String,
    layout: String,
    parts: Vec<KeyPart>,
}

#[derive(Debug)]
enum KeyPart {
    Literal(Vec<u8>),
    Field(usize),
}

impl DocumentedKey {
    fn matches(&self, key: &[u8]) -> bool {
        let mut rest = key;
        for part in &self.parts {
            match part {
                KeyPart::Literal(text) => match rest.strip_prefix(text.as_slice()) {
                    Some(after) => rest = after,
                    None => return false,
                },
                KeyPart::Field(len) => match rest.get(*len..) {
                    Some(after) => rest = after,
                    None => return false,
                },
            }
        }
        rest.is_empty()
    }
}

/// The rows of the `# Format` table, read from the module doc itself.
fn documented_keys() -> Vec<DocumentedKey> {
    let source = include_str!("../src/store/mod.rs");
    let section = source
        .split("//! # Format")
        .nth(1)
        .expect("the store's module doc has a # Format section");
    let mut rows = Vec::new();
    for line in section.lines() {
        let Some(row) = line.strip_prefix("//! | `") else {
            if !rows.is_empty() && !line.starts_with("//! |") {
                break;
            }
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let family = cells[0].trim_end_matches('`').to_string();
        let layout = cells[1].trim_matches('`').to_string();
        let parts = layout
            .split(' ')
            .map(|token| {
                if let Some(text) = token.strip_prefix('"') {
                    KeyPart::Literal(text.trim_end_matches('"').as_bytes().to_vec())
                } else {
                    let (_, len) = token.split_once(':').expect("name:N");
                    KeyPart::Field(len.parse().expect("a length"))
                }
            })
            .collect();
        rows.push(DocumentedKey {
            family,
            layout,
            parts,
        });
    }
    assert!(
        rows.len() >= 10,
        "the # Format table has {} rows",
        rows.len()
    );
    rows
}

/// Every key in every column family of the database under `dir` is one the `# Format` table
/// documents for that family; marks the rows seen in `seen`.
fn assert_keys_documented(dir: &std::path::Path, rows: &[DocumentedKey], seen: &mut [bool]) {
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let documented: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.family.as_str()).collect();
    for family in &families {
        if family == "default" {
            assert!(
                family_keys(dir, family).is_empty(),
                "RocksDB's default family is unused"
            );
            continue;
        }
        assert!(
            documented.contains(family.as_str()),
            "family {family} is not in the # Format table"
        );
        for key in family_keys(dir, family) {
            let row = rows
                .iter()
                .position(|r| r.family == *family && r.matches(&key))
                .unwrap_or_else(|| {
                    panic!(
                        "a key in {family} matches no row of the # Format table: {}",
                        hex::encode(&key)
                    )
                });
            seen[row] = true;
        }
    }
    for family in documented {
        assert!(
            families.iter().any(|f| f == family),
            "documented family {family} is not in the database"
        );
    }
}

#[test]
fn every_key_a_committed_store_holds_is_one_its_format_section_documents() {
    let rows = documented_keys();
    let mut seen = vec![false; rows.len()];
    let dir = tempfile::tempdir().unwrap();
    let (genesis, head) = {
        // A block with a transaction: `blocks`, `commits`, `txs`.
        let (store, mut header, genesis, _) = store_with_one_anchor(dir.path(), "format");
        let validators = store.validators_after(0).unwrap();
        for h in 2..=8 {
            // Height 5 changes the validator set (as far as the store can tell).
            header.next_validators_hash = if h == 5 {
                cachet_chain::hash::Hash32([5; 32])
            } else {
                header.validators_hash
            };
            commit_changes(&store, &mut header, &validators, &churn(h));
        }
        store
            .put_undecided(9, 0, &header.hash(), b"proposal")
            .unwrap();
        store.put_evidence(8, b"evidence").unwrap();
        // Height 8 as a checkpoint: the latest at or below any later height, none below it.
        let anchor = cachet_chain::trust::TrustAnchor {
            header: header.clone(),
            validators: validators.clone(),
            policies: Default::default(),
        };
        store.put_checkpoint(&anchor).unwrap();
        assert_eq!(store.checkpoint_at_or_below(20).unwrap(), Some(anchor));
        assert_eq!(store.checkpoint_at_or_below(7).unwrap(), None);
        // Some heights pruned, the later ones' stale records kept.
        store.prune(4).unwrap();
        store.prune(4).unwrap();
        (genesis, header)
    };
    assert_keys_documented(dir.path(), &rows, &mut seen);
    // A store joined from a snapshot of this one: its `meta` "base", and exactly its tree.
    {
        use cachet_chain::snapshot::{Chunk, Entry, Manifest, chunk_of};
        use cachet_node::store::{KeptBlock, SnapshotHead};
        let source = Store::open(dir.path()).unwrap();
        let mut entries = Vec::new();
        source
            .state_entries(|key, value_hash, value| {
                entries.push((key, value_hash, value));
                Ok(())
            })
            .unwrap();
        let hashed: Vec<_> = entries.iter().map(|(k, v, _)| (*k, *v)).collect();
        let manifest = Manifest::cut(8, 1, &hashed);
        manifest.verify(&head.state_root).unwrap();
        let joined_dir = tempfile::tempdir().unwrap();
        let joined = Store::open(joined_dir.path()).unwrap();
        for index in 0..2u32 {
            let chunk = Chunk {
                entries: entries
                    .iter()
                    .filter(|(k, _, _)| chunk_of(k, 1) == index)
                    .map(|(key, _, value)| Entry {
                        key: *key,
                        value: value.clone(),
                    })
                    .collect(),
            };
            let mut nodes = Vec::new();
            manifest
                .check_chunk(index, &chunk, &mut |k, n| nodes.push((k, n)))
                .unwrap();
            joined
                .put_snapshot_chunk(8, &chunk.entries, &nodes)
                .unwrap();
        }
        let mut top = Vec::new();
        manifest.root(&mut |k, n| top.push((k, n)));
        let kept = [KeptBlock {
            height: 8,
            block: source.block_bytes(8).unwrap().unwrap(),
            certificate: source.certificate(8).unwrap().unwrap(),
            validators_after: None,
        }];
        joined
            .finish_snapshot(SnapshotHead {
                genesis: &genesis,
                genesis_validators: &source.validators_after(0).unwrap(),
                blocks: &kept,
                checkpoint: None,
                head: &head,
                top_nodes: &top,
            })
            .unwrap();
        assert_eq!(joined.base().unwrap(), 8);
        assert_eq!(joined.head().unwrap().unwrap(), head);
        assert_eq!(state_tree::walk(&joined, &head.state_root).unwrap(), hashed);
        drop((joined, source));
        assert_keys_documented(joined_dir.path(), &rows, &mut seen);
    }
    // The tree moved into memory: the marker in `meta`, the `nodes` family emptied.
    drop(Store::open_with_cache(dir.path(), in_memory()).unwrap());
    assert!(family_keys(dir.path(), "nodes").is_empty());
    assert_keys_documented(dir.path(), &rows, &mut seen);
    let store = Store::open_with_cache(dir.path(), in_memory()).unwrap();
    assert_eq!(store.head().unwrap().unwrap(), head);
    let unseen: Vec<String> = rows
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(r, _)| format!("{} {}", r.family, r.layout))
        .collect();
    assert!(
        unseen.is_empty(),
        "documented keys the store never wrote: {unseen:?}"
    );
}

/// Blocks more than the horizon below the head go, with their certificates and transaction
/// index, in bounded steps; those receipts need (a validator-set change, a checkpoint) stay.
#[test]
fn block_pruning_keeps_the_horizon_and_the_blocks_receipts_need() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut header, _, tx_id) = store_with_one_anchor(dir.path(), "pruned");
    let validators = store.validators_after(0).unwrap();
    for h in 2..=1500 {
        header.next_validators_hash = if h == 5 {
            cachet_chain::hash::Hash32([5; 32])
        } else {
            header.validators_hash
        };
        commit_changes(&store, &mut header, &validators, &[]);
        if h == 100 {
            store
                .put_checkpoint(&cachet_chain::trust::TrustAnchor {
                    header: header.clone(),
                    validators: validators.clone(),
                    policies: Default::default(),
                })
                .unwrap();
        }
    }
    assert!(store.tx_location(&tx_id).unwrap().is_some());
    // What blocks and certificates take on disk, flushed and compacted with nothing pruned.
    let blocks_bytes = |store: &cachet_node::store::Store| -> u64 {
        store
            .family_sizes()
            .iter()
            .filter(|f| f.name == "blocks" || f.name == "commits")
            .map(|f| f.sst_bytes + f.memtable_bytes)
            .sum()
    };
    store.compact_pruned_blocks(0);
    let whole = blocks_bytes(&store);
    let mut steps = 0;
    let mut base = store.base().unwrap();
    loop {
        let next = store.prune_blocks(300, None).unwrap();
        if next == base {
            break;
        }
        assert!(next - base <= 512, "a step went from {base} to {next}");
        base = next;
        steps += 1;
    }
    assert_eq!(base, 1200);
    assert!(steps >= 3, "{steps} steps");
    // The space goes with a compaction (a node does it once far more has gone than one
    // transaction): a fifth of the heights are left.
    assert!(!store.pruned_blocks_compaction_due());
    store.compact_pruned_blocks(base);
    let kept = blocks_bytes(&store);
    assert!(kept * 3 < whole, "{kept} of {whole} bytes kept");
    assert_eq!(store.base().unwrap(), 1200);
    for (h, present) in [
        (1, false),
        (5, true),
        (6, false),
        (100, true),
        (1199, false),
        (1200, true),
        (1500, true),
    ] {
        assert_eq!(store.block(h).unwrap().is_some(), present, "block {h}");
        assert_eq!(
            store.certificate(h).unwrap().is_some(),
            present,
            "certificate {h}"
        );
    }
    assert_eq!(store.tx_location(&tx_id).unwrap(), None);
    // The next step, after more heights, takes the old base's block too.
    for _ in 0..10 {
        commit_changes(&store, &mut header, &validators, &[]);
    }
    assert_eq!(store.prune_blocks(300, None).unwrap(), 1210);
    assert!(store.block(1200).unwrap().is_none());
    assert!(store.block(1210).unwrap().is_some());
    // A snapshot at 1213 holds the base there, whatever the horizon: its joiners ask for the
    // blocks after it.
    for _ in 0..100 {
        commit_changes(&store, &mut header, &validators, &[]);
    }
    assert_eq!(store.prune_blocks(300, Some(1213)).unwrap(), 1213);
    assert_eq!(store.prune_blocks(300, Some(1213)).unwrap(), 1213);
    assert!(store.block(1213).unwrap().is_some());
    assert_eq!(store.prune_blocks(300, None).unwrap(), 1310);
}
