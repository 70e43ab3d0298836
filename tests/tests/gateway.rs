//! The agency gateway on a running devnet, as an agency's case systems call it: its OpenAPI
//! document (the repository's, checked by a standard validator), a Python script that anchors,
//! checks and revokes a land title through it, schemathesis fuzzing every endpoint from the
//! document with every answer checked against it, callers refused without their token, and
//! the audit log naming who asked for what.

use cachet_tests::{Devnet, cachet_bin, python_tools, wait_until};
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `cachet gateway`, stopped when dropped.
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A token for `name` from `cachet gateway-token`, and the `[[callers]]` entry it printed.
fn token(name: &str) -> (String, String) {
    let out = Command::new(cachet_bin())
        .args(["gateway-token", "--name", name])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let entry = stderr[stderr.find("[[callers]]").expect("the entry is printed")..].to_string();
    (token, entry)
}

/// Start the gateway for `agency` (its development key in the devnet) on node 0.
fn start_gateway(devnet: &Devnet, dir: &Path, agency: &str, callers: &str) -> Gateway {
    let key = devnet.manifest["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agency)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\nnode = \"{}\"\nkey = \"{key}\"\naudit_log = \"audit.jsonl\"\n\n{callers}",
            devnet.rpc_url(0)
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let child = Command::new(cachet_bin())
        .args(["gateway", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let gateway = Gateway { child, addr };
    assert!(
        wait_until(Duration::from_secs(30), || TcpStream::connect(
            &gateway.addr
        )
        .is_ok()),
        "the gateway did not listen: {}",
        std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
    );
    gateway
}

/// One request to the gateway: the status and the JSON body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let (status, _, body) = cachet_tests::http_request(addr, method, path, &headers, body).unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn case_systems_anchor_and_revoke_through_the_gateway_as_its_openapi_document_says() {
    let tools = python_tools();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let document = repo.join("docs/openapi.json");
    succeeds(
        Command::new(tools.join("openapi-spec-validator")).arg(&document),
        "openapi-spec-validator",
    );

    let devnet = Devnet::start("gateway");
    let dir = tempfile_dir("gateway");
    let (land_token, land) = token("land-system");
    let (fuzz_token, fuzz) = token("schemathesis");
    let gateway = start_gateway(&devnet, &dir, "moi-land", &format!("{land}\n{fuzz}"));
    let addr = gateway.addr.clone();

    // The document it serves is the repository's.
    let (status, served) = http(&addr, "GET", "/openapi.json", None, "");
    assert_eq!(status, 200);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&document).unwrap()).unwrap();
    assert_eq!(served, kept);

    // Without a known token nothing is done.
    let anchor = format!(
        "{{\"kind\":\"land-title\",\"document_sha256\":\"{}\",\"parcel\":\"7-1\"}}",
        "ab".repeat(32)
    );
    for token in [None, Some("not-a-token")] {
        let (status, body) = http(&addr, "POST", "/v1/anchors", token, &anchor);
        assert_eq!((status, body["code"].as_i64()), (401, Some(4001)), "{body}");
    }
    // A body of another form, a bad id, an unknown path, another method: each its code.
    let t = Some(land_token.as_str());
    for (method, path, body, want) in [
        (
            "POST",
            "/v1/anchors",
            "{\"kind\":\"land-title\"}",
            (400, 4002),
        ),
        (
            "POST",
            "/v1/anchors",
            &anchor.replace("7-1", "7-1\",\"x\":\"1"),
            (400, 4002),
        ),
        ("GET", "/v1/certificates/xyz", "", (400, 4002)),
        ("GET", "/v1/nothing", "", (404, 4003)),
        ("DELETE", "/v1/anchors", "", (405, 4004)),
        ("POST", "/v1/anchors", &" ".repeat(1_100_000), (413, 4005)),
    ] {
        let (status, answer) = http(&addr, method, path, t, body);
        assert_eq!(
            (status, answer["code"].as_i64()),
            (want.0, Some(want.1)),
            "{method} {path}: {answer}"
        );
    }
    // A kind this agency may not issue: the node's refusal, with its code.
    let permit = anchor.replace("land-title", "reward-order");
    let (status, answer) = http(&addr, "POST", "/v1/anchors", t, &permit);
    assert_eq!(
        (status, answer["code"].as_i64()),
        (422, Some(1201)),
        "{answer}"
    );
    // A kind nobody registered, by name and by number: refused before anything is signed.
    for unknown in ["construction-firm-certificate", "kind-7"] {
        let body = anchor.replace("land-title", unknown);
        let (status, answer) = http(&addr, "POST", "/v1/anchors", t, &body);
        assert_eq!(
            (status, answer["code"].as_i64()),
            (422, Some(1315)),
            "{unknown}: {answer}"
        );
    }

    // A case system in Python, with requests and the documented endpoints only.
    let script = repo.join("tests/gateway/anchor_check_revoke.py");
    let out = succeeds(
        Command::new(tools.join("python"))
            .arg(&script)
            .arg(format!("http://{addr}"))
            .arg(&land_token),
        "the case system's script",
    );
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        done["second_revoke"]["code"].as_i64().map(|c| c / 100),
        Some(13)
    );

    // schemathesis, from the served document: every answer must match it.
    let report = succeeds(
        Command::new(tools.join("schemathesis"))
            .current_dir(&dir)
            .args(["run", &format!("http://{addr}/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {fuzz_token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,negative_data_rejection",
            ])
            .args(["--max-examples", "40", "--workers", "1", "--seed", "7"])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .env("SCHEMATHESIS_TELEMETRY", "false"),
        "schemathesis (failures found)",
    );
    // What it covered, for the test's log.
    if let Some(summary) = report.find("SUMMARY") {
        eprintln!("schemathesis {}", &report[summary..]);
    }

    // Every call is in the audit log, with who asked.
    let audit: Vec<Value> = std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |caller: &str| audit.iter().filter(|e| e["caller"] == caller).count();
    assert!(
        by("schemathesis") > 50,
        "{} calls by schemathesis",
        by("schemathesis")
    );
    let anchored = audit
        .iter()
        .position(|e| {
            e["caller"] == "land-system" && e["status"] == 202 && e["path"] == "/v1/anchors"
        })
        .expect("the script's anchor is logged");
    // Received (before it was signed), then answered.
    assert_eq!(audit[anchored - 1]["phase"], "received");
    assert_eq!(audit[anchored - 1]["path"], "/v1/anchors");
    let anchored = &audit[anchored];
    assert_eq!(anchored["phase"], "answered");
    assert_eq!(anchored["certificate"], done["certificate"]);
    assert!(anchored["submission"].is_string());
    assert!(
        audit
            .iter()
            .any(|e| e["caller"].is_null() && e["status"] == 401)
    );
    drop(gateway);

    // Reward orders in a Merkle batch, through the personnel agency's gateway; one entry
    // revoked with the proof the batch's answer gave.
    let dir2 = tempfile_dir("gateway-batch");
    let (token, entry) = token("personnel-system");
    let gateway = start_gateway(&devnet, &dir2, "dgpa-personnel", &entry);
    let t = Some(token.as_str());
    let digests: Vec<String> = (1..=5u8).map(|i| format!("{i:02x}").repeat(32)).collect();
    let (status, batch) = http(
        &gateway.addr,
        "POST",
        "/v1/batches",
        t,
        &serde_json::json!({"kind": "reward-order", "documents_sha256": digests}).to_string(),
    );
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["leaf_count"], 5);
    committed(&gateway.addr, t, &batch["submission"]);
    // The first entry's receipt, verified offline against the devnet's genesis alone.
    let first = &batch["entries"][0];
    let entry = serde_json::json!({
        "commitment": first["commitment"],
        "index": first["index"],
        "siblings": first["siblings"],
    });
    let receipt_path = format!("/v1/batches/{}/receipt", batch["batch"].as_str().unwrap());
    let (status, receipt) = http(&gateway.addr, "POST", &receipt_path, t, &entry.to_string());
    assert_eq!(status, 200, "{receipt}");
    cachet_tests::verified_receipt(&receipt, &devnet.dir);
    let third = &batch["entries"][2];
    assert_eq!(third["fingerprint"]["digest"], digests[2]);
    let revoke = serde_json::json!({
        "commitment": third["commitment"],
        "index": third["index"],
        "siblings": third["siblings"],
        "reason": "cancelled",
    });
    let path = format!(
        "/v1/batches/{}/revoke-entry",
        batch["batch"].as_str().unwrap()
    );
    let (status, revoked) = http(&gateway.addr, "POST", &path, t, &revoke.to_string());
    assert_eq!(status, 202, "{revoked}");
    committed(&gateway.addr, t, &revoked["submission"]);
    // A proof of another entry's place does not revoke this one.
    let mut wrong = revoke.clone();
    wrong["commitment"] = batch["entries"][3]["commitment"].clone();
    let (status, refused) = http(&gateway.addr, "POST", &path, t, &wrong.to_string());
    assert_eq!(
        (status, refused["code"].as_i64()),
        (422, Some(1323)),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// Run `command`, which must succeed; its standard output.
fn succeeds(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Wait until the submission `id` is committed, through the gateway at `addr`.
fn committed(addr: &str, token: Option<&str>, id: &Value) {
    let path = format!("/v1/submissions/{}", id.as_str().expect("a submission id"));
    let mut last = Value::Null;
    let done = wait_until(Duration::from_secs(60), || {
        last = http(addr, "GET", &path, token, "").1;
        last["status"] == "committed"
    });
    assert!(done, "{path}: {last}");
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cachet-{name}-gw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
