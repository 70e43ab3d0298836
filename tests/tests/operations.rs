//! Operating a node over years, on real processes on 127.0.0.1: a backup taken under load,
//! restored on a new directory, the node rejoining; `cachet fsck` on clean and corrupted
//! stores; a disk that fills below a node's reserve, and is freed again.

use cachet_tests::{Cluster, Nodes, cachet_bin, txs, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn cachet(args: &[&str]) -> Output {
    Command::new(cachet_bin())
        .args(args)
        .output()
        .expect("cachet runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `cachet fsck --json` of `dir`: its exit code and report.
fn fsck(dir: &Path) -> (i32, Value) {
    let out = cachet(&["fsck", path(dir), "--json"]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck report ({e}):\n{}", text(&out)));
    (out.status.code().expect("exit code"), report)
}

/// A copy of the backup in `from` whose store `corrupt` changed.
fn corrupted(from: &Path, to: &Path, corrupt: impl FnOnce(&rocksdb::DB)) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
    let db_path = to.join("db");
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), &db_path).expect("families");
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &db_path, &families).expect("open");
    corrupt(&db);
    for family in &families {
        db.flush_cf(db.cf_handle(family).unwrap()).expect("flush");
    }
}

fn be(h: u64) -> [u8; 8] {
    h.to_be_bytes()
}

#[test]
fn a_backup_taken_under_load_restores_on_a_new_directory_and_the_node_rejoins() {
    let mut c = Cluster::new("backup", 4);
    c.start_all();
    assert!(c.wait_height(0, 2, T), "no progress:\n{}", c.diagnose());
    let backup = c.dir.join("backup");
    let rpc3 = format!("http://{}", c.rpc_addr(3));

    // Node 3 is copied while anchors keep coming through node 0.
    let loading = AtomicBool::new(true);
    let (ids, manifest) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut ids = Vec::new();
            let mut nonce = 0;
            while loading.load(Ordering::Relaxed) {
                if let Ok(id) = c.submit(0, &txs::anchor(nonce, &format!("load-{nonce}"))) {
                    ids.push(id);
                    nonce += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            ids
        });
        std::thread::sleep(Duration::from_secs(2));
        let out = cachet(&["backup", "--rpc", &rpc3, "--out", path(&backup), "--json"]);
        std::thread::sleep(Duration::from_secs(1));
        loading.store(false, Ordering::Relaxed);
        assert!(out.status.success(), "backup:\n{}", text(&out));
        let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest");
        (load.join().expect("load"), manifest)
    });
    let backed_up = manifest["height"].as_u64().expect("height");
    assert!(backed_up >= 2, "{manifest}");
    assert_eq!(manifest["chain_id"], "cachet-devnet");
    assert!(ids.len() > 20, "only {} anchors under load", ids.len());
    // A second backup into the same directory is refused, and leaves the first whole.
    let again = cachet(&["backup", "--rpc", &rpc3, "--out", path(&backup)]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // A running node's store is not checked in place: its backup is.
    let live = cachet(&["fsck", path(c.nodes[0].config.parent().unwrap())]);
    assert!(!live.status.success(), "{}", text(&live));
    assert!(text(&live).contains("in use"), "{}", text(&live));
    let (code, report) = fsck(&backup);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["head"], backed_up);
    assert_eq!(report["blocks"], backed_up);
    assert!(report["entries"].as_u64().unwrap() > 10, "{report}");

    // Node 3's machine is lost; a new one has its configuration and key, and the backup.
    assert!(wait_until(T, || ids
        .iter()
        .all(|id| c.committed_at(0, id).is_some())));
    c.kill(3);
    let old = c.nodes[3].config.parent().unwrap().to_path_buf();
    let new: PathBuf = old.with_file_name(format!("{}-new", c.nodes[3].name));
    std::fs::create_dir_all(&new).unwrap();
    for file in ["config.toml", "validator.key"] {
        std::fs::copy(old.join(file), new.join(file)).unwrap();
    }
    std::fs::remove_dir_all(&old).unwrap();
    let config = new.join("config.toml");
    let out = cachet(&[
        "restore",
        "--from",
        path(&backup),
        "--config",
        path(&config),
    ]);
    assert!(out.status.success(), "restore:\n{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("restored height {backed_up}")),
        "{}",
        text(&out)
    );
    // Restoring over a store is refused.
    let twice = cachet(&[
        "restore",
        "--from",
        path(&backup),
        "--config",
        path(&config),
    ]);
    assert!(!twice.status.success(), "{}", text(&twice));
    assert!(text(&twice).contains("not empty"), "{}", text(&twice));

    c.nodes[3].config = config;
    c.start(3);
    c.wait_serving(3);
    c.catch_up(3, 0, T);
    for id in &ids {
        assert!(
            c.committed_at(3, id).is_some(),
            "the restored node lacks {id}"
        );
    }
    // It takes part again: an anchor sent to it is committed everywhere.
    let id = c
        .submit(3, &txs::anchor(ids.len() as u64, "after-restore"))
        .expect("admitted by the restored node");
    assert!(
        wait_until(T, || (0..4).all(|i| c.committed_at(i, &id).is_some())),
        "{}",
        c.diagnose()
    );

    // fsck finds each corruption, by height, and restore refuses a corrupted backup.
    let flipped = c.dir.join("flipped-value");
    corrupted(&backup, &flipped, |db| {
        let values = db.cf_handle("values").unwrap();
        let (key, mut value) = db
            .iterator_cf(values, rocksdb::IteratorMode::Start)
            .next()
            .unwrap()
            .unwrap();
        value[0] ^= 1;
        db.put_cf(values, key, value).unwrap();
    });
    let missing = c.dir.join("missing-block");
    corrupted(&backup, &missing, |db| {
        db.delete_cf(db.cf_handle("blocks").unwrap(), be(2))
            .unwrap();
    });
    let wrong = c.dir.join("wrong-commit");
    corrupted(&backup, &wrong, |db| {
        let commits = db.cf_handle("commits").unwrap();
        let other = db.get_cf(commits, be(1)).unwrap().unwrap();
        db.put_cf(commits, be(2), other).unwrap();
    });
    for (dir, height, says) in [
        (&flipped, backed_up, "does not match its hash"),
        (&missing, 2, "the block is missing"),
        (&wrong, 2, "the commit does not commit this block"),
    ] {
        let (code, report) = fsck(dir);
        assert_eq!(code, 1, "{report}");
        let first = &report["problems"][0];
        assert_eq!(first["height"], height, "{report}");
        assert!(first["what"].as_str().unwrap().contains(says), "{report}");
    }
    let home = c.dir.join("restore-corrupted");
    std::fs::create_dir_all(&home).unwrap();
    let cfg = std::fs::read_to_string(&c.nodes[3].config).unwrap();
    let genesis = c.dir.join("genesis.json");
    std::fs::write(
        home.join("config.toml"),
        cfg.replace("../../genesis.json", path(&genesis)),
    )
    .unwrap();
    let refused = cachet(&[
        "restore",
        "--from",
        path(&wrong),
        "--config",
        path(&home.join("config.toml")),
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("inconsistent at height 2"),
        "{}",
        text(&refused)
    );
    assert!(!home.join("db").exists());
}

/// MiB free on the file system holding `path`, as `df` reports them.
fn free_mb(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-m"])
        .arg(path)
        .output()
        .expect("df runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free MiB")
}

/// Take `size` of real disk space (not a sparse file) at `path`.
fn ballast(path: &Path, size: &str) {
    let made = Command::new("fallocate")
        .args(["-l", size])
        .arg(path)
        .output()
        .expect("fallocate runs");
    assert!(made.status.success(), "{}", text(&made));
}

/// A node whose disk falls below its reserve, under load, commits nothing, says so once (not
/// blaming its peers), is not ready and shows it in its metrics, while the others go on and
/// finalize what is submitted; once space is
/// freed it resumes by itself, catches up and agrees. Started below its reserve, it exits
/// saying why.
#[test]
fn a_full_disk_pauses_a_node_and_freed_space_resumes_it() {
    let mut c = Cluster::new("disk-full", 4);
    let home = c.nodes[3].config.parent().unwrap().to_path_buf();
    // A reserve 1 GiB below what is free now: 2 GiB of ballast brings the disk under it.
    let reserve = free_mb(&home).saturating_sub(1024) as i64;
    c.configure(3, "storage", "reserve_disk_mb", reserve);
    c.start_all();
    assert!(c.wait_height(3, 3, T), "{}", c.log_tail(3));
    let weight = home.join("ballast");
    ballast(&weight, "2G");
    let paused = |c: &Cluster| c.metrics(3).get("cachet_writes_paused") == Some(&1.0);
    assert!(wait_until(T, || paused(&c)), "{}", c.log_tail(3));
    let frozen = c.height(3).unwrap();
    // Anchors go in meanwhile, through a node with room.
    let ids: Vec<String> = (0..200)
        .map(|n| {
            c.submit(0, &txs::anchor(n, &format!("while-full-{n}")))
                .expect("admitted")
        })
        .collect();
    let others = c.height(0).unwrap();
    assert!(c.wait_height(0, others + 5, T), "the others go on");
    assert!(
        c.height(3).unwrap() <= frozen + 1,
        "a node below its reserve committed: {frozen} -> {:?}",
        c.height(3)
    );
    let (status, _, body) = cachet_tests::http_get(c.rpc_addr(3), "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("below the reserve"), "{body}");
    let log = std::fs::read_to_string(c.nodes[3].config.with_file_name("node.log")).unwrap();
    assert_eq!(
        log.matches("the disk is full").count(),
        1,
        "one line a minute"
    );
    assert!(!log.contains("attributable"), "a full disk blames no peer");

    std::fs::remove_file(&weight).unwrap();
    assert!(
        wait_until(T, || !paused(&c)
            && c.height(3) >= c.height(0).map(|h| h.saturating_sub(1))),
        "the node did not resume and catch up: {}",
        c.log_tail(3)
    );
    let top = c.min_height();
    c.assert_same_chain(0, 3, top);
    let last = ids.last().unwrap();
    assert!(
        wait_until(T, || c.committed_at(3, last).is_some()),
        "the anchors made while the disk was full reached the node"
    );

    // Started below its reserve, a node exits and says why.
    c.kill(3);
    ballast(&weight, "2G");
    c.start(3);
    assert!(
        wait_until(T, || !c.running(3)),
        "it started below its reserve"
    );
    let log = std::fs::read_to_string(c.nodes[3].config.with_file_name("node.log")).unwrap();
    assert!(log.contains("less than the"), "{}", c.log_tail(3));
    std::fs::remove_file(&weight).unwrap();
}

/// The directory of node `i`'s snapshot at `height`, once complete.
fn snapshot_dir(c: &Cluster, i: usize, height: u64) -> PathBuf {
    c.nodes[i]
        .config
        .parent()
        .unwrap()
        .join("snapshots")
        .join(format!("{height:020}"))
}

#[test]
fn a_new_node_joins_from_a_snapshot_though_most_peers_send_bad_chunks() {
    let mut c = Cluster::with_spares("statesync", 4, 1);
    // Checkpoints below the snapshot: the joining node checks one in the history it keeps.
    cachet_tests::set_checkpoint_interval(&c.dir, 7);
    for i in 0..4 {
        c.configure(i, "state_sync", "snapshot_interval", 10);
    }
    c.configure(4, "state_sync", "enable", true);
    c.start_first(4);
    let ids: Vec<String> = (0..40)
        .map(|n| {
            c.submit(0, &txs::anchor(n, &format!("before-{n}")))
                .expect("admitted")
        })
        .collect();
    assert!(wait_until(T, || ids
        .iter()
        .all(|id| c.committed_at(0, id).is_some())));
    let anchored_by = c.height(0).unwrap();
    let snapshot = (anchored_by / 10 + 1) * 10;
    assert!(
        wait_until(T, || (0..4)
            .all(|i| snapshot_dir(&c, i, snapshot).join("manifest").exists())),
        "no snapshot at {snapshot}:\n{}",
        c.diagnose()
    );
    // Three of the four peers now serve a chunk of another state: the joining node must notice,
    // drop them, and take the chunk from the honest one.
    for i in 1..4 {
        let chunk = snapshot_dir(&c, i, snapshot).join("chunk-0");
        let mut bytes = std::fs::read(&chunk).expect("a chunk");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&chunk, bytes).unwrap();
    }

    // The operators let the new node in, and it starts with no database.
    let peer: Value = serde_json::from_str(
        &std::fs::read_to_string(c.nodes[4].config.with_file_name("peer.json")).unwrap(),
    )
    .unwrap();
    for i in 0..4 {
        c.call(
            i,
            "cachet_admin_addPeer",
            serde_json::json!([peer["p2p"], peer["gossip"]]),
        )
        .expect("peer added");
    }
    c.start(4);
    c.wait_serving(4);
    let log = std::fs::read_to_string(c.nodes[4].config.with_file_name("node.log")).unwrap();
    assert!(log.contains("joined by snapshot"), "{log}");
    // The height the log names.
    let joined_at: u64 = log
        .lines()
        .find(|l| l.contains("joined by snapshot"))
        .and_then(|l| l.split("height=").nth(1))
        .and_then(|h| h.split_whitespace().next())
        .and_then(|h| h.parse().ok())
        .unwrap_or(0);
    assert!(joined_at >= snapshot, "joined at {joined_at}:\n{log}");
    // It follows the chain from there, agreeing with the others, and replayed nothing below.
    let h = c.height(0).unwrap() + 3;
    assert!(
        c.wait_height(4, h, T),
        "it does not follow:\n{}",
        c.log_tail(4)
    );
    for height in joined_at + 1..=h {
        assert_eq!(
            c.block_hash(4, height),
            c.block_hash(0, height),
            "height {height}"
        );
    }
    assert!(c.block_hash(4, 1).is_none(), "block 1 was replayed");
    let below = c
        .call(4, "cachet_block", serde_json::json!([1]))
        .unwrap_err();
    assert!(below.message.contains("not kept here"), "{below:?}");

    // A certificate anchored before the snapshot: its receipt from the new node verifies
    // against the genesis alone.
    let receipt = c
        .call(
            4,
            "cachet_receipt",
            serde_json::json!([txs::title("before-7").cert_id().to_string()]),
        )
        .expect("a receipt");
    cachet_tests::verified_receipt(&receipt, &c.dir);

    // An operator asks for one more snapshot, at a coming height (not a past one).
    let rpc0 = format!("http://{}", c.rpc_addr(0));
    let past = cachet(&["snapshot", "--rpc", &rpc0, "--at", "1"]);
    assert!(!past.status.success(), "{}", text(&past));
    assert!(
        text(&past).contains("not above the head"),
        "{}",
        text(&past)
    );
    let at = c.height(0).unwrap() + 2;
    let asked = cachet(&["snapshot", "--rpc", &rpc0, "--at", &at.to_string()]);
    assert!(asked.status.success(), "{}", text(&asked));
    assert!(
        wait_until(T, || snapshot_dir(&c, 0, at).join("manifest").exists()),
        "no snapshot at {at}:\n{}",
        c.log_tail(0)
    );

    // Stopped, its store checks clean from the snapshot on.
    c.kill(4);
    let (code, report) = fsck(c.nodes[4].config.parent().unwrap());
    assert_eq!(code, 0, "{report}");
    assert!(report["entries"].as_u64().unwrap() > 40, "{report}");
}
