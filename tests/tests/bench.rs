//! `cachet bench` runs its phases (anchors, batches, verification under load, fairness, join)
//! end to end and reports every figure scripts rely on, and a run starts from the state an
//! earlier one left. (It asserts no speed: the figures are measured with a release build, and reported
//! in the performance report.)

use cachet_tests::{Devnet, cachet_bin, rpc};
use serde_json::{Value, json};
use std::process::Command;

/// Run `cachet bench` with `args` (and few agencies and verifiers); its JSON report.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(cachet_bin())
        .arg("bench")
        .args(args)
        .args(["--agencies", "4", "--verifiers", "4", "--json"])
        .output()
        .expect("cachet bench runs");
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn bench_reports_throughput_latency_and_the_bound() {
    let v = bench(&[
        "--duration",
        "2",
        "--step-seconds",
        "2",
        "--batch-leaves",
        "64",
    ]);
    for field in [
        "finalized_tps",
        "bound_tps",
        "ratio",
        "ratio_ceiling",
        "finality_p50_ms",
        "finality_p99_ms",
        "cpu_ms_per_tx_all_nodes",
        "sustained_cpu_ms_per_tx_all_nodes",
        "disk_bytes_per_certificate_per_node",
    ] {
        assert!(v[field].is_number(), "{field} missing: {v}");
    }
    assert!(v["finalized_tps"].as_f64().unwrap() > 0.0, "{v}");
    // The nodes cannot have used more than every core during the window both figures are
    // measured over (CPU is read in 10 ms ticks, and both are rounded to 0.001).
    assert!(
        v["ratio"].as_f64().unwrap() <= v["ratio_ceiling"].as_f64().unwrap() * 1.05 + 0.002,
        "{v}"
    );
    assert!(
        v["finality_p99_ms"].as_f64().unwrap() >= v["finality_p50_ms"].as_f64().unwrap(),
        "{v}"
    );
    assert_eq!(v["rss_mb_per_node"].as_array().unwrap().len(), 4);

    // Batches: certificates per second, and sampled entries' receipts verified offline.
    let b = &v["batches"];
    assert_eq!(b["leaves_per_batch"], 64, "{b}");
    assert!(b["certificates_per_s"].as_f64().unwrap() > 0.0, "{b}");
    assert!(b["receipts_checked"].as_u64().unwrap() >= 1, "{b}");
    assert!(
        (500..65_536).contains(&b["receipt_bytes_batch_entry"].as_u64().unwrap()),
        "{b}"
    );
    // A number, or null when compaction of the anchor phase's garbage shrank the directories
    // more than the batches grew them.
    let disk = &b["disk_bytes_per_certificate_per_node"];
    assert!(disk.is_number() || disk.is_null(), "{b}");
    assert!(
        b.as_object()
            .unwrap()
            .contains_key("disk_bytes_per_certificate_per_node")
    );

    // Verification under load: receipts served, with latency, all of them good.
    let r = &v["verification"];
    assert!(r["receipts_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["receipts_verified_offline"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        (500..65_536).contains(&r["receipt_bytes_single"].as_u64().unwrap()),
        "{r}"
    );
    assert!(r["offline"]["receipts"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["offline"]["receipts_verified_per_s_per_core"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{r}"
    );
    assert!(
        r["serving_node_cpu_us_per_receipt"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(
        r["all"]["p99_ms"].as_f64().unwrap() >= r["all"]["p50_ms"].as_f64().unwrap(),
        "{r}"
    );

    // Fairness: a greedy client is slowed to its share on the node with a read limit (the
    // polite ones never are), and served all it asks on the node without one.
    let f = &v["fairness"];
    let (with, without) = (&f["node_with_limit"], &f["node_without_limit"]);
    assert_eq!(with["reads_per_second_per_client"], 200, "{f}");
    assert_eq!(without["reads_per_second_per_client"], 0, "{f}");
    let greedy = |node: &Value| {
        node["beside_greedy"]["greedy_served_per_s"]
            .as_f64()
            .unwrap()
    };
    // 200 a second, and the bucket of 200 spent once over the window.
    let share = 200.0 + 200.0 / f["window_s"].as_f64().unwrap();
    assert!(greedy(with) <= share * 1.1, "{f}");
    assert!(greedy(without) > greedy(with), "{f}");
    assert_eq!(without["beside_greedy"]["greedy_refused_per_s"], 0.0, "{f}");
    for node in [with, without] {
        for window in ["alone", "beside_greedy"] {
            let w = &node[window];
            assert_eq!(w["polite_refused"], 0, "{f}");
            assert_eq!(w["polite_failed"], 0, "{f}");
            assert!(w["polite_served"].as_u64().unwrap() > 0, "{f}");
        }
    }
}

/// A run can fill a chain and leave it in a directory; a later run starts from a copy of it,
/// verifies the certificates anchored there, and anchors more without repeating a document,
/// a nonce or an agency registration. The saved directory is left as it was.
#[test]
fn bench_starts_from_the_state_an_earlier_run_left() {
    let root = std::env::temp_dir().join(format!("cachet-bench-saved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (saved, later) = (root.join("saved"), root.join("later"));
    let dir = |d: &std::path::Path| d.to_str().unwrap().to_string();

    let first = bench(&[
        "--phases",
        "fill",
        "--fill-certificates",
        "300",
        "--dir",
        &dir(&saved),
    ]);
    assert_eq!(first["fill"]["certificates"], 300, "{first}");
    let state_before = std::fs::read(saved.join("bench-state.json")).unwrap();

    let second = bench(&[
        "--from",
        &dir(&saved),
        "--phases",
        "fill,verification",
        "--fill-certificates",
        "100",
        "--duration",
        "2",
        "--dir",
        &dir(&later),
    ]);
    assert_eq!(second["started_from_certificates"], 300, "{second}");
    assert_eq!(second["fill"]["certificates"], 100, "{second}");
    assert_eq!(second["refusals"]["refused"], 0, "{second}");
    let r = &second["verification"];
    assert!(r["certificates"].as_u64().unwrap() >= 400, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["receipts_verified_offline"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(
        std::fs::read(saved.join("bench-state.json")).unwrap(),
        state_before
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A run can measure a devnet that is already running (the README's first command) instead of
/// starting one, and leaves it running; a second run on it repeats no document or nonce.
#[test]
fn bench_measures_a_running_devnet_and_leaves_it_running() {
    let mut devnet = Devnet::start("bench-target");
    let dir = devnet.dir.to_str().unwrap().to_string();
    let addr = devnet.rpc_url(0).trim_start_matches("http://").to_string();
    let height = |addr: &str| rpc(addr, "cachet_status", json!([])).unwrap()["height"].as_u64();

    for run in 0..2 {
        let v = bench(&[
            "--target",
            &dir,
            "--phases",
            "anchors",
            "--duration",
            "2",
            "--step-seconds",
            "1",
        ]);
        assert!(v["finalized_tps"].as_f64().unwrap() > 0.0, "run {run}: {v}");
        assert_eq!(v["refusals"]["refused"], 0, "run {run}: {v}");
        assert_eq!(v["rss_mb_per_node"].as_array().unwrap().len(), 4, "{v}");
    }
    // Still running, and still finalizing.
    let before = height(&addr).expect("the devnet answers");
    assert!(
        cachet_tests::wait_until(std::time::Duration::from_secs(30), || height(&addr)
            .is_some_and(|h| h > before)),
        "the devnet stopped after the bench"
    );
    devnet.stop();
    assert!(
        !devnet.dir.join("devnet.json").exists(),
        "a stopped devnet leaves no manifest"
    );

    // A directory without a running devnet is an error that says so.
    let out = Command::new(cachet_bin())
        .args(["bench", "--target", &dir, "--phases", "anchors", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["error"].as_str().unwrap().contains("devnet"),
        "{report}"
    );
}

/// The join phase times a new validator joining from a snapshot and by replaying every block,
/// on the chain a fill left, to its first vote, and says how much it fetched.
#[test]
fn bench_joins_a_new_node_from_a_snapshot_and_by_replay() {
    let v = bench(&["--phases", "fill,join", "--fill-certificates", "300"]);
    let j = &v["join"];
    let s = &j["from_snapshot"];
    assert!(s["height"].as_f64().unwrap() >= 1.0, "{j}");
    assert!(s["entries"].as_f64().unwrap() > 300.0, "{j}");
    assert!(s["bytes"].as_f64().unwrap() > 0.0, "{j}");
    assert!(
        s["following_s"].as_f64().unwrap() >= s["serving_s"].as_f64().unwrap(),
        "{j}"
    );
    // Made a validator by governance first, it votes once it follows.
    assert!(
        s["voting_s"].as_f64().unwrap() >= s["serving_s"].as_f64().unwrap(),
        "{j}"
    );
    assert!(j["replay"]["following_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["replay"]["voting_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["snapshot_bytes_on_disk"].as_u64().unwrap() > 0, "{j}");
}

/// The scale phase runs end to end on a small fill: a point per size with every figure the
/// chart plots, a projection, and the chart drawn from the report. (Sizes of a few hundred
/// certificates: it is the phase's plumbing that is checked here, not its figures.)
#[test]
fn bench_scale_phase_measures_each_size_and_draws_its_chart() {
    let v = bench(&[
        "--phases",
        "scale",
        "--scale-sizes",
        "300,600",
        "--duration",
        "2",
        "--step-seconds",
        "1",
        "--verification-seconds",
        "2",
    ]);
    let scale = &v["scale"];
    let points = scale["points"].as_array().expect("points");
    assert_eq!(points.len(), 2, "{scale}");
    let mut last = 0;
    for p in points {
        let certificates = p["certificates"].as_u64().unwrap();
        assert!(certificates >= 300 && certificates > last, "{p}");
        last = certificates;
        for figure in ["finalized_tps", "receipts_per_s"] {
            assert!(p[figure].as_f64().unwrap() > 0.0, "{figure}: {p}");
        }
        assert!(p["finality_p99_ms"].as_f64().is_some(), "{p}");
        assert!(p["receipt_p99_ms"].as_f64().is_some(), "{p}");
        assert_eq!(p["rss_mb_per_node"].as_array().unwrap().len(), 4, "{p}");
        assert!(
            p["store_bytes_per_certificate_per_node"]["all"]
                .as_f64()
                .unwrap()
                > 0.0,
            "{p}"
        );
    }
    assert_eq!(scale["projection"]["certificates"], json!(100_000_000.0));
    assert!(scale["projection"]["store_bytes_per_certificate"].is_number());

    let dir = std::env::temp_dir().join(format!("cachet-scale-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("bench.json");
    std::fs::write(&report, v.to_string()).unwrap();
    let chart = dir.join("scale.png");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cachet_tests::python_tools().join("python"))
        .arg(repo.join("scripts/scale-chart"))
        .arg(&report)
        .arg(&chart)
        .output()
        .expect("the project's Python runs (scripts/install-deps --tests)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&chart).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    std::fs::remove_dir_all(&dir).unwrap();
}
