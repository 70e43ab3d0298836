//! The verify page in a real browser (headless Chromium, driven over the DevTools protocol),
//! served by a devnet node under a host name that is not `localhost` — plain HTTP at such an
//! origin is not a secure context, so nothing the page needs may depend on one (WebCrypto
//! does). The page verifies every receipt itself against its compiled trust root: a title and a
//! batch entry by id and by document, a wrong document, a revoked and an unknown certificate, a
//! link that trusts another consortium, and an agency's static copy (`cachet verify-page`)
//! opened from `file://` that fetches receipts cross-origin. Screenshots of each verdict are
//! kept under `target/test-artifacts/` (or `$CACHET_ARTIFACTS`).

use cachet_tests::browser::{Browser, Tab, artifacts_dir, chromium};
use cachet_tests::{Devnet, cachet_bin};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The name the browser reaches the node by (mapped to 127.0.0.1 for the browser only).
const HOST: &str = "verify.cachet.test";

fn cachet(args: &[&str]) -> Value {
    let out = Command::new(cachet_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cachet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
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
    let mut devnet = Devnet::start("browser-test");
    let dir = devnet.dir.clone();
    let url = devnet.rpc_url(1);
    let port = url.rsplit(':').next().unwrap().to_string();
    let base = format!("http://{HOST}:{port}");
    let key = |a: &str| dir.join(format!("keys/{a}.key")).display().to_string();
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("orders")).unwrap();

    let deed = docs.join("deed.txt");
    std::fs::write(&deed, "land title for the browser test").unwrap();
    let title = cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--kind",
        "land-title",
        "--json",
        "--key",
        &key("moi-land"),
        "--file",
        deed.to_str().unwrap(),
    ]);
    let id = title["id"].as_str().unwrap().to_string();
    let deed_certificate = docs.join("deed.txt.cachet.json");
    for i in 0..5 {
        std::fs::write(
            docs.join(format!("orders/order-{i}.txt")),
            format!("reward order {i}"),
        )
        .unwrap();
    }
    cachet(&[
        "anchor",
        "--rpc",
        &url,
        "--kind",
        "reward-order",
        "--json",
        "--key",
        &key("dgpa-personnel"),
        "--file",
        docs.join("orders").to_str().unwrap(),
    ]);
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

    // Revoked, then unknown.
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
