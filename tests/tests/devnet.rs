//! `cachet devnet` and the issuer commands, as scripts use them (README's first command).

use cachet_tests::{Devnet, cachet_bin, rpc, wait_until};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn cachet(args: &[&str]) -> Value {
    let out = Command::new(cachet_bin())
        .args(args)
        .output()
        .expect("cachet runs");
    assert!(
        out.status.success(),
        "cachet {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cachet {args:?} printed no JSON: {e}"))
}

/// The key file of `agency`, as the devnet's manifest names it.
fn agency_key(manifest: &Value, agency: &str) -> String {
    manifest["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agency)
        .unwrap_or_else(|| panic!("no agency {agency} in the manifest"))["key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `cachet` with `args`, through the node at `url`, signed with the key file `key`: its JSON.
fn signed(url: &str, key: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--rpc", url, "--key", key, "--json"]);
    cachet(&all)
}

/// `cachet receipt` of certificate `id` from the node at `url`, written to `out`.
fn fetch_receipt(url: &str, id: &str, out: &Path) {
    let o = Command::new(cachet_bin())
        .args(["receipt", "--rpc", url, "--id", id, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `cachet verify --json` of the receipt file `receipt` against the trust file `trust`,
/// offline: what it printed and its exit code.
fn verify_offline(receipt: &Path, trust: &str) -> (Value, Option<i32>) {
    let o = Command::new(cachet_bin())
        .args(["verify", "--json", "--receipt"])
        .arg(receipt)
        .args(["--trust", trust])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    (v, o.status.code())
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn devnet_runs_the_consortium_and_the_issuer_commands_work() {
    // A checkpoint every 10 heights, so that the test sees some.
    // A checkpoint every 10 heights, so that the test sees some; and one node that asks for
    // more free disk than any machine has, so that it is never ready.
    let mut devnet = Devnet::start_prepared("devnet-test", |dir| {
        cachet_tests::set_checkpoint_interval(dir, 10);
        let mut nodes: Vec<_> = std::fs::read_dir(dir.join("nodes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        nodes.sort();
        let config = nodes.last().unwrap().join("config.toml");
        let mut toml: toml::Table =
            toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let mut health = toml::Table::new();
        health.insert("min_free_disk_mb".into(), toml::Value::Integer(1 << 40));
        toml.insert("health".into(), toml::Value::Table(health));
        std::fs::write(&config, toml::to_string(&toml).unwrap()).unwrap();
    });
    let dir = devnet.dir.clone();
    let m: Value = devnet.manifest.clone();
    let nodes = m["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    let url = nodes[0]["rpc"].as_str().unwrap().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let key = |name: &str| -> String {
        let a = m["agencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap();
        a["key"].as_str().unwrap().to_string()
    };
    let land = m["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "moi-land")
        .unwrap();
    assert_eq!(land["kinds"], json!(["land-title"]));
    // A node's log file is plain text, without a terminal's colour codes.
    let log = std::fs::read_to_string(nodes[0]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("committed"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in the log file");

    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("orders")).unwrap();
    let write = |name: &str, text: &str| {
        let p = docs.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // One of each kind, then a revoke, a transfer and approvals.
    let deed = write("deed.txt", "land title, lot 7");
    let a = cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("moi-land"),
        "--kind",
        "land-title",
        "--file",
        &deed,
        "--json",
    ]);
    let title_id = a["id"].as_str().unwrap().to_string();
    assert!(a["height"].as_u64().unwrap() >= 1);
    assert!(docs.join("deed.txt.cachet.json").exists());

    let deed2 = write("deed-after-sale.txt", "land title, lot 7, new owner");
    let s = cachet(&[
        "supersede",
        "--rpc",
        &url,
        "--key",
        &key("guting-land-office"),
        "--id",
        &title_id,
        "--file",
        &deed2,
        "--json",
    ]);
    let new_title = s["id"].as_str().unwrap().to_string();
    let old = rpc(&addr, "cachet_certificate", json!([title_id])).unwrap();
    assert_eq!(old["status"]["state"], "superseded");
    assert_eq!(old["status"]["by"], json!(new_title));

    let permit = write("permit.txt", "investment permit");
    let p = cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("moea-investment"),
        "--kind",
        "investment-permit",
        "--file",
        &permit,
        "--json",
    ]);
    let permit_id = p["id"].as_str().unwrap().to_string();
    assert_eq!(
        rpc(&addr, "cachet_certificate", json!([permit_id])).unwrap()["status"]["state"],
        "pending"
    );
    cachet(&[
        "approve",
        "--rpc",
        &url,
        "--key",
        &key("nia-immigration"),
        "--id",
        &permit_id,
        "--json",
    ]);
    cachet(&[
        "approve",
        "--rpc",
        &url,
        "--key",
        &key("mol-labor"),
        "--id",
        &permit_id,
        "--json",
    ]);
    assert_eq!(
        rpc(&addr, "cachet_certificate", json!([permit_id])).unwrap()["status"]["state"],
        "active"
    );

    let work = write("work.txt", "a painting");
    cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("moc-culture"),
        "--kind",
        "cultural-license",
        "--file",
        &work,
        "--json",
    ]);

    for i in 0..1000 {
        write(
            &format!("orders/order-{i:04}.txt"),
            &format!("reward order {i}"),
        );
    }
    let b = cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("dgpa-personnel"),
        "--kind",
        "reward-order",
        "--file",
        docs.join("orders").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(b["count"], 1000);
    assert!(rpc(&addr, "cachet_batch", json!([b["id"]])).is_ok());

    let r = cachet(&[
        "revoke",
        "--rpc",
        &url,
        "--key",
        &key("guting-land-office"),
        "--id",
        &new_title,
        "--reason",
        "court-order",
        "--json",
    ]);
    assert!(r["height"].as_u64().is_some());
    assert_eq!(
        rpc(&addr, "cachet_certificate", json!([new_title])).unwrap()["status"]["state"],
        "revoked"
    );

    let st = cachet(&["status", "--rpc", &url, "--json"]);
    let h = st["height"].as_u64().unwrap();
    assert_eq!(st["hash"].as_str().unwrap().len(), 64);
    let blk = cachet(&["block", "--rpc", &url, "--height", &h.to_string(), "--json"]);
    assert_eq!(blk["height"], h);
    assert_eq!(blk["hash"], st["hash"]);

    // Verification through the RPC: by id, by document fingerprint and salt, and lineage.
    let v = rpc(&addr, "cachet_verify", json!([title_id])).unwrap();
    assert_eq!(v["verdict"], "superseded");
    assert!(v["receipt"].as_str().unwrap().len() > 100);
    let cert_file: Value = serde_json::from_str(
        &std::fs::read_to_string(docs.join("deed-after-sale.txt.cachet.json")).unwrap(),
    )
    .unwrap();
    let v = rpc(
        &addr,
        "cachet_verifyDocument",
        json!([
            "sha256",
            cert_file["fingerprint"]["digest"],
            cert_file["salt"]
        ]),
    )
    .unwrap();
    assert_eq!(v["verdict"], "revoked");
    assert_eq!(v["id"], json!(new_title));
    let history = rpc(&addr, "cachet_history", json!([new_title])).unwrap();
    let ids: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![title_id.as_str(), new_title.as_str()]);
    // New blocks arrive over a WebSocket subscription.
    let heights: Vec<u64> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use jsonrpsee::core::client::SubscriptionClientT;
        let ws = jsonrpsee::ws_client::WsClientBuilder::default()
            .build(format!("ws://{addr}"))
            .await
            .unwrap();
        let mut sub: jsonrpsee::core::client::Subscription<Value> = ws
            .subscribe(
                "cachet_subscribeBlocks",
                jsonrpsee::rpc_params![],
                "cachet_unsubscribeBlocks",
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        while out.len() < 2 {
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next()).await;
            out.push(next.unwrap().unwrap().unwrap()["height"].as_u64().unwrap());
        }
        out
    });
    assert!(heights[1] > heights[0], "{heights:?}");
    let discover = rpc(&addr, "rpc.discover", json!([])).unwrap();
    assert_eq!(discover["openrpc"], "1.2.6");

    // Web pages on any site may read (CORS); operator methods refuse them.
    let from_page = |method: &str, verb: &str, params: Value| {
        let body =
            json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "{verb} / HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://agency.example\r\n\
             Access-Control-Request-Method: POST\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (head, body) = cachet_tests::read_http(&mut s).unwrap();
        (
            head.to_ascii_lowercase(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    // Probes: every node is up; all but the one short of disk are ready, and that one says why.
    let get = |addr: &str, path: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (head, body) = cachet_tests::read_http(&mut s).unwrap();
        (head, serde_json::from_slice::<Value>(&body).unwrap())
    };
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| {
            n["rpc"]
                .as_str()
                .unwrap()
                .trim_start_matches("http://")
                .to_string()
        })
        .collect();
    for a in &addrs {
        let (head, body) = get(a, "/healthz");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body["status"], "up");
    }
    let mut unready = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            unready = addrs
                .iter()
                .map(|a| get(a, "/readyz"))
                .filter(|(head, _)| !head.starts_with("HTTP/1.1 200"))
                .collect();
            unready.len() == 1
        }),
        "{unready:?}"
    );
    let (head, body) = &unready[0];
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let failing: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["disk"], "{body}");

    let (head, _) = from_page("cachet_status", "OPTIONS", json!([]));
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let (head, body) = from_page("cachet_status", "POST", json!([]));
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(body.contains("\"chain_id\""), "{body}");
    let (_, body) = from_page(
        "cachet_admin_addPeer",
        "POST",
        json!(["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]),
    );
    assert!(
        body.contains("2004") && body.contains("from_web_page"),
        "{body}"
    );

    // A verifier moves its trust from the genesis to the latest checkpoint, checked on its side;
    // receipts for it carry no validator-set change from before it, and verify against it.
    let genesis = m["genesis"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(120), || {
            rpc(&addr, "cachet_checkpoint", json!([0])).is_ok()
        }),
        "no checkpoint after 120 s"
    );
    let checkpoint = dir.join("checkpoint.json");
    let o = Command::new(cachet_bin())
        .args(["checkpoint", "--trust", &genesis, "--rpc", &url, "--out"])
        .arg(&checkpoint)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.contains("checkpoint at height"),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pinned: Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let at = pinned["height"].as_u64().unwrap();
    assert!(at >= 10 && at.is_multiple_of(10), "{pinned}");
    let cp_receipt = dir.join("checkpoint-title.receipt");
    let o = Command::new(cachet_bin())
        .args(["receipt", "--rpc", &url, "--id", &new_title, "--trust"])
        .arg(&checkpoint)
        .arg("--out")
        .arg(&cp_receipt)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(cachet_bin())
        .args(["verify", "--json", "--receipt"])
        .arg(&cp_receipt)
        .arg("--trust")
        .arg(&checkpoint)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The new title was revoked above: the receipt proves it, as of a height past the checkpoint.
    assert_eq!(
        (v["verdict"].as_str(), v["id"].as_str(), o.status.code()),
        (Some("revoked"), Some(new_title.as_str()), Some(2)),
        "{v}"
    );
    assert!(v["height"].as_u64().unwrap() > at, "{v}");
    // Nothing newer than a verifier's own trust: a clear refusal, not an empty answer.
    let refused = rpc(&addr, "cachet_checkpoint", json!([at + 1_000_000])).unwrap_err();
    assert_eq!(refused.code, 3003, "{refused:?}");
    let refused = rpc(
        &addr,
        "cachet_receipt",
        json!([new_title, { "trusted_height": 1_000_000_000u64 }]),
    )
    .unwrap_err();
    assert_eq!(refused.code, 3002, "{refused:?}");
    let refused = rpc(
        &addr,
        "cachet_receipt",
        json!([new_title, { "trusted": 1 }]),
    )
    .unwrap_err();
    assert_eq!(refused.code, 1000, "{refused:?}");

    // Receipts, then verification with every node stopped.
    let receipts = dir.join("receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    let fetch = |name: &str, by: &[&str]| -> String {
        let out = receipts.join(format!("{name}.receipt"));
        let mut args = vec![
            "receipt",
            "--rpc",
            url.as_str(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(by);
        let o = Command::new(cachet_bin()).args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "receipt {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out.to_str().unwrap().to_string()
    };
    let deed_file = docs.join("deed.txt.cachet.json");
    let r_old = fetch(
        "old-title",
        &["--certificate-file", deed_file.to_str().unwrap()],
    );
    let r_new = fetch("new-title", &["--id", &new_title]);
    let r_permit = fetch("permit", &["--id", &permit_id]);
    let work_file = docs.join("work.txt.cachet.json");
    let r_work = fetch("work", &["--certificate-file", work_file.to_str().unwrap()]);
    let order_file = docs.join("orders/order-0777.txt.cachet.json");
    let r_order = fetch(
        "order",
        &["--certificate-file", order_file.to_str().unwrap()],
    );
    let r_none = fetch("none", &["--id", &"ab".repeat(32)]);
    // A bank's list of ids, checked through a node: every receipt verified here.
    let ids = dir.join("ids.txt");
    std::fs::write(
        &ids,
        format!("# to check\n{permit_id}\n{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let o = Command::new(cachet_bin())
        .args(["verify", "--batch"])
        .arg(&ids)
        .args(["--rpc", &url, "--trust", &genesis])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.lines().count() == 2
            && listed.contains(&format!("valid          {permit_id}"))
            && listed.contains("unknown"),
        "{listed}"
    );
    assert_eq!(o.status.code(), Some(1));
    // Through a node, the lineage: the earlier titles proven in the receipt, verified here.
    let o = Command::new(cachet_bin())
        .args([
            "verify", "--rpc", &url, "--id", &new_title, "--trust", &genesis, "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lineage"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["lineage"][0]["id"], title_id.as_str(), "{v}");
    // The same lineage in a receipt file, verified offline (below, with every node stopped).
    let with_lineage = dir.join("new-title-lineage.receipt").display().to_string();
    let o = Command::new(cachet_bin())
        .args([
            "receipt",
            "--rpc",
            &url,
            "--id",
            &new_title,
            "--lineage",
            "--out",
        ])
        .arg(&with_lineage)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let pids: Vec<u64> = nodes.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    devnet.stop();
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !pid_alive(*p))),
        "nodes still running"
    );

    let check = |receipt: &str, extra: &[&str], verdict: &str, code: i32| {
        let mut args = vec![
            "verify",
            "--receipt",
            receipt,
            "--trust",
            genesis.as_str(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = Command::new(cachet_bin()).args(&args).output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stdout)));
        assert_eq!(v["verdict"], verdict, "{receipt}: {v}");
        assert_eq!(o.status.code(), Some(code), "{receipt}: {v}");
        v
    };
    let v = check(
        &r_old,
        &[
            "--document",
            &deed,
            "--certificate-file",
            deed_file.to_str().unwrap(),
        ],
        "superseded",
        3,
    );
    assert_eq!(v["kind"], "land-title");
    assert_eq!(v["issuer"], "moi-land");
    assert!(v["height"].as_u64().unwrap() >= 1);
    assert_eq!(v["document_matches"], true);
    check(&r_new, &[], "revoked", 2);
    check(&r_permit, &[], "valid", 0);
    check(
        &r_work,
        &[
            "--document",
            &work,
            "--certificate-file",
            work_file.to_str().unwrap(),
        ],
        "valid",
        0,
    );
    let v = check(&r_order, &[], "valid", 0);
    assert_eq!(v["kind"], "reward-order");
    check(&r_none, &[], "unknown", 6);
    // A receipt about another certificate than the one asked about proves nothing about it,
    // valid as it is: what a lying node would answer.
    let v = check(&r_permit, &["--id", &new_title], "invalid", 1);
    assert!(v["reason"].as_str().unwrap().contains(&permit_id), "{v}");
    check(
        &r_new,
        &["--certificate-file", order_file.to_str().unwrap()],
        "invalid",
        1,
    );
    check(
        &r_order,
        &["--certificate-file", order_file.to_str().unwrap()],
        "valid",
        0,
    );
    // The whole directory at once: one line per receipt, each head checked once.
    let o = Command::new(cachet_bin())
        .args(["verify", "--batch"])
        .arg(&receipts)
        .args(["--trust", &genesis, "--json"])
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdict_of = |file: &str| {
        lines
            .iter()
            .find(|l| l["name"] == file)
            .map(|l| l["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(
        verdict_of("old-title.receipt").as_deref(),
        Some("superseded")
    );
    assert_eq!(verdict_of("order.receipt").as_deref(), Some("valid"));
    assert_eq!(verdict_of("none.receipt").as_deref(), Some("unknown"));
    assert_eq!(o.status.code(), Some(1), "not every receipt is valid");
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains("6 receipts"), "{summary}");
    // The receipt as a QR code (PNG and SVG), read back by an independent decoder (rqrr).
    let png = receipts.join("permit.png");
    let run = |args: &[&str]| {
        let o = Command::new(cachet_bin()).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "cachet {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let page = format!("{url}/verify");
    let qr = |what: &str, value: &str, out: &std::path::Path| {
        run(&[
            "qr",
            what,
            value,
            "--page",
            &page,
            "--trust",
            &genesis,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let said = qr("--receipt", &r_permit, &png);
    assert!(said.contains("print it at least"), "{said}");
    qr("--receipt", &r_permit, &receipts.join("permit.svg"));
    assert!(
        std::fs::read_to_string(receipts.join("permit.svg"))
            .unwrap()
            .contains("<svg")
    );
    let o = Command::new(cachet_bin())
        .args([
            "verify",
            "--qr",
            png.to_str().unwrap(),
            "--trust",
            &genesis,
            "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["verdict"].as_str(), o.status.code()),
        (Some("valid"), Some(0)),
        "{v}"
    );
    let o = Command::new(cachet_bin())
        .args([
            "verify",
            "--json",
            "--trust",
            &genesis,
            "--receipt",
            &with_lineage,
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lineage"][0]["id"], title_id.as_str(), "{v}");
    let link_png = receipts.join("link.png");
    qr("--id", &permit_id, &link_png);
    let doc =
        cachet_chain::genesis::GenesisDoc::from_json(&std::fs::read_to_string(&genesis).unwrap())
            .unwrap();
    let root = cachet_contracts::genesis_state(&doc).unwrap().0.hash();
    assert_eq!(
        run(&["qr", "--read", link_png.to_str().unwrap()]).trim(),
        format!("{page}?id={permit_id}#{root}")
    );
    // The wrong document for a certificate is not valid.
    check(
        &r_work,
        &[
            "--document",
            &deed,
            "--certificate-file",
            work_file.to_str().unwrap(),
        ],
        "invalid",
        1,
    );
}

/// One agency's case system anchors 100 documents at once, from 100 processes spread over the
/// four nodes: submitters that take the same nonce sign again, and every document is anchored
/// exactly once, each with its own nonce.
#[test]
fn one_agency_anchors_a_hundred_documents_at_once() {
    const DOCS: usize = 100;
    let devnet = Devnet::start("devnet-concurrent");
    let m = &devnet.manifest;
    let key = m["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "moi-land")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = devnet.rpc_url(0).trim_start_matches("http://").to_string();
    let nonce = |addr: &str| {
        rpc(addr, "cachet_agency", json!(["moi-land"])).unwrap()["next_nonce"]
            .as_u64()
            .unwrap()
    };
    let before = nonce(&addr);
    let docs = devnet.dir.join("concurrent");
    std::fs::create_dir_all(&docs).unwrap();
    let children: Vec<_> = (0..DOCS)
        .map(|i| {
            let doc = docs.join(format!("order-{i}.txt"));
            std::fs::write(&doc, format!("reward order {i}")).unwrap();
            Command::new(cachet_bin())
                .args(["anchor", "--rpc", &devnet.rpc_url(i % 4), "--key", &key])
                .args(["--kind", "land-title", "--json", "--file"])
                .arg(&doc)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("cachet anchor starts")
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "anchor {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), DOCS, "one certificate per document");
    for id in &ids {
        let cert = rpc(&addr, "cachet_certificate", json!([id])).unwrap();
        assert_eq!(cert["issuer"], "moi-land");
    }
    let after = before + DOCS as u64;
    assert_eq!(
        nonce(&addr),
        after,
        "each anchor used one nonce, none was wasted"
    );
    let next = rpc(&addr, "cachet_nextNonce", json!(["moi-land"])).unwrap();
    assert_eq!(
        next,
        json!({"agency": "moi-land", "committed": after, "next": after})
    );
}

/// `cachet` with `args`, expected to fail: its stderr.
fn cachet_fails(args: &[&str]) -> String {
    let out = Command::new(cachet_bin())
        .args(args)
        .output()
        .expect("cachet runs");
    assert!(!out.status.success(), "cachet {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every agency action beyond anchoring has its command, driven as a case system's script
/// would: governance proposals and votes, accreditation of a newly registered agency, its key
/// rotated by governance, a mortgage set and cancelled, one entry of a batch revoked, a
/// certificate's history and the node's evidence.
#[test]
fn every_agency_action_has_a_command() {
    // The first node's validator key is sealed under a passphrase its config names.
    let devnet = Devnet::start_prepared("devnet-agency", |dir| {
        let mut nodes: Vec<_> = std::fs::read_dir(dir.join("nodes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        nodes.sort();
        let node = &nodes[0];
        std::fs::write(node.join("passphrase"), "the first node's passphrase\n").unwrap();
        let sealed = Command::new(cachet_bin())
            .args(["seal-key", "--key"])
            .arg(node.join("validator.key"))
            .env("CACHET_PASSPHRASE_FILE", node.join("passphrase"))
            .output()
            .unwrap();
        assert!(
            sealed.status.success(),
            "{}",
            String::from_utf8_lossy(&sealed.stderr)
        );
        let config = node.join("config.toml");
        let mut toml: toml::Table =
            toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        toml.insert(
            "validator_key_passphrase_file".into(),
            toml::Value::String("passphrase".into()),
        );
        std::fs::write(&config, toml::to_string(&toml).unwrap()).unwrap();
    });
    let m = devnet.manifest.clone();
    let url = devnet.rpc_url(0);
    let addr = url.trim_start_matches("http://").to_string();
    let key = |name: &str| agency_key(&m, name);
    let dir = devnet.dir.join("agency");
    std::fs::create_dir_all(dir.join("orders")).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let tx = |args: &[&str], signer: &str| signed(&url, &key(signer), args);
    let record = |method: &str, id: &str| rpc(&addr, method, json!([id])).unwrap();

    // A new land office: a key of its own, registered and accredited by the accreditor.
    let office_key = dir.join("hsinchu.key");
    let made = Command::new(cachet_bin())
        .args(["keygen", "--out"])
        .arg(&office_key)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pubkey_of = |path: &Path| {
        let out = Command::new(cachet_bin())
            .args(["pubkey", "--key"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let office_pub = pubkey_of(&office_key);
    let accredited = tx(
        &[
            "accredit",
            "--kind",
            "land-title",
            "--for",
            "hsinchu-land-office",
            "--name",
            "新竹地政事務所 Hsinchu Land Office",
            "--pubkey",
            &office_pub,
        ],
        "moi-land",
    );
    assert_eq!(accredited["registered"], true);
    let office = office_key.to_str().unwrap();
    let deed = write("deed.txt", "a title issued by the new office");
    let anchor_as_office = |file: &str, key: &str| {
        cachet(&[
            "anchor",
            "--rpc",
            &url,
            "--key",
            key,
            "--agency",
            "hsinchu-land-office",
            "--kind",
            "land-title",
            "--file",
            file,
            "--json",
        ])
    };
    let title = anchor_as_office(&deed, office)["id"]
        .as_str()
        .unwrap()
        .to_string();

    // An agency whose key file is sealed: each command opens it with the passphrase.
    let sealed_key = dir.join("moi-land-sealed.key");
    std::fs::copy(key("moi-land"), &sealed_key).unwrap();
    let passphrase = dir.join("moi-land.passphrase");
    std::fs::write(&passphrase, "the land department's passphrase\n").unwrap();
    let with_passphrase = |args: &[&str]| {
        Command::new(cachet_bin())
            .args(args)
            .env("CACHET_PASSPHRASE_FILE", &passphrase)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let sealed = with_passphrase(&["seal-key", "--key", sealed_key.to_str().unwrap()]);
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let anchored = with_passphrase(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        sealed_key.to_str().unwrap(),
        "--kind",
        "land-title",
        "--file",
        &write("sealed-deed.txt", "anchored with a sealed key"),
        "--json",
    ]);
    assert!(
        anchored.status.success(),
        "{}",
        String::from_utf8_lossy(&anchored.stderr)
    );

    // A mortgage set on the title, and cancelled.
    let registration = "bank of taiwan, NT$8,000,000, reg. 113-0042, secret 7f3a";
    tx(
        &["mortgage", "--id", &title, "--registration", registration],
        "moi-land",
    );
    let mortgages = |id: &str| {
        record("cachet_certificate", id)["mortgages"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(mortgages(&title), 1);
    tx(
        &[
            "mortgage",
            "--id",
            &title,
            "--registration",
            registration,
            "--cancel",
        ],
        "moi-land",
    );
    assert_eq!(mortgages(&title), 0);

    // Governance: the office's key is rotated by three of the four validator agencies.
    let new_key = dir.join("hsinchu-2.key");
    Command::new(cachet_bin())
        .args(["keygen", "--out"])
        .arg(&new_key)
        .output()
        .unwrap();
    let new_pub = pubkey_of(&new_key);
    let proposed = tx(
        &[
            "propose",
            "rotate-key",
            "--for",
            "hsinchu-land-office",
            "--pubkey",
            &new_pub,
        ],
        "moi-land",
    );
    let proposal = proposed["tx"].as_str().unwrap().to_string();
    assert_eq!(
        proposed["proposed"]["rotate_agency_key"]["key"],
        new_pub.as_str()
    );
    for voter in ["moea-investment", "dgpa-personnel"] {
        tx(&["vote", "--proposal", &proposal], voter);
    }
    let agency = record("cachet_agency", "hsinchu-land-office");
    let keys = agency["keys"].as_array().unwrap();
    assert_eq!(keys.last().unwrap()["key"], new_pub.as_str(), "{agency}");
    let old_signed = cachet_fails(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        office,
        "--agency",
        "hsinchu-land-office",
        "--kind",
        "land-title",
        "--file",
        &write("late.txt", "signed with the retired key"),
    ]);
    assert!(old_signed.contains("1105"), "{old_signed}");
    anchor_as_office(
        &write("deed-2.txt", "signed with the new key"),
        new_key.to_str().unwrap(),
    );

    // Accreditation withdrawn: the office may no longer issue titles.
    tx(
        &[
            "unaccredit",
            "--kind",
            "land-title",
            "--for",
            "hsinchu-land-office",
        ],
        "moi-land",
    );
    let refused = cachet_fails(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        new_key.to_str().unwrap(),
        "--agency",
        "hsinchu-land-office",
        "--kind",
        "land-title",
        "--file",
        &write("deed-3.txt", "too late"),
    ]);
    assert!(refused.contains("1201"), "{refused}");

    // One entry of a reward-order batch revoked from its certificate file.
    for i in 0..3 {
        write(
            &format!("orders/order-{i}.txt"),
            &format!("reward order {i}"),
        );
    }
    let batch = cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("dgpa-personnel"),
        "--kind",
        "reward-order",
        "--file",
        dir.join("orders").to_str().unwrap(),
        "--json",
    ]);
    let entry_file = dir.join("orders/order-1.txt.cachet.json");
    let revoked = tx(
        &[
            "revoke-entry",
            "--certificate",
            entry_file.to_str().unwrap(),
            "--reason",
            "issued-in-error",
        ],
        "dgpa-personnel",
    );
    assert_eq!(revoked["revoked_entry"], 1);
    assert_eq!(
        record("cachet_batch", batch["id"].as_str().unwrap())["revoked"],
        1
    );

    // A validator agency proposes a new agency; the proposal alone does not carry it out.
    let pending = tx(
        &[
            "propose",
            "add-agency",
            "--id",
            "tainan-land-office",
            "--name",
            "臺南地政 Tainan",
            "--pubkey",
            &new_pub,
        ],
        "moc-culture",
    );
    assert!(rpc(&addr, "cachet_agency", json!(["tainan-land-office"])).is_err());
    assert!(pending["tx"].as_str().is_some());

    // A licence over a deposited work, attested by two of the three oracles.
    let work = tx(
        &[
            "anchor",
            "--kind",
            "cultural-license",
            "--file",
            &write("work.txt", "a painting"),
        ],
        "moc-culture",
    );
    let licence_doc = write("licence.txt", "licence to reproduce the painting");
    let request = dir.join("request.json");
    cachet(&[
        "license-request",
        "--rpc",
        &url,
        "--work",
        work["id"].as_str().unwrap(),
        "--file",
        &licence_doc,
        "--licensee",
        "National Palace Museum shop",
        "--scope",
        "reproduce,distribute",
        "--valid-days",
        "30",
        "--out",
        request.to_str().unwrap(),
    ]);
    let attest = |oracle: &str| {
        let key = dir.join(format!("{oracle}.key"));
        let made = Command::new(cachet_bin())
            .args(["keygen", "--dev", &format!("oracle:{oracle}"), "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let out = dir.join(format!("{oracle}.attestation.json"));
        cachet(&[
            "attest",
            "--key",
            key.to_str().unwrap(),
            "--request",
            request.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        out.to_str().unwrap().to_string()
    };
    let (first, second) = (attest("oracle-1"), attest("oracle-2"));
    let too_few = cachet_fails(&[
        "license",
        "--rpc",
        &url,
        "--key",
        &key("moc-culture"),
        "--request",
        request.to_str().unwrap(),
        "--attestation",
        &first,
    ]);
    assert!(too_few.contains("1407"), "{too_few}");
    let licence = tx(
        &[
            "license",
            "--request",
            request.to_str().unwrap(),
            "--attestation",
            &first,
            "--attestation",
            &second,
        ],
        "moc-culture",
    );
    let granted = record("cachet_certificate", licence["id"].as_str().unwrap());
    assert_eq!(granted["terms"]["license"]["work"], work["id"], "{granted}");
    assert_eq!(granted["terms"]["license"]["scope"], 3);
    assert!(dir.join("licence.txt.cachet.json").exists());

    // The rest of governance, each carried out by three of the four validator agencies: a
    // kind's policy replaced from a JSON file, a validator added and removed, an agency
    // removed.
    let pass = |change: &[&str]| {
        let mut args = vec!["propose"];
        args.extend_from_slice(change);
        let proposal = tx(&args, "moi-land")["tx"].as_str().unwrap().to_string();
        for voter in ["moea-investment", "dgpa-personnel"] {
            tx(&["vote", "--proposal", &proposal], voter);
        }
    };
    let policy = dir.join("land-title-policy.json");
    let land_policy = json!({
        "accreditors": ["moi-land"], "approvers": [], "approvals_required": 0, "oracles": [],
        "oracle_threshold": 0, "max_attestation_window_ms": 0, "requires_validity": false,
        "max_validity_ms": 0, "max_batch_leaves": 1000, "max_receipt_age_ms": 86_400_000
    });
    std::fs::write(&policy, land_policy.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("titles")).unwrap();
    for i in 0..2 {
        write(&format!("titles/title-{i}.txt"), &format!("title {i}"));
    }
    let titles = dir.join("titles");
    let batch_of_titles = [
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("moi-land"),
        "--kind",
        "land-title",
        "--file",
        titles.to_str().unwrap(),
        "--json",
    ];
    assert!(
        cachet_fails(&batch_of_titles).contains("1320"),
        "no batches of titles yet"
    );
    pass(&[
        "set-policy",
        "--kind",
        "land-title",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(
        cachet(&batch_of_titles)["count"],
        2,
        "batches of titles allowed now"
    );
    let spare = dir.join("spare-validator.key");
    Command::new(cachet_bin())
        .args(["keygen", "--out"])
        .arg(&spare)
        .output()
        .unwrap();
    let spare_pub = pubkey_of(&spare);
    let validators = || {
        rpc(&addr, "cachet_validators", json!([])).unwrap()["validators"]
            .as_array()
            .unwrap()
            .len()
    };
    pass(&[
        "add-validator",
        "--for",
        "moc-culture",
        "--pubkey",
        &spare_pub,
    ]);
    assert_eq!(validators(), 5);
    pass(&["remove-validator", "--pubkey", &spare_pub]);
    assert_eq!(validators(), 4);
    pass(&["remove-agency", "--id", "hsinchu-land-office"]);
    assert!(!record("cachet_agency", "hsinchu-land-office")["removed_at"].is_null());

    // History and evidence, read back.
    let superseded = cachet(&[
        "supersede",
        "--rpc",
        &url,
        "--key",
        &key("moi-land"),
        "--id",
        &title,
        "--file",
        &write("deed-after-sale.txt", "sold"),
        "--json",
    ]);
    let history = cachet(&["history", "--rpc", &url, "--id", &title, "--json"]);
    let lineage: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        lineage,
        vec![title.as_str(), superseded["id"].as_str().unwrap()]
    );
    assert_eq!(cachet(&["evidence", "--rpc", &url, "--json"]), json!([]));
}

/// An agency whose key was generated inside an HSM (SoftHSM2, through its PKCS#11 module) is
/// registered with its public key and anchors with it: the private key never leaves the token.
/// The same label is not generated twice, and a wrong PIN is refused.
#[test]
fn an_agency_key_in_an_hsm_signs_for_its_agency() {
    let hsm = cachet_tests::SoftHsm::new("cachet-agency");
    let (var, conf) = hsm.env();
    let run = |args: &[&str]| {
        Command::new(cachet_bin())
            .args(args)
            .env(var, &conf)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let uri = hsm.uri("kaohsiung-land-office");
    let made = run(&["keygen", "--pkcs11", &uri]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    let read = run(&["pubkey", "--key", &uri]);
    assert_eq!(String::from_utf8(read.stdout).unwrap().trim(), public);
    let again = run(&["keygen", "--pkcs11", &uri]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));
    let wrong = run(&[
        "pubkey",
        "--key",
        &hsm.uri_with_pin("kaohsiung-land-office", "000000"),
    ]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("logging in"));

    let devnet = Devnet::start("devnet-hsm");
    let url = devnet.rpc_url(0);
    let moi = devnet.manifest["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "moi-land")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    cachet(&[
        "accredit",
        "--rpc",
        &url,
        "--key",
        &moi,
        "--kind",
        "land-title",
        "--for",
        "kaohsiung-land-office",
        "--name",
        "高雄地政 Kaohsiung",
        "--pubkey",
        &public,
        "--json",
    ]);
    let deed = devnet.dir.join("hsm-deed.txt");
    std::fs::write(&deed, "a title signed in an HSM").unwrap();
    let anchored = run(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &uri,
        "--agency",
        "kaohsiung-land-office",
        "--kind",
        "land-title",
        "--file",
        deed.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        anchored.status.success(),
        "{}",
        String::from_utf8_lossy(&anchored.stderr)
    );
    let v: Value = serde_json::from_slice(&anchored.stdout).unwrap();
    let addr = url.trim_start_matches("http://").to_string();
    let cert = rpc(&addr, "cachet_certificate", json!([v["id"]])).unwrap();
    assert_eq!(cert["issuer"], "kaohsiung-land-office");
}

/// A consortium adds a kind of certificate by a vote on its running nodes, with no code and no
/// restart: construction-firm certificates (營造業電子證書). Its accreditor accredits an
/// issuer, who anchors one by the kind's registered name, records one of its named events and
/// revokes it; a verifier holding only the genesis file, which never heard of the kind,
/// verifies its receipt offline and names the kind from the policy the receipt carries.
#[test]
fn a_kind_added_by_vote_is_issued_verified_offline_and_revoked() {
    let devnet = Devnet::start("devnet-kinds");
    let m = devnet.manifest.clone();
    let url = devnet.rpc_url(1);
    let genesis = m["genesis"].as_str().unwrap().to_string();
    let key = |name: &str| agency_key(&m, name);
    let dir = devnet.dir.join("kinds");
    std::fs::create_dir_all(&dir).unwrap();
    let tx = |args: &[&str], signer: &str| signed(&url, &key(signer), args);
    let kind = "construction-firm-certificate";
    let anchor_firm = |name: &str| {
        let doc = dir.join(name);
        std::fs::write(&doc, format!("營造業登記證 {name}")).unwrap();
        tx(
            &[
                "anchor",
                "--kind",
                kind,
                "--valid-days",
                "365",
                "--file",
                doc.to_str().unwrap(),
            ],
            "moi-land",
        )
    };
    // Not a kind yet.
    let early = dir.join("early.txt");
    std::fs::write(&early, "too early").unwrap();
    let refused = cachet_fails(&[
        "anchor",
        "--rpc",
        &url,
        "--key",
        &key("moi-land"),
        "--kind",
        kind,
        "--file",
        early.to_str().unwrap(),
        "--json",
    ]);
    assert!(refused.contains("unknown certificate kind"), "{refused}");

    let policy = dir.join("construction-firm-policy.json");
    let firm_policy = json!({
        "accreditors": ["moi-land"], "approvers": [], "approvals_required": 0, "oracles": [],
        "oracle_threshold": 0, "max_attestation_window_ms": 0, "requires_validity": true,
        "max_validity_ms": 157_680_000_000u64, "max_batch_leaves": 0,
        "max_receipt_age_ms": 259_200_000,
        "definition": {
            "name": kind, "title_zh_tw": "營造業電子證書",
            "title_en": "Construction firm certificate", "supersedable": false,
            "events": ["suspended", "reinstated"]
        }
    });
    std::fs::write(&policy, firm_policy.to_string()).unwrap();
    let proposed = tx(
        &["propose", "add-kind", "--policy", policy.to_str().unwrap()],
        "moi-land",
    );
    let proposal = proposed["tx"].as_str().unwrap().to_string();
    for voter in ["moea-investment", "dgpa-personnel"] {
        tx(&["vote", "--proposal", &proposal], voter);
    }
    // Every node knows it now, by name and number.
    for i in 0..4 {
        let listed = cachet(&["kinds", "--rpc", &devnet.rpc_url(i), "--json"]);
        let registered = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == kind)
            .unwrap_or_else(|| panic!("node {i} lists {listed}"));
        assert_eq!(registered["kind"], "kind-0");
        assert_eq!(registered["policy"], firm_policy);
    }
    tx(
        &["accredit", "--kind", kind, "--for", "moi-land"],
        "moi-land",
    );
    let firm = anchor_firm("firm-1.txt");
    let id = firm["id"].as_str().unwrap().to_string();
    assert_eq!(firm["kind"], "kind-0", "{firm}");
    tx(
        &[
            "event",
            "--id",
            &id,
            "--event",
            "suspended",
            "--particulars",
            "停業處分 case 113-0042, secret 9f2c",
        ],
        "moi-land",
    );
    let not_allowed = cachet_fails(&[
        "event",
        "--rpc",
        &url,
        "--key",
        &key("moi-land"),
        "--id",
        &id,
        "--event",
        "seized",
        "--particulars",
        "x",
        "--json",
    ]);
    assert!(not_allowed.contains("1314"), "{not_allowed}");

    // Offline, against the genesis file alone.
    let receipt = dir.join("firm-1.receipt");
    fetch_receipt(&url, &id, &receipt);
    let verify = || verify_offline(&receipt, &genesis);
    let (v, code) = verify();
    assert_eq!(
        (v["verdict"].as_str(), code),
        (Some("valid"), Some(0)),
        "{v}"
    );
    assert_eq!(v["kind"], "kind-0");
    assert_eq!(v["kind_definition"]["name"], kind, "{v}");
    assert_eq!(v["kind_definition"]["title_zh_tw"], "營造業電子證書");
    let genesis_text = std::fs::read_to_string(&genesis).unwrap();
    assert!(
        !genesis_text.contains(kind),
        "the genesis never heard of it"
    );

    tx(
        &["revoke", "--id", &id, "--reason", "court-order"],
        "moi-land",
    );
    fetch_receipt(&devnet.rpc_url(3), &id, &receipt);
    let (v, code) = verify();
    assert_eq!(
        (v["verdict"].as_str(), code),
        (Some("revoked"), Some(2)),
        "{v}"
    );
}

/// A validator whose consensus key never leaves an HSM (SoftHSM2, through PKCS#11). The
/// genesis names the token's key and gives it half the voting power, so that no block can be
/// committed without its precommit; the node runs with a network key of its own, which the
/// token's key vouches for to its peers. The chain advances, a certificate is anchored, and its
/// receipt — which must carry the token's signature to reach two thirds — verifies offline.
#[test]
fn a_validator_key_in_an_hsm_signs_every_commit_it_must() {
    let hsm = cachet_tests::SoftHsm::new("cachet-validator");
    let (var, conf) = hsm.env();
    let uri = hsm.uri("dgpa-personnel-validator");
    let made = Command::new(cachet_bin())
        .args(["keygen", "--pkcs11", &uri])
        .env(var, &conf)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let devnet = Devnet::start_prepared_with_env(
        "devnet-hsm-validator",
        |dir| {
            let path = dir.join("genesis.json");
            let mut genesis: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for v in genesis["validators"].as_array_mut().unwrap() {
                if v["agency"] == "dgpa-personnel" {
                    v["key"] = json!(public);
                    v["power"] = json!(3);
                }
            }
            std::fs::write(&path, genesis.to_string()).unwrap();
            let node = dir.join("nodes/dgpa-personnel");
            // The development key file goes: the node must sign with the token's key.
            std::fs::remove_file(node.join("validator.key")).unwrap();
            let made = Command::new(cachet_bin())
                .args(["keygen", "--out"])
                .arg(node.join("node.key"))
                .output()
                .unwrap();
            assert!(made.status.success());
            let config = node.join("config.toml");
            let mut toml: toml::Table =
                toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
            toml.insert("validator_key".into(), toml::Value::String(uri.clone()));
            std::fs::write(&config, toml::to_string(&toml).unwrap()).unwrap();
        },
        &[(var, conf.as_path())],
    );
    let nodes = devnet.manifest["nodes"].as_array().unwrap().clone();
    let hsm_node = nodes
        .iter()
        .position(|n| n["name"] == "dgpa-personnel")
        .unwrap();
    let addr = devnet
        .rpc_url(hsm_node)
        .trim_start_matches("http://")
        .to_string();
    let info = rpc(&addr, "cachet_nodeInfo", json!([])).unwrap();
    assert_eq!(info["validator_key"], public.as_str(), "{info}");
    // Its peers know it by its node key's peer id (the devnet wrote it into their configs).
    let peer_id = info["peer_id"].as_str().unwrap().to_string();
    let moi_config =
        std::fs::read_to_string(devnet.dir.join("nodes/moi-land/config.toml")).unwrap();
    assert!(moi_config.contains(&peer_id), "{moi_config}");

    // Every block needs its precommit (3 of 6 voting power without it): the chain advances.
    let url = devnet.rpc_url(0);
    let key = agency_key(&devnet.manifest, "moi-land");
    let deed = devnet.dir.join("deed-hsm-validator.txt");
    std::fs::write(&deed, "a title committed with a token's votes").unwrap();
    let anchored = signed(
        &url,
        &key,
        &[
            "anchor",
            "--kind",
            "land-title",
            "--file",
            deed.to_str().unwrap(),
        ],
    );
    let id = anchored["id"].as_str().unwrap().to_string();
    let receipt = devnet.dir.join("deed-hsm-validator.receipt");
    fetch_receipt(&url, &id, &receipt);
    let (v, _) = verify_offline(&receipt, devnet.manifest["genesis"].as_str().unwrap());
    assert_eq!(v["verdict"], "valid", "{v}");
    let metrics = cachet_tests::http_get(&addr, "/metrics").unwrap().2;
    let votes = cachet_tests::metric_samples(&metrics)
        .into_iter()
        .find(|(k, _)| k.starts_with("cachet_votes_signed"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(
        votes > 0.0,
        "the token's validator signed no vote:\n{metrics}"
    );
}
