//! Cluster tests: 4 validators as real processes on 127.0.0.1.

use cachet_tests::{Cluster, Nodes, txs, wait_until};
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
        "anchor not committed everywhere:\n{}",
        c.diagnose()
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
    // Idle, a proposer waits for transactions (up to `idle_block_ms`, 1 s) instead of making
    // an empty block every `block_time_ms`: at most about one height per second.
    let before = c.height(0).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let idle = c.height(0).unwrap() - before;
    assert!(idle <= 10, "{idle} heights in 8 s of idleness");
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
    let target = c.catch_up(3, 0, T);
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
        // The crashed validator never signed two different votes across its restarts.
        let evidence = c.call(i, "cachet_evidence", json!([])).unwrap();
        assert_eq!(evidence, json!([]), "node {i} recorded equivocation");
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
    // A forged copy of the used transaction: the signature is checked first (the spec's order).
    let mut forged_replay = good.clone();
    forged_replay.signature =
        cachet_chain::SecretKey::dev("mallory").sign(&forged_replay.signing_message());
    assert_eq!(
        code(c.submit(0, &forged_replay)),
        1102,
        "bad signature before the nonce"
    );
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

    // The operator sees each refusal counted under its stable name, and the chain moving.
    let m = c.metrics(0);
    let refused = |reason: &str| {
        m.get(&format!(
            "cachet_transactions_refused_total{{source=\"rpc\",reason=\"{reason}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    for (reason, times) in [
        ("malformed", 1.0),
        ("oversized", 1.0),
        ("bad_signature", 2.0),
        ("wrong_chain", 1.0),
        ("nonce_replayed", 1.0),
        ("unknown_agency", 1.0),
        ("not_accredited", 1.0),
    ] {
        assert_eq!(refused(reason), times, "{reason} refusals: {m:?}");
    }
    assert_eq!(m["cachet_transactions_admitted_total{source=\"rpc\"}"], 1.0);
    assert!(m["cachet_height"] >= h as f64);
    assert!(m["cachet_transactions_committed_total"] >= 1.0);
    assert!(m["cachet_commit_seconds_count"] >= h as f64 - 1.0);
    assert!(m["cachet_gossip_peers"] >= 1.0);
    assert!(m["process_resident_memory_bytes"] > 0.0);
    // The binary reports its allocator's split of that memory.
    let heap = |kind: &str| m[&format!("cachet_heap_bytes{{kind=\"{kind}\"}}")];
    assert!(heap("allocated") > 0.0, "{m:?}");
    assert!(heap("active") >= heap("allocated"));
    assert!(heap("resident") >= heap("active"));
    assert!(m["cachet_store_memtable_bytes{family=\"blocks\"}"] > 0.0);
    // RocksDB's own counters: every committed height went through its write-ahead log.
    assert!(m["cachet_store_wal_bytes_total"] > 0.0, "{m:?}");
    // Malachite's consensus metrics follow the node's own.
    assert!(
        m.keys()
            .any(|k| k.starts_with("malachitebft_core_consensus_height")),
        "no consensus metrics"
    );
}

/// An agency pipelines transactions, one of which the rules will refuse by the time its turn
/// comes (a second revocation of one certificate) and one whose expiry passes while it waits
/// behind a nonce gap. Each of the two is refused in its block with its code, uses its nonce,
/// and every good transaction after it is finalized, with no restart.
#[test]
fn a_doomed_transaction_between_good_ones_holds_nothing_up() {
    use cachet_chain::tx::{Action, RevocationReason};
    let mut c = Cluster::new("doomed", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T));
    let first = txs::title("pipe-0");
    let revoke = |nonce| {
        let action = Action::Revoke {
            id: first.cert_id(),
            reason: RevocationReason::Cancelled,
        };
        txs::signed("moi-land", nonce, action)
    };
    // Later nonces first, so that all four wait in the pool before any can go into a block:
    // the second revocation is judged when its turn comes, not at the door.
    let pipeline = [
        txs::anchor(0, "pipe-0"),
        revoke(1),
        revoke(2),
        txs::anchor(3, "pipe-3"),
    ];
    let ids: Vec<String> = pipeline
        .iter()
        .rev()
        .map(|tx| c.submit(0, tx).expect("admitted"))
        .rev()
        .collect();

    // Nonce 5 expires two heights from now; nonce 4 is held back until it has.
    let h = c.height(0).unwrap();
    let key = cachet_contracts::example::agency_key("moi-land");
    let mut expiring = txs::anchor(5, "pipe-5").body;
    expiring.expires_at = cachet_chain::ids::Height(h + 2);
    let expiring = expiring.sign(&key);
    let expiring_id = c.submit(0, &expiring).expect("admitted before its expiry");
    let after = c.submit(0, &txs::anchor(6, "pipe-6")).expect("admitted");
    assert!(c.wait_height(0, h + 3, T));
    let held = c.submit(0, &txs::anchor(4, "pipe-4")).expect("admitted");

    let status = |i: usize, id: &str| c.call(i, "cachet_transaction", json!([id])).unwrap();
    assert!(
        wait_until(T, || (0..4).all(|i| c.committed_at(i, &after).is_some())),
        "the transaction after the doomed ones was not finalized: {}\n{}",
        status(0, &after),
        c.diagnose()
    );
    for i in 0..4 {
        for id in [&ids[0], &ids[1], &ids[3], &held, &after] {
            assert_eq!(status(i, id)["status"], "committed", "node {i}: {id}");
        }
        let doomed = status(i, &ids[2]);
        assert_eq!(doomed["status"], "refused", "node {i}: {doomed}");
        assert_eq!(doomed["code"], 1303, "{doomed}");
        assert_eq!(doomed["name"], "already_revoked", "{doomed}");
        let expired = status(i, &expiring_id);
        assert_eq!(expired["status"], "refused", "node {i}: {expired}");
        assert_eq!(expired["code"], 1108, "{expired}");
        let agency = c.call(i, "cachet_agency", json!(["moi-land"])).unwrap();
        assert_eq!(agency["next_nonce"], 7, "node {i}: every nonce used once");
        let never = txs::title("pipe-5").cert_id().to_string();
        assert!(
            c.call(i, "cachet_certificate", json!([never])).is_err(),
            "the expired anchor was not carried out"
        );
    }
    let refused_in_block = |reason: &str| {
        let key =
            format!("cachet_transactions_refused_total{{source=\"block\",reason=\"{reason}\"}}");
        c.metrics(0).get(&key).copied().unwrap_or(0.0)
    };
    assert_eq!(refused_in_block("already_revoked"), 1.0);
    assert_eq!(refused_in_block("tx_expired"), 1.0);
    let top = c.min_height();
    for i in 1..4 {
        c.assert_same_chain(0, i, top);
    }
}

#[test]
fn an_equivocating_validator_cannot_fork_the_chain_and_is_recorded() {
    let mut c = Cluster::new("equivocation", 4);
    c.make_byzantine(3);
    c.start_all();
    assert!(
        c.wait_height(0, 5, T),
        "no progress with one Byzantine validator; log:\n{}",
        c.log_tail(0)
    );
    let id = c
        .submit(1, &txs::anchor(0, "during-attack"))
        .expect("admitted");
    assert!(wait_until(T, || (0..3).all(|i| c.committed_at(i, &id).is_some())));
    // Honest nodes recorded the double votes as evidence, decoded: who, where, which votes.
    let mut recorded = json!([]);
    assert!(
        wait_until(T, || (0..3).any(|i| {
            recorded = c.call(i, "cachet_evidence", json!([])).unwrap_or_default();
            recorded.as_array().is_some_and(|e| !e.is_empty())
        })),
        "no evidence recorded; log:\n{}",
        c.log_tail(0)
    );
    let byzantine = c.name(3).to_string();
    let e = &recorded[0];
    assert_eq!(e["agency"], byzantine, "{e}");
    let validator_key = cachet_contracts::example::validator_key(&byzantine).public();
    assert_eq!(e["validator"], validator_key.to_string(), "{e}");
    let [a, b] = [&e["votes"][0], &e["votes"][1]];
    assert_eq!(
        (&a["height"], &a["round"], &a["kind"]),
        (&b["height"], &b["round"], &b["kind"])
    );
    assert_ne!(a["block"], b["block"], "two different votes: {e}");
    let h = c.min_height();
    for i in 1..4 {
        c.assert_same_chain(0, i, h);
    }
}

/// Propose `change` as moi-land and vote with `voters`; returns when the last vote is committed.
fn pass(
    c: &Cluster,
    via: usize,
    nonces: &mut std::collections::HashMap<&'static str, u64>,
    change: cachet_chain::tx::GovernanceChange,
    voters: &[&'static str],
) {
    let mut next = |a: &'static str| {
        let n = nonces.entry(a).or_insert(0);
        *n += 1;
        *n - 1
    };
    let propose = txs::signed(
        "moi-land",
        next("moi-land"),
        cachet_chain::Action::Propose { change },
    );
    let proposal = propose.id();
    let id = c.submit(via, &propose).expect("proposal admitted");
    assert!(wait_until(T, || c.committed_at(via, &id).is_some()));
    for v in voters {
        let vote = txs::signed(v, next(v), cachet_chain::Action::Vote { proposal });
        let id = c.submit(via, &vote).expect("vote admitted");
        assert!(
            wait_until(T, || c.committed_at(via, &id).is_some()),
            "vote of {v} not committed"
        );
    }
}

#[test]
fn a_fifth_node_joins_by_governance_and_votes_and_a_removed_one_cannot_connect() {
    let mut c = Cluster::with_spares("join", 4, 1);
    c.start_first(4);
    assert!(c.wait_height(0, 2, T));
    // The new agency's node starts and the operators let it in.
    c.start(4);
    c.wait_serving(4);
    let info = c.call(4, "cachet_nodeInfo", json!([])).unwrap();
    for i in 0..4 {
        c.call(
            i,
            "cachet_admin_addPeer",
            json!([info["p2p"], info["gossip"]]),
        )
        .expect("peer added");
    }
    let h = c.height(0).unwrap();
    assert!(
        c.wait_height(4, h, T),
        "the new node did not sync; log:\n{}",
        c.log_tail(4)
    );
    c.assert_same_chain(0, 4, h);

    // Governance adds its validator (3 of 4 validator agencies).
    let mut nonces = std::collections::HashMap::new();
    let key: cachet_chain::PublicKey = info["validator_key"].as_str().unwrap().parse().unwrap();
    let add = cachet_chain::tx::GovernanceChange::AddValidator {
        agency: cachet_chain::AgencyId::new("nia-immigration").unwrap(),
        key,
        power: 1,
    };
    pass(
        &c,
        0,
        &mut nonces,
        add,
        &["moea-investment", "dgpa-personnel"],
    );
    let vals = c.call(0, "cachet_validators", json!([])).unwrap();
    assert_eq!(vals["validators"].as_array().unwrap().len(), 5);

    // A receipt issued after the change still verifies against the original genesis: it carries
    // the validator-set transition.
    let anchor = txs::signed(
        "moi-land",
        nonces.get("moi-land").copied().unwrap_or(0),
        cachet_chain::Action::Issue(txs::title("after-join")),
    );
    nonces.insert("moi-land", nonces.get("moi-land").copied().unwrap_or(0) + 1);
    let aid = c.submit(0, &anchor).expect("admitted");
    assert!(wait_until(T, || c.committed_at(0, &aid).is_some()));
    let receipt = c
        .call(
            0,
            "cachet_receipt",
            json!([txs::title("after-join").cert_id().to_string()]),
        )
        .unwrap();
    // Checked from the genesis alone: it carries the validator-set transition.
    let receipt = cachet_tests::verified_receipt(&receipt, &c.dir);
    assert_eq!(receipt.transitions.len(), 1);

    // With one original validator down, progress needs the new one's vote (4 of 5).
    let h = c.height(1).unwrap();
    c.kill(0);
    assert!(
        c.wait_height(1, h + 3, T),
        "no progress: the new validator does not vote; log:\n{}",
        c.log_tail(4)
    );
    c.start(0);
    assert!(c.wait_height(0, c.height(1).unwrap(), T));

    // Governance removes moc-culture's validator (4 of 5 validator agencies); it can no longer connect.
    let removed_key = cachet_contracts::example::validator_key("moc-culture").public();
    pass(
        &c,
        0,
        &mut nonces,
        cachet_chain::tx::GovernanceChange::RemoveValidator { key: removed_key },
        &["moea-investment", "dgpa-personnel", "nia-immigration"],
    );
    // Every remaining node has committed the removal (and so dropped the peer, right after the
    // commit) before the removed node tries to come back.
    assert!(
        wait_until(T, || [0, 1, 2, 4].iter().all(|&i| {
            c.call(i, "cachet_validators", json!([]))
                .is_ok_and(|v| v["validators"].as_array().map(Vec::len) == Some(4))
        })),
        "the removal did not reach every node:\n{}",
        c.diagnose()
    );
    std::thread::sleep(Duration::from_secs(2));
    c.kill(3);
    c.start(3);
    c.wait_serving(3);
    let stuck = c.height(3).unwrap();
    let others = c.height(0).unwrap();
    assert!(
        c.wait_height(0, others + 5, T),
        "the remaining validators stopped"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        c.height(3).unwrap() <= stuck + 1,
        "the removed node still syncs: {} -> {:?}",
        stuck,
        c.height(3)
    );

    // Every node restarts with its old configuration file, which still lists the removed
    // validator and not the added one: the chain's state and the added peers decide.
    for i in [0, 1, 2, 4, 3] {
        c.kill(i);
    }
    for i in [0, 1, 2, 4, 3] {
        c.start(i);
    }
    for i in [0, 1, 2, 4, 3] {
        c.wait_serving(i);
    }
    let stuck = c.height(3).unwrap();
    let others = c.height(0).unwrap();
    assert!(
        c.wait_height(4, others + 3, T),
        "the added validator is not back in touch after the restart:\n{}",
        c.diagnose()
    );
    // Progress without an original validator needs the added one's vote (3 of 4).
    c.kill(1);
    let h = c.height(0).unwrap();
    assert!(
        c.wait_height(0, h + 3, T),
        "no progress: the added validator does not vote after the restart:\n{}",
        c.diagnose()
    );
    assert!(
        c.height(3).unwrap() <= stuck + 1,
        "the removed node syncs again after a restart: {stuck} -> {:?}",
        c.height(3)
    );
    // And an operator cannot let it back in by hand.
    let again = c.call(
        0,
        "cachet_admin_addPeer",
        json!([
            c.call(3, "cachet_nodeInfo", json!([])).unwrap()["p2p"],
            c.call(3, "cachet_nodeInfo", json!([])).unwrap()["gossip"]
        ]),
    );
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.code == 2003 && e.message.contains("removed")),
        "{again:?}"
    );
}

#[test]
fn validators_whose_clocks_are_a_minute_off_keep_following_and_say_so() {
    let mut c = Cluster::new("clocks", 4);
    c.shift_clock(1, 60_000);
    c.shift_clock(2, -60_000);
    c.start_all();
    assert!(
        c.wait_height(0, 12, T),
        "no progress with two skewed clocks:\n{}",
        c.diagnose()
    );
    // Every node follows: the one behind takes the blocks it would not vote for (their times
    // are ahead of its clock) with their commit certificates; the one ahead has its proposals
    // refused but takes the others'.
    for (nonce, i) in [(0, 2), (1, 1)] {
        let id = c
            .submit(i, &txs::anchor(nonce, &format!("skewed-{i}")))
            .expect("admitted");
        assert!(
            wait_until(T, || (0..4).all(|n| c.committed_at(n, &id).is_some())),
            "an anchor sent to node {i} was not committed everywhere:\n{}",
            c.diagnose()
        );
    }
    let target = c.height(0).unwrap() + 10;
    assert!(
        wait_until(2 * T, || (0..4).all(|i| c.height(i).unwrap_or(0) >= target)),
        "a node stopped following:\n{}",
        c.diagnose()
    );
    for i in 1..4 {
        c.assert_same_chain(0, i, target);
    }
    // Each node says how far its clock is from the others', and the skewed two are not ready.
    let skew = |i: usize| {
        c.metrics(i)
            .get("cachet_clock_skew_seconds")
            .copied()
            .unwrap_or(f64::NAN)
    };
    let clock_check = |i: usize| {
        let (status, _, body) = cachet_tests::http_get(c.rpc_addr(i), "/readyz").expect("readyz");
        let body: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
        let check = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["name"] == "clock")
            .cloned()
            .expect("a clock check");
        (status, check)
    };
    assert!(
        wait_until(T, || (skew(1) - 60.0).abs() < 10.0
            && (skew(2) + 60.0).abs() < 10.0),
        "skews: {} and {}",
        skew(1),
        skew(2)
    );
    for (i, side) in [(1, "ahead of"), (2, "behind")] {
        let (status, check) = clock_check(i);
        assert_eq!(status, 503, "{check}");
        assert_eq!(check["ok"], false, "{check}");
        assert!(check["detail"].as_str().unwrap().contains(side), "{check}");
        let log = std::fs::read_to_string(c.nodes[i].config.with_file_name("node.log"))
            .unwrap_or_default();
        assert!(
            log.contains("fix this machine's time"),
            "node {i} did not log its skew"
        );
    }
    for i in [0, 3] {
        assert!(skew(i).abs() < 10.0, "node {i}: skew {}", skew(i));
        let (_, check) = clock_check(i);
        assert_eq!(check["ok"], true, "{check}");
    }
}
