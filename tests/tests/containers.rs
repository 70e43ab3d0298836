//! Network partitions: the example consortium in Docker containers (`docker/`), nodes cut off
//! the network while their processes keep running, then let back in.

use cachet_tests::containers::Consortium;
use cachet_tests::{Nodes, txs, wait_until};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// The heights of nodes `nodes`, all of which must answer.
fn heights(c: &Consortium, nodes: &[usize]) -> Vec<u64> {
    nodes
        .iter()
        .map(|&i| c.height(i).unwrap_or_else(|| panic!("node {i} answers")))
        .collect()
}

#[test]
fn partitions_never_fork_the_chain_and_it_heals() {
    let c = Consortium::start("partition");
    assert!(c.wait_height(0, 2, T), "no progress:\n{}", c.diagnose());
    // Docker sees every node ready through its health check (`cachet probe`).
    assert!(
        wait_until(T, || (0..4).all(|i| c.health(i) == "healthy")),
        "health: {:?}\n{}",
        (0..4).map(|i| c.health(i)).collect::<Vec<_>>(),
        c.diagnose()
    );

    // 3 | 1: the three keep finalizing; the one cut off, still running, does not.
    c.isolate(3);
    let cut_at = c.height(3).expect("node 3 answers on its own");
    let first = c
        .submit(0, &txs::anchor(0, "partitioned-deed-1"))
        .expect("admitted");
    assert!(
        wait_until(T, || (0..3).all(|i| c.committed_at(i, &first).is_some())),
        "the majority did not finalize:\n{}",
        c.diagnose()
    );
    let majority = c.height(0).unwrap();
    assert!(c.wait_height(0, majority + 3, T), "{}", c.diagnose());
    // It may finish the height whose votes it already had; never more.
    let alone = c.height(3).unwrap();
    assert!(alone <= cut_at + 1, "cut off at {cut_at}, now {alone}");
    assert!(c.committed_at(3, &first).is_none());
    // And it says it is not ready, and why.
    let mut probe = String::new();
    assert!(
        wait_until(T, || {
            let out = c.exec(3, &["probe", "--rpc", "http://127.0.0.1:26658"]);
            probe = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.code() == Some(1)
        }),
        "the cut-off node still probes ready: {probe}"
    );
    assert!(probe.starts_with("503 "), "{probe}");

    // 2 | 1 | 1: no side has two thirds of the votes, so nothing is finalized anywhere.
    c.isolate(2);
    // Let the height in flight when the cut came settle, then watch every node stand still.
    let mut last = heights(&c, &[0, 1, 2, 3]);
    assert!(
        wait_until(T, || {
            std::thread::sleep(Duration::from_secs(3));
            let now = heights(&c, &[0, 1, 2, 3]);
            std::mem::replace(&mut last, now.clone()) == now
        }),
        "heights kept moving without a quorum:\n{}",
        c.diagnose()
    );
    let stalled = last;
    let second = c
        .submit(0, &txs::anchor(1, "partitioned-deed-2"))
        .expect("admitted");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        heights(&c, &[0, 1, 2, 3]),
        stalled,
        "progress without a quorum"
    );
    assert!(c.committed_at(0, &second).is_none());

    // Healed: all four go on from where the majority stood, and agree on every block.
    c.reconnect(2);
    c.reconnect(3);
    assert!(
        wait_until(T, || (0..4).all(|i| c.committed_at(i, &second).is_some())),
        "no progress after the partition healed:\n{}",
        c.diagnose()
    );
    for i in 0..4 {
        assert!(
            c.committed_at(i, &first).is_some(),
            "node {i} lacks the anchor"
        );
    }
    let top = *heights(&c, &[0, 1, 2, 3]).iter().min().unwrap();
    assert!(
        wait_until(T, || heights(&c, &[0, 1, 2, 3])
            .iter()
            .all(|&h| h >= top + 2)),
        "the healed consortium stopped:\n{}",
        c.diagnose()
    );
    for i in 1..4 {
        c.assert_same_chain(0, i, top + 2);
    }

    // An operator administers a node in a container on the container's own loopback: the
    // operator methods are served there, and not on the RPC the host reaches.
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(c.dir.join("nodes/moi-land/config.toml")).unwrap())
            .unwrap();
    let peer = |network: &str| config[network]["peers"][0].as_str().unwrap().to_string();
    let (p2p, gossip) = (peer("p2p"), peer("gossip"));
    let admin = ["add-peer", "--rpc", "http://127.0.0.1:26658"];
    let out = c.exec(
        0,
        &[&admin[..], &["--p2p", &p2p, "--gossip", &gossip]].concat(),
    );
    assert!(
        out.status.success(),
        "add-peer inside the container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = c
        .call(0, "cachet_admin_addPeer", json!([p2p, gossip]))
        .unwrap_err();
    assert_eq!(refused.code, -32601, "{refused:?}");
}
