//! Mempool admission: every refusal has its code, and what is admitted is reaped in nonce order.

use cachet_chain::state_tree::MemoryTreeStore;
use cachet_chain::tx::{Action, Transaction};
use cachet_contracts::{example, genesis_state};
use cachet_node::mempool::{AdmitError, Head, Mempool};
use cachet_tests::txs;

fn setup() -> (MemoryTreeStore, cachet_chain::BlockHeader) {
    let (header, batch) = genesis_state(&example::genesis()).unwrap();
    let mut store = MemoryTreeStore::new();
    store.write(batch);
    (store, header)
}

fn head<'a>(
    store: &'a MemoryTreeStore,
    header: &'a cachet_chain::BlockHeader,
) -> Head<'a, MemoryTreeStore> {
    Head {
        store,
        state_root: header.state_root,
        height: header.height,
        time: header.time,
        chain_id: &header.chain_id,
    }
}

fn tx(agency: &str, nonce: u64, name: &str) -> Transaction {
    txs::signed_on(
        cachet_chain::ChainId::new(example::EXAMPLE_CHAIN_ID).unwrap(),
        agency,
        nonce,
        Action::Issue(txs::title(name)),
    )
}

#[test]
fn admission_refuses_with_stable_codes() {
    let (store, header) = setup();
    let head = head(&store, &header);
    let pool = Mempool::new(10, 1 << 20);
    let code = |r: Result<_, AdmitError>| r.map(|_| ()).unwrap_err().code();
    assert_eq!(code(pool.admit(b"junk", &head)), 1001);
    assert_eq!(code(pool.admit(&vec![0u8; 20_000], &head)), 1002);
    let mut bad = tx("moi-land", 0, "a");
    bad.body.nonce = 1;
    assert_eq!(
        code(pool.admit(&bad.encode(), &head)),
        1102,
        "signature no longer matches the body"
    );
    assert_eq!(
        code(pool.admit(&tx("moea-investment", 0, "a").encode(), &head)),
        1201,
        "not accredited, judged at the door"
    );
    assert_eq!(
        code(pool.admit(&tx("moi-land", 5000, "a").encode(), &head)),
        1107,
        "too far ahead"
    );
    let good = tx("moi-land", 0, "a");
    pool.admit(&good.encode(), &head).unwrap();
    assert_eq!(code(pool.admit(&good.encode(), &head)), 2002, "duplicate");
    assert_eq!(
        code(pool.admit(&tx("moi-land", 0, "b").encode(), &head)),
        1106,
        "same nonce taken"
    );
    assert_eq!(pool.len(), 1);
    // Only the exact admitted transaction counts as verified: same body, other signature does not.
    assert!(pool.contains_verified(&good));
    let mut forged = good.clone();
    forged.signature = cachet_chain::SecretKey::dev("mallory").sign(&forged.signing_message());
    assert!(!pool.contains_verified(&forged));
}

#[test]
fn a_full_pool_says_so_and_reaping_follows_nonces_across_signers() {
    let (store, header) = setup();
    let head = head(&store, &header);
    let pool = Mempool::new(4, 1 << 20);
    // Out of order: nonce 2 and 1 arrive before 0.
    for n in [2, 1, 0] {
        pool.admit(&tx("moi-land", n, &format!("t{n}")).encode(), &head)
            .unwrap();
    }
    pool.admit(&tx("guting-land-office", 0, "g0").encode(), &head)
        .unwrap();
    let full = pool
        .admit(&tx("guting-land-office", 1, "g1").encode(), &head)
        .unwrap_err();
    assert_eq!(full.code(), 2001);
    // A full pool refuses before it spends a signature check: a forged transaction gets the
    // same cheap refusal, not 1102.
    let mut forged = tx("guting-land-office", 1, "g1");
    forged.signature = cachet_chain::SecretKey::dev("mallory").sign(&forged.signing_message());
    assert_eq!(
        pool.admit(&forged.encode(), &head).unwrap_err().code(),
        2001
    );
    let reaped = pool.reap(10, |_| 0);
    let order: Vec<(String, u64)> = reaped
        .iter()
        .map(|t| (t.body.signer.to_string(), t.body.nonce))
        .collect();
    assert_eq!(
        order,
        vec![
            ("guting-land-office".into(), 0),
            ("moi-land".into(), 0),
            ("moi-land".into(), 1),
            ("moi-land".into(), 2),
        ]
    );
    // A gap stops a signer's run.
    assert_eq!(
        pool.reap(10, |a| if a.as_str() == "moi-land" { 1 } else { 5 })
            .len(),
        2
    );
    // Nonces 0 and 1 of moi-land went into a block; guting's 0 was beaten by another
    // transaction with its nonce.
    let committed = [tx("moi-land", 0, "t0").id(), tx("moi-land", 1, "t1").id()];
    pool.prune(&committed, |a| {
        let mut record = head.agency(a)?;
        if let Some(r) = record.as_mut() {
            r.next_nonce = if a.as_str() == "moi-land" { 2 } else { 1 };
        }
        Ok(record)
    });
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.dropped(&committed[0]), None, "committed, not dropped");
    let beaten = tx("guting-land-office", 0, "g0").id();
    assert_eq!(pool.dropped(&beaten).map(|e| e.code()), Some(1106));
}

/// A transaction that can never be in a block any more (its signer's key rotated, or the
/// signer removed, while it waited) leaves the pool at the next commit, and says why; its
/// signer's nonce is free again for a new transaction.
#[test]
fn what_can_never_be_in_a_block_is_dropped_with_its_reason() {
    let (store, header) = setup();
    let head = head(&store, &header);
    let pool = Mempool::new(10, 1 << 20);
    let waiting = tx("moi-land", 0, "a");
    pool.admit(&waiting.encode(), &head).unwrap();
    let other = tx("guting-land-office", 0, "g");
    pool.admit(&other.encode(), &head).unwrap();
    let rotated = cachet_chain::SecretKey::dev("moi-land-2").public();
    pool.prune(&[], |a| {
        let mut record = head.agency(a)?;
        if let Some(r) = record.as_mut() {
            if a.as_str() == "moi-land" {
                let mut keys = r.keys.clone().into_vec();
                keys.push(cachet_chain::state::KeyEpoch {
                    key: rotated,
                    from: cachet_chain::ids::Height(1),
                    until: None,
                });
                r.keys = keys.try_into().unwrap();
            } else {
                r.removed_at = Some(cachet_chain::ids::Height(1));
            }
        }
        Ok(record)
    });
    assert!(pool.is_empty());
    assert_eq!(pool.dropped(&waiting.id()).map(|e| e.code()), Some(1105));
    assert_eq!(pool.dropped(&other.id()).map(|e| e.code()), Some(1104));
    // The nonce the dropped transaction held is free again.
    pool.admit(&tx("moi-land", 0, "b").encode(), &head).unwrap();
}

#[test]
fn admitting_together_finds_each_bad_signature_and_keeps_the_rest() {
    let (store, header) = setup();
    let head = head(&store, &header);
    let pool = Mempool::new(100, 1 << 20);
    let good: Vec<Vec<u8>> = (0..5)
        .map(|n| tx("moi-land", n, &format!("t{n}")).encode())
        .collect();
    let mut forged = tx("moi-land", 2, "t2");
    forged.signature = cachet_chain::SecretKey::dev("mallory").sign(&forged.signing_message());
    let forged = forged.encode();
    let stranger = txs::signed_on(
        cachet_chain::ChainId::new(example::EXAMPLE_CHAIN_ID).unwrap(),
        "nobody",
        0,
        Action::Issue(txs::title("x")),
    )
    .encode();
    let batch: Vec<&[u8]> = vec![
        &good[0], &good[1], &forged, &good[3], b"junk", &good[3], &stranger, &good[4],
    ];
    let codes: Vec<Option<u32>> = pool
        .admit_many(&batch, &head)
        .into_iter()
        .map(|r| r.err().map(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            None,
            Some(1102),
            None,
            Some(1001),
            Some(2002),
            Some(1103),
            None
        ]
    );
    assert_eq!(pool.len(), 4);
    // The forged one took nothing: the genuine transaction with that nonce is still welcome.
    pool.admit(&good[2], &head).unwrap();
    assert_eq!(pool.len(), 5);
}

#[tokio::test]
async fn an_idle_proposer_wakes_for_a_transaction_it_can_propose() {
    use std::sync::Arc;
    use tokio::time::{Duration, Instant, sleep, timeout};
    let (store, header) = setup();
    let head = head(&store, &header);
    let pool = Arc::new(Mempool::new(10, 1 << 20));

    // Nothing arrives: the wait ends at its deadline.
    let start = Instant::now();
    pool.wait_for_transactions(start + Duration::from_millis(300))
        .await;
    assert!(start.elapsed() >= Duration::from_millis(300));

    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let start = Instant::now();
            pool.wait_for_transactions(start + Duration::from_secs(60))
                .await;
            start.elapsed()
        }
    });
    sleep(Duration::from_millis(100)).await;
    // Behind a nonce gap, a transaction cannot go into the next block: no reason to wake.
    pool.admit(&tx("moi-land", 1, "second").encode(), &head)
        .unwrap();
    sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "woken by a transaction it cannot propose"
    );
    // The one that fills the gap can.
    pool.admit(&tx("moi-land", 0, "first").encode(), &head)
        .unwrap();
    let waited = timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by the next-in-line transaction")
        .unwrap();
    assert!(waited < Duration::from_secs(60));

    // A pool that already holds something does not wait at all.
    let start = Instant::now();
    pool.wait_for_transactions(start + Duration::from_secs(60))
        .await;
    assert!(start.elapsed() < Duration::from_secs(10));
}
