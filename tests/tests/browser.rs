//! The verify page in a real browser (headless Chromium from Debian's `chromium` package, which
//! `.ci/run` installs): a link QR's target shows the verdict in plain language. A screenshot is
//! kept under `target/test-artifacts/` (or `$CACHET_ARTIFACTS`).

use cachet_tests::{Devnet, cachet_bin};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new("which")
                .arg(b)
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn render(browser: &str, url: &str, screenshot: Option<&PathBuf>) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=8000",
        "--window-size=900,900",
    ]);
    match screenshot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("browser runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_verify_page_shows_verdicts_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (see .ci/run)"
        );
        eprintln!(
            "skipping the browser test: no chromium on this machine (apt-get install chromium)"
        );
        return;
    };
    let mut devnet = Devnet::start("browser-test");
    let dir = devnet.dir.clone();
    let url = devnet.rpc_url(1);
    let key = dir.join("keys/moi-land.key");
    let doc = dir.join("deed.txt");
    std::fs::write(&doc, "land title for the browser test").unwrap();
    let out = Command::new(cachet_bin())
        .args([
            "anchor",
            "--rpc",
            &url,
            "--kind",
            "land-title",
            "--json",
            "--key",
        ])
        .arg(&key)
        .arg("--file")
        .arg(&doc)
        .output()
        .unwrap();
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let dom = render(browser, &format!("{url}/v/{id}"), None);
    assert!(dom.contains("有效 · Valid"), "verdict not shown:\n{dom}");
    assert!(
        dom.contains("moi-land") && dom.contains("數位權狀 Land title"),
        "{dom}"
    );
    let artifacts = std::env::var_os("CACHET_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            cachet_bin()
                .parent()
                .and_then(|p| p.parent())
                .unwrap()
                .join("test-artifacts")
        });
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("verify-page.png");
    render(browser, &format!("{url}/v/{id}"), Some(&shot));
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );

    let out = Command::new(cachet_bin())
        .args([
            "revoke", "--rpc", &url, "--id", &id, "--reason", "fraud", "--json", "--key",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let dom = render(browser, &format!("{url}/v/{id}"), None);
    assert!(
        dom.contains("已撤銷 · Revoked"),
        "revocation not shown:\n{dom}"
    );
    let unknown = render(browser, &format!("{url}/v/{}", "cd".repeat(32)), None);
    assert!(
        unknown.contains("查無此證書 · Unknown certificate"),
        "{unknown}"
    );

    devnet.stop();
}
