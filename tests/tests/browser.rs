//! The verify page in a real browser (headless Chromium, driven over the DevTools protocol),
//! served by a devnet node under a host name that is not `localhost` — plain HTTP at such an
//! origin is not a secure context, so nothing the page needs may depend on one (WebCrypto
//! does). The page verifies every receipt itself against its compiled trust root: a title and a
//! batch entry by id and by document, a wrong document, a revoked and an unknown certificate, a
//! link that trusts another consortium, an agency's static copy (`cachet verify-page`)
//! opened from `file://` that fetches receipts cross-origin, and a receipt link (through its QR
//! code) pinning a checkpoint the page reaches from its genesis root; and a lying node (a proxy in front
//! of a genuine one) that forges a status, answers about another certificate or from another
//! chain, flips a byte — each shown as not valid, as is a receipt too old on the device's clock.
//! Screenshots of each verdict are kept under `target/test-artifacts/` (or `$CACHET_ARTIFACTS`).

use cachet_tests::browser::{Browser, Tab, artifacts_dir, chromium};
use cachet_tests::{Devnet, cachet_bin, read_http, wait_until};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The name the browser reaches the node by (mapped to 127.0.0.1 for the browser only).
const HOST: &str = "verify.cachet.test";

/// Run `cachet`; it must succeed. What it printed, as JSON (null if it is not).
fn cachet(args: &[&str]) -> Value {
    serde_json::from_str(&cachet_text(args)).unwrap_or(Value::Null)
}

/// `cachet anchor` of `file` (a document or a directory: a batch) as a `kind` signed with the
/// key file `key`, through `url`: the certificate id (or batch id).
fn anchor(url: &str, kind: &str, key: &str, file: &Path) -> String {
    cachet(&[
        "anchor",
        "--rpc",
        url,
        "--kind",
        kind,
        "--json",
        "--key",
        key,
        "--file",
        file.to_str().unwrap(),
    ])["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

/// Run `cachet` and return what it printed; it must succeed.
fn cachet_text(args: &[&str]) -> String {
    let out = Command::new(cachet_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cachet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn verdict(tab: &mut Tab) -> String {
    tab.wait_for_text(
        "document.getElementById('result').hidden ? '' : document.getElementById('verdict').textContent",
        Duration::from_secs(30),
    )
}

fn text_of(tab: &mut Tab, id: &str) -> String {
    tab.eval(&format!("document.getElementById('{id}').textContent"))
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Clear the last result, choose a document and its certificate file, and check.
fn check_document(tab: &mut Tab, page: &str, doc: &Path, certificate: &Path) -> String {
    tab.open(page);
    tab.set_files("#doc", &[doc]);
    tab.set_files("#certfile", &[certificate]);
    tab.eval("document.getElementById('by-doc').click()");
    verdict(tab)
}

fn shot(tab: &mut Tab, name: &str) {
    let path = artifacts_dir().join(format!("verify-page-{name}.png"));
    tab.screenshot(&path);
    assert!(
        std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );
}

#[test]
fn the_verify_page_verifies_receipts_on_the_device() {
    let Some(browser) = chromium() else {
        return;
    };
    // A checkpoint every 10 heights: the page moves its trust to one while the test runs.
    let mut devnet = Devnet::start_prepared("browser-test", |dir| {
        cachet_tests::set_checkpoint_interval(dir, 10)
    });
    let dir = devnet.dir.clone();
    let url = devnet.rpc_url(1);
    let port = url.rsplit(':').next().unwrap().to_string();
    let base = format!("http://{HOST}:{port}");
    let key = |a: &str| dir.join(format!("keys/{a}.key")).display().to_string();
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("orders")).unwrap();

    let deed = docs.join("deed.txt");
    std::fs::write(&deed, "land title for the browser test").unwrap();
    let id = anchor(&url, "land-title", &key("moi-land"), &deed);
    let deed_certificate = docs.join("deed.txt.cachet.json");
    for i in 0..5 {
        std::fs::write(
            docs.join(format!("orders/order-{i}.txt")),
            format!("reward order {i}"),
        )
        .unwrap();
    }
    anchor(
        &url,
        "reward-order",
        &key("dgpa-personnel"),
        &docs.join("orders"),
    );
    let root = cachet_tests::rpc(
        &url.replace("http://", ""),
        "cachet_trustAnchor",
        serde_json::json!([]),
    )
    .unwrap()["root"]
        .as_str()
        .unwrap()
        .to_string();

    let b = Browser::launch(browser, &format!("MAP {HOST} 127.0.0.1"));
    let mut tab = b.tab();

    // A link QR's target: the page fetches the receipt and verifies it here.
    tab.open(&format!("{base}/v/{id}#{root}"));
    assert_eq!(verdict(&mut tab), "有效 · Valid");
    assert_eq!(tab.eval("window.isSecureContext"), Value::Bool(false));
    assert!(text_of(&mut tab, "proof").contains("Verified on this device"));
    assert!(text_of(&mut tab, "facts").contains("moi-land"));
    assert_eq!(text_of(&mut tab, "root"), root);
    assert_eq!(text_of(&mut tab, "alarms"), "");
    shot(&mut tab, "valid");

    // The document check, for a title and for an entry of a batch.
    let page = format!("{base}/verify");
    let v = check_document(&mut tab, &page, &deed, &deed_certificate);
    assert!(
        v.contains("有效 · Valid") && v.contains("Document matches"),
        "{v}"
    );
    shot(&mut tab, "document-matches");
    let order = docs.join("orders/order-3.txt");
    let v = check_document(
        &mut tab,
        &page,
        &order,
        &docs.join("orders/order-3.txt.cachet.json"),
    );
    assert!(
        v.contains("有效 · Valid") && v.contains("Document matches"),
        "{v}"
    );
    assert!(text_of(&mut tab, "reason").contains("Entry 3 of a batch of 5"));
    shot(&mut tab, "batch-entry-document");
    let v = check_document(&mut tab, &page, &order, &deed_certificate);
    assert!(v.contains("does not match"), "{v}");
    shot(&mut tab, "document-does-not-match");

    // A link that trusts another consortium than the page does.
    tab.open(&format!("{base}/v/{id}#{}", "ab".repeat(32)));
    verdict(&mut tab);
    assert!(text_of(&mut tab, "alarms").contains("trusts a different consortium"));
    shot(&mut tab, "other-trust-root");

    // An agency's own copy of the page, opened from disk, asks the node cross-origin.
    let site = dir.join("site");
    let genesis = dir.join("genesis.json");
    let out = Command::new(cachet_bin())
        .args(["verify-page", "--genesis"])
        .arg(&genesis)
        .args(["--rpc", &base, "--out"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = format!(
        "file://{}?id={id}#{root}",
        site.join("index.html").display()
    );
    tab.open(&copy);
    assert_eq!(verdict(&mut tab), "有效 · Valid");
    shot(&mut tab, "static-copy");

    // A kind the consortium registered by a vote after the page was built: the page names it
    // by the titles in its policy, which its receipt carries.
    let policy = docs.join("construction-firm-policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "accreditors": ["moi-land"], "approvers": [], "approvals_required": 0,
            "oracles": [], "oracle_threshold": 0, "max_attestation_window_ms": 0,
            "requires_validity": false, "max_validity_ms": 0, "max_batch_leaves": 0,
            "max_receipt_age_ms": 86_400_000,
            "definition": {
                "name": "construction-firm-certificate", "title_zh_tw": "營造業電子證書",
                "title_en": "Construction firm certificate", "supersedable": false,
                "events": []
            }
        })
        .to_string(),
    )
    .unwrap();
    let signed = |args: &[&str], agency: &str| {
        let k = key(agency);
        let mut all = args.to_vec();
        all.extend(["--rpc", url.as_str(), "--key", k.as_str(), "--json"]);
        cachet(&all)
    };
    let proposal = signed(
        &["propose", "add-kind", "--policy", policy.to_str().unwrap()],
        "moi-land",
    )["tx"]
        .as_str()
        .unwrap()
        .to_string();
    for voter in ["moea-investment", "dgpa-personnel"] {
        signed(&["vote", "--proposal", &proposal], voter);
    }
    signed(
        &[
            "accredit",
            "--kind",
            "construction-firm-certificate",
            "--for",
            "moi-land",
        ],
        "moi-land",
    );
    let licence = docs.join("firm.txt");
    std::fs::write(&licence, "營造業登記證 for the browser test").unwrap();
    let firm = anchor(
        &url,
        "construction-firm-certificate",
        &key("moi-land"),
        &licence,
    );
    tab.open(&format!("{base}/v/{firm}#{root}"));
    assert_eq!(verdict(&mut tab), "有效 · Valid");
    let facts = text_of(&mut tab, "facts");
    assert!(
        facts.contains("營造業電子證書 Construction firm certificate"),
        "{facts}"
    );
    shot(&mut tab, "registered-kind");

    // A title transferred twice: its lineage, the earlier titles proven in its one receipt.
    let mut current = id.clone();
    for step in 1..=2 {
        let next = docs.join(format!("deed-{step}.txt"));
        std::fs::write(&next, format!("the deed after transfer {step}")).unwrap();
        current = cachet(&[
            "supersede",
            "--rpc",
            &url,
            "--key",
            &key("moi-land"),
            "--id",
            &current,
            "--file",
            next.to_str().unwrap(),
            "--json",
        ])["id"]
            .as_str()
            .unwrap()
            .to_string();
    }
    tab.open(&format!("{base}/verify?id={current}#{root}"));
    assert_eq!(verdict(&mut tab), "有效 · Valid");
    let lineage = tab.wait_for_text(
        "(document.getElementById('lineage') || {}).textContent === '…' ? '' : (document.getElementById('lineage') || {}).textContent || ''",
        Duration::from_secs(30),
    );
    assert!(
        lineage
            .contains("2 earlier certificates, proven in one receipt and verified on this device")
            && lineage.contains(&id),
        "{lineage}"
    );
    shot(&mut tab, "lineage");
    tab.open(&format!("{base}/v/{id}#{root}"));
    assert_eq!(verdict(&mut tab), "已被取代 · Superseded");
    assert!(text_of(&mut tab, "facts").contains("Replaced by"));

    // Checkpoints: the page has moved its trust from the genesis root compiled into it to the
    // node's latest checkpoint, checked on the device; a receipt made for that checkpoint and
    // carried in a link pinning its root verifies with no alarm, and one pinning a root the
    // page cannot reach raises one.
    let node = url.replace("http://", "");
    assert!(
        wait_until(Duration::from_secs(120), || {
            cachet_tests::rpc(&node, "cachet_checkpoint", serde_json::json!([0])).is_ok()
        }),
        "no checkpoint after 120 s"
    );
    let checkpoint = dir.join("checkpoint.json");
    cachet_text(&[
        "checkpoint",
        "--trust",
        genesis.to_str().unwrap(),
        "--rpc",
        &url,
        "--out",
        checkpoint.to_str().unwrap(),
    ]);
    let pinned: Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let checkpoint_root = pinned["root"].as_str().unwrap().to_string();
    let carried = dir.join("current.receipt");
    cachet_text(&[
        "receipt",
        "--rpc",
        &url,
        "--id",
        &current,
        "--trust",
        checkpoint.to_str().unwrap(),
        "--out",
        carried.to_str().unwrap(),
    ]);
    // Through the QR code the CLI prints for it, read back.
    let qr = dir.join("current.png");
    cachet_text(&[
        "qr",
        "--receipt",
        carried.to_str().unwrap(),
        "--page",
        &format!("{base}/verify"),
        "--trust",
        checkpoint.to_str().unwrap(),
        "--out",
        qr.to_str().unwrap(),
    ]);
    let link = cachet_text(&["qr", "--read", qr.to_str().unwrap()]);
    let link = link.trim();
    assert!(
        link.starts_with(&format!("{base}/verify#{checkpoint_root}.")),
        "{link}"
    );
    tab.open(link);
    assert_eq!(verdict(&mut tab), "有效 · Valid");
    assert_eq!(text_of(&mut tab, "alarms"), "");
    assert!(
        text_of(&mut tab, "chain").contains("checkpoint at height"),
        "{}",
        text_of(&mut tab, "chain")
    );
    assert!(text_of(&mut tab, "proof").contains("a checkpoint reached from"));
    shot(&mut tab, "checkpoint-receipt-link");
    // (Another path: a change of the fragment alone does not load the page again.)
    tab.open(&link.replace(
        &format!("/verify#{checkpoint_root}"),
        &format!("/verify?again#{}", "ef".repeat(32)),
    ));
    verdict(&mut tab);
    assert!(text_of(&mut tab, "alarms").contains("trusts a different consortium"));

    // An investment permit waiting for its approvals.
    let permit = docs.join("permit.txt");
    std::fs::write(&permit, "an investment permit").unwrap();
    let permit_id = anchor(&url, "investment-permit", &key("moea-investment"), &permit);
    tab.open(&format!("{base}/verify?id={permit_id}#{root}"));
    assert_eq!(verdict(&mut tab), "待核准 · Pending approval");
    shot(&mut tab, "pending");

    // Revoked, then unknown.
    let id = current;
    cachet(&[
        "revoke",
        "--rpc",
        &url,
        "--id",
        &id,
        "--reason",
        "fraud",
        "--json",
        "--key",
        &key("moi-land"),
    ]);
    tab.open(&format!("{base}/v/{id}#{root}"));
    assert_eq!(verdict(&mut tab), "已撤銷 · Revoked");
    shot(&mut tab, "revoked");
    tab.open(&format!("{base}/v/{}#{root}", "cd".repeat(32)));
    assert_eq!(verdict(&mut tab), "查無此證書 · Unknown certificate");
    shot(&mut tab, "unknown");

    drop(b);
    devnet.stop();
}

/// What the lying node does to `cachet_receipt` answers.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    None,
    /// The receipt's certificate record rewritten to say "active".
    ForgedStatus,
    /// A genuine receipt, for another certificate.
    OtherCertificate,
    /// A genuine receipt from another chain (the example consortium's, from the spec vectors).
    OtherChain,
    /// One byte of the genuine receipt flipped.
    FlippedByte,
}

/// A node that lies: an HTTP proxy in front of a genuine node that serves its pages and
/// answers, but rewrites receipts as `lie` says.
struct LyingNode {
    addr: String,
    lie: std::sync::Arc<std::sync::Mutex<Lie>>,
}

impl LyingNode {
    fn start(node: String, other_id: String) -> LyingNode {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let lie = std::sync::Arc::new(std::sync::Mutex::new(Lie::None));
        let shared = lie.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (node, other_id, lie) =
                    (node.clone(), other_id.clone(), *shared.lock().unwrap());
                std::thread::spawn(move || serve_lying(conn, &node, &other_id, lie));
            }
        });
        LyingNode { addr, lie }
    }

    fn set(&self, lie: Lie) {
        *self.lie.lock().unwrap() = lie;
    }
}

fn serve_lying(mut client: std::net::TcpStream, node: &str, other_id: &str, lie: Lie) {
    use std::io::Write;
    let Ok((head, body)) = read_http(&mut client) else {
        return;
    };
    // Forward as is (one request per connection).
    let mut upstream = std::net::TcpStream::connect(node).unwrap();
    let head_close = head
        .replacen("\r\n\r\n", "", 1)
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\nConnection: close\r\n\r\n";
    upstream.write_all(head_close.as_bytes()).unwrap();
    upstream.write_all(&body).unwrap();
    let Ok((reply_head, reply)) = read_http(&mut upstream) else {
        return;
    };
    let asks_receipt = String::from_utf8_lossy(&body).contains("\"cachet_receipt\"");
    let reply = if asks_receipt && lie != Lie::None {
        let mut json: Value = serde_json::from_slice(&reply).unwrap();
        let genuine = hex::decode(json["result"]["receipt"].as_str().unwrap()).unwrap();
        let lied = match lie {
            Lie::ForgedStatus => {
                let mut r = cachet_chain::receipt::Receipt::decode(&genuine).unwrap();
                if let cachet_chain::receipt::Subject::Certificate { record, .. } = &mut r.subject {
                    let mut rec: cachet_chain::state::CertificateRecord =
                        cachet_chain::state::decode_value(record).unwrap();
                    rec.status = cachet_chain::state::CertStatus::Active;
                    *record = cachet_chain::encode(&rec);
                }
                r.encode()
            }
            Lie::OtherCertificate => {
                let other =
                    cachet_tests::rpc(node, "cachet_receipt", serde_json::json!([other_id]))
                        .unwrap();
                hex::decode(other["receipt"].as_str().unwrap()).unwrap()
            }
            Lie::OtherChain => {
                let vectors: Value =
                    serde_json::from_str(include_str!("../../docs/spec/vectors/core.json"))
                        .unwrap();
                hex::decode(vectors["receipt/land_title/encoded"].as_str().unwrap()).unwrap()
            }
            Lie::FlippedByte => {
                let mut b = genuine.clone();
                let i = b.len() / 2;
                b[i] ^= 0x01;
                b
            }
            Lie::None => genuine,
        };
        json["result"]["receipt"] = hex::encode(lied).into();
        json.to_string().into_bytes()
    } else {
        reply
    };
    let status = reply_head
        .lines()
        .next()
        .unwrap_or("HTTP/1.1 200 OK")
        .to_string();
    let kept: Vec<&str> = reply_head
        .lines()
        .skip(1)
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.is_empty() && !l.starts_with("content-length:") && !l.starts_with("connection:")
        })
        .collect();
    let mut out = format!("{status}\r\n");
    for l in kept {
        out += l;
        out += "\r\n";
    }
    out += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let _ = client.write_all(out.as_bytes());
    let _ = client.write_all(&reply);
}

/// A node that lies cannot make the page say "valid": each lie is shown as not valid, with a
/// reason a citizen understands; so is a genuine receipt on a device whose clock says it is
/// older than its kind allows.
#[test]
fn a_lying_node_cannot_make_the_page_say_valid() {
    let Some(browser) = chromium() else {
        return;
    };
    let mut devnet = Devnet::start("lying-node-test");
    let dir = devnet.dir.clone();
    let url = devnet.rpc_url(2);
    let node = url.trim_start_matches("http://").to_string();
    let key = dir.join("keys/moi-land.key").display().to_string();
    let title = |name: &str| {
        let doc = dir.join(name);
        std::fs::write(&doc, format!("the title deed {name}")).unwrap();
        anchor(&url, "land-title", &key, &doc)
    };
    let revoked = title("revoked.txt");
    let other = title("other.txt");
    cachet(&[
        "revoke", "--rpc", &url, "--id", &revoked, "--reason", "fraud", "--json", "--key", &key,
    ]);
    let liar = LyingNode::start(node, other.clone());
    let host = "lying.cachet.test";
    let port = liar.addr.rsplit(':').next().unwrap().to_string();
    let b = Browser::launch(browser, &format!("MAP {host} 127.0.0.1"));
    let page = |id: &str| format!("http://{host}:{port}/verify?id={id}");

    let mut tab = b.tab();
    tab.open(&page(&revoked));
    assert_eq!(
        verdict(&mut tab),
        "已撤銷 · Revoked",
        "through an honest proxy"
    );
    for (lie, id, reason, name) in [
        (Lie::ForgedStatus, &revoked, "altered", "forged-status"),
        (
            Lie::OtherCertificate,
            &revoked,
            "different certificate",
            "other-certificate",
        ),
        (Lie::OtherChain, &revoked, "another chain", "other-chain"),
        (Lie::FlippedByte, &other, "", "flipped-byte"),
    ] {
        liar.set(lie);
        tab.open(&page(id));
        assert_eq!(verdict(&mut tab), "無效 · Not valid", "{name}");
        let why = text_of(&mut tab, "reason");
        assert!(why.contains(reason), "{name}: {why}");
        shot(&mut tab, &format!("lie-{name}"));
    }

    // A genuine receipt, on a device whose clock is two days on: too old to trust.
    liar.set(Lie::None);
    let mut late = b.tab();
    late.call(
        "Page.addScriptToEvaluateOnNewDocument",
        serde_json::json!({ "source": "{ const real = Date.now; Date.now = () => real() + 2 * 86400000; }" }),
    );
    late.open(&page(&other));
    assert_eq!(verdict(&mut late), "無效 · Not valid");
    assert!(text_of(&mut late, "reason").contains("too old"));
    shot(&mut late, "lie-stale");

    drop(b);
    devnet.stop();
}
