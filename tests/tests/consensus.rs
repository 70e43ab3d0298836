//! Cluster tests: 4 validators as real processes on 127.0.0.1.

use cachet_tests::{Cluster, txs, wait_until};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn four_validators_finalize_and_agree() {
    let mut c = Cluster::new("agree", 4);
    c.start_all();
    assert!(
        c.wait_height(0, 3, T),
        "no progress; log:\n{}",
        c.log_tail(0)
    );
    // An anchor submitted to node 0 is finalized and visible on every node.
    let id = c.submit(0, &txs::anchor(0, "deed-1")).expect("admitted");
    assert!(
        wait_until(T, || (0..4).all(|i| c.committed_at(i, &id).is_some())),
        "anchor not committed everywhere"
    );
    let cert = txs::title("deed-1").cert_id().to_string();
    for i in 0..4 {
        let rec = c
            .call(i, "cachet_certificate", json!([cert]))
            .expect("certificate everywhere");
        assert_eq!(rec["issuer"], "moi-land");
    }
    let h = c.min_height();
    for i in 1..4 {
        c.assert_same_chain(0, i, h);
    }
}

#[test]
fn one_of_four_down_the_rest_go_on_and_it_catches_up() {
    let mut c = Cluster::new("one-down", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T));
    c.kill(3);
    let h = c.height(0).unwrap();
    assert!(
        c.wait_height(0, h + 3, T),
        "three validators did not make progress"
    );
    let id = c
        .submit(1, &txs::anchor(0, "while-down"))
        .expect("admitted");
    assert!(wait_until(T, || c.committed_at(0, &id).is_some()));
    c.start(3);
    let target = c.height(0).unwrap();
    assert!(
        c.wait_height(3, target, T),
        "restarted node did not catch up; log:\n{}",
        c.log_tail(3)
    );
    c.assert_same_chain(0, 3, target);
    assert!(c.committed_at(3, &id).is_some());
    let s0 = c.call(0, "cachet_block", json!([target])).unwrap();
    let s3 = c.call(3, "cachet_block", json!([target])).unwrap();
    assert_eq!(s0["header"]["state_root"], s3["header"]["state_root"]);
}

#[test]
fn two_of_four_down_halts_without_forking_then_resumes() {
    let mut c = Cluster::new("two-down", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T));
    c.kill(2);
    c.kill(3);
    std::thread::sleep(Duration::from_secs(2));
    let stalled = c.height(0).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let after = c.height(0).unwrap();
    assert!(
        after <= stalled + 1,
        "two of four validators made progress: {stalled} -> {after}"
    );
    c.start(2);
    c.start(3);
    assert!(
        c.wait_height(0, after + 3, T),
        "progress did not resume; log:\n{}",
        c.log_tail(0)
    );
    let h = c.min_height();
    for i in 1..4 {
        assert!(c.wait_height(i, h, T));
        c.assert_same_chain(0, i, h);
    }
}

#[test]
fn kill_9_under_load_loses_nothing_and_nodes_agree() {
    let mut c = Cluster::new("kill9", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T));
    let mut ids = Vec::new();
    let mut nonce = 0;
    for round in 0..3 {
        // Load through node 0 while node 3 crashes and comes back.
        for k in 0..20 {
            let tx = txs::anchor(nonce, &format!("load-{round}-{k}"));
            if let Ok(id) = c.submit(0, &tx) {
                ids.push(id);
                nonce += 1;
            }
            if k == 10 {
                c.kill(3);
            }
        }
        assert!(
            wait_until(T, || ids.iter().all(|id| c.committed_at(0, id).is_some())),
            "anchors not committed"
        );
        c.start(3);
        let h = c.height(0).unwrap();
        assert!(
            c.wait_height(3, h, T),
            "node 3 did not recover; log:\n{}",
            c.log_tail(3)
        );
    }
    let h = c.min_height();
    for i in 0..4 {
        for id in &ids {
            assert!(c.committed_at(i, id).is_some(), "node {i} lost {id}");
        }
        c.assert_same_chain(0, i, h);
    }
}

#[test]
fn bad_inputs_get_their_codes_and_change_nothing() {
    let mut c = Cluster::new("bad-inputs", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T));
    let good = txs::anchor(0, "good");
    let id = c.submit(0, &good).expect("admitted");
    assert!(wait_until(T, || c.committed_at(0, &id).is_some()));
    let before = c.status(0).unwrap();

    let code = |r: Result<String, cachet_tests::RpcError>| r.expect_err("refused").code;
    assert_eq!(
        code(c.submit_bytes(0, b"not a transaction")),
        1001,
        "malformed"
    );
    assert_eq!(
        code(c.submit_bytes(0, &vec![0u8; 40_000])),
        1002,
        "oversized"
    );
    let mut bad_sig = txs::anchor(1, "x");
    bad_sig.signature = cachet_chain::SecretKey::dev("mallory").sign(&bad_sig.signing_message());
    assert_eq!(code(c.submit(0, &bad_sig)), 1102, "bad signature");
    let mut other_chain = txs::anchor(1, "x").body;
    other_chain.chain_id = cachet_chain::ChainId::new("another-chain").unwrap();
    assert_eq!(
        code(c.submit(
            0,
            &other_chain.sign(&cachet_contracts::example::agency_key("moi-land"))
        )),
        1101,
        "wrong chain"
    );
    assert_eq!(code(c.submit(0, &good)), 1106, "replay");
    let stranger = cachet_chain::SecretKey::dev("stranger");
    let mut unknown = txs::anchor(0, "y").body;
    unknown.signer = cachet_chain::AgencyId::new("stranger").unwrap();
    unknown.key = stranger.public();
    assert_eq!(
        code(c.submit(0, &unknown.sign(&stranger))),
        1103,
        "unknown issuer"
    );
    // An agency not accredited for land titles.
    let unauthorized = txs::signed(
        "moea-investment",
        0,
        cachet_chain::Action::Issue(txs::title("z")),
    );
    assert_eq!(
        code(c.submit(0, &unauthorized)),
        1201,
        "unauthorized issuer"
    );

    // Nothing changed: the next blocks are empty and the state root is the same everywhere.
    let h = before["height"].as_u64().unwrap() + 2;
    for i in 0..4 {
        assert!(c.wait_height(i, h, T));
    }
    for i in 0..4 {
        let b = c.call(i, "cachet_block", json!([h])).unwrap();
        assert_eq!(
            b["header"]["state_root"], before["state_root"],
            "node {i} state changed"
        );
    }
}
