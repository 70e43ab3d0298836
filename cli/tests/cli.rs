//! The `cachet` binary, run as a separate process.

use std::process::Command;

fn cachet(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args(args)
        .output()
        .expect("cachet runs");
    assert!(
        out.status.success(),
        "cachet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn demo_anchors_and_verifies_every_kind() {
    let out = cachet(&["demo", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["height"], 3);
    let verdicts: Vec<(String, String, bool)> = report["certificates"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
                c["document_matches"].as_bool().unwrap(),
            )
        })
        .collect();
    let expect = [
        ("land title, before sale", "superseded", true),
        ("land title, after sale", "valid", true),
        ("investment permit", "valid", true),
        ("copyright deposit", "valid", true),
        ("licence", "valid", true),
        ("reward order #0", "valid", true),
        ("reward order #417", "revoked", true),
        ("never anchored", "unknown", false),
    ];
    let expect: Vec<(String, String, bool)> = expect
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
    assert_eq!(verdicts, expect);
}

#[test]
fn keygen_writes_a_private_key_file_that_reads_back() {
    let dir = std::env::temp_dir().join(format!("cachet-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agency.key");
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let printed = String::from_utf8(cachet(&["keygen", "--out", p]).stdout).unwrap();
    let read = String::from_utf8(cachet(&["pubkey", "--key", p]).stdout).unwrap();
    assert_eq!(printed, read);
    assert!(printed.starts_with("ed25519:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args(["keygen", "--out", p])
        .output()
        .unwrap();
    assert!(!again.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `cachet` with `args` and the environment `env`, stdin not a terminal: its output.
fn cachet_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cachet"));
    command.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("cachet runs")
}

/// A key sealed under a passphrase (at creation, or later in place) reads back only with it;
/// without one, and with no terminal to ask at, the command says where to put it.
#[test]
fn a_sealed_key_file_opens_only_with_its_passphrase() {
    let dir = std::env::temp_dir().join(format!("cachet-cli-seal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (right, wrong, short) = (dir.join("right"), dir.join("wrong"), dir.join("short"));
    std::fs::write(&right, "a long enough passphrase\n").unwrap();
    std::fs::write(&wrong, "another long passphrase\n").unwrap();
    std::fs::write(&short, "too short\n").unwrap();
    let env = "CACHET_PASSPHRASE_FILE";
    let sealed = dir.join("sealed.key");
    let s = sealed.to_str().unwrap();
    let made = cachet_env(&["keygen", "--seal", "--out", s], &[(env, &right)]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let text = std::fs::read_to_string(&sealed).unwrap();
    assert!(
        text.contains("\"sealed\"") && !text.contains("\"secret\""),
        "{text}"
    );
    let read = cachet_env(&["pubkey", "--key", s], &[(env, &right)]);
    assert_eq!(read.stdout, made.stdout, "the same key reads back");
    let refused = cachet_env(&["pubkey", "--key", s], &[(env, &wrong)]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("wrong passphrase"));
    let unasked = cachet_env(&["pubkey", "--key", s], &[]);
    assert!(!unasked.status.success());
    assert!(String::from_utf8_lossy(&unasked.stderr).contains("CACHET_PASSPHRASE_FILE"));
    let weak = cachet_env(
        &[
            "keygen",
            "--seal",
            "--out",
            dir.join("weak.key").to_str().unwrap(),
        ],
        &[(env, &short)],
    );
    assert!(!weak.status.success(), "a short passphrase is refused");

    // A key in the clear, sealed in place: same public key, no secret left in the file.
    let clear = dir.join("clear.key");
    let c = clear.to_str().unwrap();
    let public = cachet(&["keygen", "--out", c]).stdout;
    let resealed = cachet_env(&["seal-key", "--key", c], &[(env, &right)]);
    assert!(
        resealed.status.success(),
        "{}",
        String::from_utf8_lossy(&resealed.stderr)
    );
    assert_eq!(resealed.stdout, public);
    assert!(
        !std::fs::read_to_string(&clear)
            .unwrap()
            .contains("\"secret\"")
    );
    assert_eq!(
        cachet_env(&["pubkey", "--key", c], &[(env, &right)]).stdout,
        public
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&clear).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_example_genesis_checks_and_matches_the_committed_file() {
    let printed = String::from_utf8(cachet(&["genesis", "example"]).stdout).unwrap();
    let committed = include_str!("../../genesis/example/genesis.json");
    assert_eq!(
        printed.trim(),
        committed.trim(),
        "genesis/example/genesis.json is out of date: regenerate it with `cachet genesis example`"
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../genesis/example/genesis.json"
    );
    let summary = String::from_utf8(cachet(&["genesis", "check", path]).stdout).unwrap();
    assert!(summary.contains("cachet-example"), "{summary}");
    assert!(summary.contains("validators   4"), "{summary}");
}

#[test]
fn genesis_build_makes_a_valid_genesis_from_key_files() {
    let dir = std::env::temp_dir().join(format!("cachet-genesis-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = |name: &str| {
        let p = dir.join(format!("{name}.key"));
        cachet(&["keygen", "--out", p.to_str().unwrap()]);
        p.to_str().unwrap().to_string()
    };
    let (a, b, v1, v2) = (key("a"), key("b"), key("v1"), key("v2"));
    let out = cachet(&[
        "genesis",
        "build",
        "--chain-id",
        "test-chain",
        "--agency",
        &format!("land-office={a}:land-title"),
        "--agency",
        &format!("personnel={b}:reward-order"),
        "--validator",
        &format!("land-office={v1}"),
        "--validator",
        &format!("personnel={v2}:2"),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let path = dir.join("genesis.json");
    std::fs::write(&path, &text).unwrap();
    let summary =
        String::from_utf8(cachet(&["genesis", "check", path.to_str().unwrap()]).stdout).unwrap();
    assert!(
        summary.contains("test-chain") && summary.contains("validators   2"),
        "{summary}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc["policies"]["land-title"]["accreditors"],
        serde_json::json!(["land-office"])
    );
    // A validator naming an unknown agency is refused.
    let bad = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args([
            "genesis",
            "build",
            "--chain-id",
            "x",
            "--agency",
            &format!("a={a}"),
            "--validator",
            &format!("ghost={v1}"),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `cachet --version` writes to stderr when jemalloc is asked to print its options and
/// statistics at exit (`MALLOC_CONF=stats_print:true`), with `env` set as well.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn version_with_jemalloc_report(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .arg("--version")
        .env("MALLOC_CONF", "stats_print:true")
        .envs(env.iter().copied())
        .output()
        .expect("cachet runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The binary carries the allocator settings of `.cargo/config.toml`: freed pages are returned
/// within a second, by jemalloc's background threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn jemalloc_returns_freed_pages_promptly() {
    let stderr = version_with_jemalloc_report(&[]);
    let option = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("opt.{name}: ")))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("jemalloc printed no opt.{name}"))
            .to_string()
    };
    assert_eq!(option("dirty_decay_ms"), "1000");
    assert_eq!(option("background_thread"), "true");
}

/// RocksDB's C++ allocates through libstdc++'s `operator new`, which calls `malloc` in
/// whatever object the loader binds it to: jemalloc's, defined in the executable, not glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_process_allocates_through_jemalloc_in_cpp_too() {
    let stderr = version_with_jemalloc_report(&[("LD_DEBUG", "bindings")]);
    // jemalloc read its configuration and printed its statistics at exit.
    assert!(
        stderr.contains("Begin jemalloc statistics"),
        "no jemalloc statistics"
    );
    let binding = |symbol: &str| {
        stderr
            .lines()
            .find(|l| l.contains("binding file") && l.contains("libstdc++") && l.contains(symbol))
            .unwrap_or_else(|| panic!("no binding of libstdc++'s {symbol} in the loader's log"))
            .to_string()
    };
    for symbol in ["`malloc'", "`free'"] {
        let line = binding(symbol);
        let target = line
            .split(" to ")
            .nth(1)
            .expect("a binding names its target");
        assert!(
            !target.contains("libc.so") && target.contains("cachet"),
            "libstdc++'s {symbol} is bound to glibc: {line}"
        );
    }
}

/// The pinned land-title receipt of the spec's vectors was committed at the example genesis's
/// time (2026-01-01), and a land title's receipt is trusted for a day: on any later clock it
/// is too old, and `verify` fails closed with exit code 8 ("stale"), not with its verdict.
#[test]
fn a_receipt_older_than_its_kinds_maximum_age_exits_8() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/spec/vectors/core.json")).unwrap();
    let receipt = hex::decode(vectors["receipt/land_title/encoded"].as_str().unwrap()).unwrap();
    let path = std::env::temp_dir().join(format!("cachet-stale-{}.receipt", std::process::id()));
    std::fs::write(&path, receipt).unwrap();
    let genesis = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../genesis/example/genesis.json"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args([
            "verify",
            "--receipt",
            path.to_str().unwrap(),
            "--trust",
            genesis,
        ])
        .arg("--json")
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["verdict"], "stale", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("land-title"), "{v}");
    assert_eq!(out.status.code(), Some(8), "{v}");
}

/// A tool from Debian's packages, or `None`; in CI (`CI` set) a missing tool is a failure.
fn tool(name: &str, package: &str) -> Option<String> {
    let found = Command::new("which")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install {package} (see scripts/install-deps)"
    );
    if !found {
        eprintln!("skipping: no {name} on this machine (apt-get install {package})");
    }
    found.then(|| name.to_string())
}

/// A receipt link QR survives what a phone camera does to it: read by an independent decoder
/// (zbar) after scaling down and up, blurring and JPEG compression, and still verifies.
#[test]
fn a_receipt_qr_reads_back_through_zbar_after_scaling_blur_and_jpeg() {
    let (Some(zbarimg), Some(convert)) = (
        tool("zbarimg", "zbar-tools"),
        tool("convert", "imagemagick"),
    ) else {
        return;
    };
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/spec/vectors/core.json")).unwrap();
    let receipt = hex::decode(vectors["receipt/land_title/encoded"].as_str().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("cachet-qr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let receipt_path = dir.join("title.receipt");
    std::fs::write(&receipt_path, &receipt).unwrap();
    let genesis = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../genesis/example/genesis.json"
    );
    let png = dir.join("title.png");
    cachet(&[
        "qr",
        "--receipt",
        receipt_path.to_str().unwrap(),
        "--page",
        "http://verify.example.gov.tw/verify",
        "--trust",
        genesis,
        "--module-px",
        "6",
        "--out",
        png.to_str().unwrap(),
    ]);
    let text = String::from_utf8(cachet(&["qr", "--read", png.to_str().unwrap()]).stdout).unwrap();
    let text = text.trim();
    assert!(
        text.starts_with("http://verify.example.gov.tw/verify#"),
        "{text}"
    );
    for (name, ops) in [
        ("half", vec!["-resize", "50%"]),
        ("scaled-up-blurred", vec!["-resize", "170%", "-blur", "0x2"]),
        ("jpeg", vec!["-blur", "0x1", "-quality", "35"]),
        ("rotated", vec!["-rotate", "7", "-quality", "60"]),
    ] {
        let out = dir.join(format!("{name}.jpg"));
        let status = Command::new(&convert)
            .arg(&png)
            .args(&ops)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "convert {ops:?}");
        let read = Command::new(&zbarimg)
            .args(["--raw", "-q", "-Sbinary"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read.stdout).trim(),
            text,
            "zbar read {name} differently"
        );
    }
    // What the camera read verifies (as too old: the vector is from the genesis day).
    let out = Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args([
            "verify",
            "--qr",
            png.to_str().unwrap(),
            "--trust",
            genesis,
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
