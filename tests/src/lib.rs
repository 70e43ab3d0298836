//! `cachet-tests`: a harness for cluster tests — real `cachet start` processes on 127.0.0.1
//! that a test can kill (`SIGKILL`), stop and restart, with a small blocking JSON-RPC client;
//! and the same consortium in Docker containers ([`containers`]), whose network a test can cut.
//!
//! The `cachet` binary is the one `cargo test --workspace` builds next to the test executable
//! (`target/<profile>/cachet`). Cluster tests run one at a time (they share two cores), and every
//! wait is bounded.

use cachet_chain::tx::Transaction;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub mod browser;
pub mod containers;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The `cachet` binary built alongside this test.
pub fn cachet_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = dir.join("cachet");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary)",
        bin.display()
    );
    bin
}

/// The Python tools the tests run (schemathesis, openapi-spec-validator, and an interpreter
/// with `requests`): `bin/` of the virtual environment `scripts/install-deps --tests` makes,
/// at `$CACHET_PYTHON_VENV` or `~/.cache/cachet/python`. A test that needs them fails, saying
/// so, when they are missing.
pub fn python_tools() -> PathBuf {
    let venv = std::env::var_os("CACHET_PYTHON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cachet/python")))
        .expect("HOME or CACHET_PYTHON_VENV is set");
    let bin = venv.join("bin");
    for tool in ["python", "schemathesis", "openapi-spec-validator"] {
        assert!(
            bin.join(tool).exists(),
            "{} is missing: run scripts/install-deps --tests",
            bin.join(tool).display()
        );
    }
    bin
}

/// Make every block at a multiple of `interval` a checkpoint in the genesis file a devnet in
/// `dir` will start from (see [`Devnet::start_prepared`]).
pub fn set_checkpoint_interval(dir: &Path, interval: u64) {
    let path = dir.join("genesis.json");
    let mut genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("genesis file"))
            .expect("genesis JSON");
    genesis["checkpoint_interval"] = json!(interval);
    std::fs::write(&path, genesis.to_string()).expect("genesis file written");
}

/// An error answer from a node's RPC.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Stable code.
    pub code: i64,
    /// Stable name.
    pub name: String,
    /// Message.
    pub message: String,
}

/// One JSON-RPC call over HTTP/1.1 to `addr` (`127.0.0.1:port`), with a 10 s timeout.
pub fn rpc(addr: &str, method: &str, params: Value) -> Result<Value, RpcError> {
    let io = |e: std::io::Error| RpcError {
        code: -1,
        name: "io".into(),
        message: e.to_string(),
    };
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(io)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io)?;
    let text = String::from_utf8_lossy(&resp);
    let json_start = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(0);
    let v: Value = serde_json::from_str(text[json_start..].trim()).map_err(|e| RpcError {
        code: -1,
        name: "bad_response".into(),
        message: format!("{e}: {text}"),
    })?;
    if let Some(err) = v.get("error") {
        return Err(RpcError {
            code: err["code"].as_i64().unwrap_or(0),
            name: err["data"]["name"].as_str().unwrap_or_default().to_string(),
            message: err["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    Ok(v["result"].clone())
}

/// The head of an HTTP/1.1 message, up to and with its blank line.
pub fn read_http_head(s: &mut impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// One HTTP/1.1 message: its head and its `Content-Length` body (the connection may stay open).
pub fn read_http(s: &mut impl Read) -> std::io::Result<(String, Vec<u8>)> {
    let head = read_http_head(s)?;
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body)?;
    Ok((head, body))
}

/// One HTTP/1.1 GET of `path` from `addr` (`127.0.0.1:port`), with a 10 s timeout: the status,
/// the content type and the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    http_request(addr, "GET", path, &[], "")
}

/// One HTTP/1.1 request to `addr` (`127.0.0.1:port`) with these extra `headers` and `body`, with
/// a 10 s timeout: the status, the content type and the body.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok((status, content_type, body.to_string()))
}

/// The samples of an OpenMetrics text, by series (`name{labels}`); comments left out.
pub fn metric_samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A `cachet_receipt` answer's receipt, verified offline against the genesis file in `dir`
/// alone (as of a second after its block): the receipt, for more checks.
pub fn verified_receipt(answer: &Value, dir: &Path) -> cachet_chain::receipt::Receipt {
    let receipt = cachet_chain::receipt::Receipt::decode(
        &hex::decode(answer["receipt"].as_str().expect("a receipt")).expect("hex"),
    )
    .expect("a receipt decodes");
    let genesis = cachet_chain::genesis::GenesisDoc::from_json(
        &std::fs::read_to_string(dir.join("genesis.json")).expect("genesis file"),
    )
    .expect("genesis");
    let trust = cachet_chain::trust::Trust::from_genesis(&genesis).expect("trust");
    let v =
        cachet_chain::receipt::verify(&receipt, &trust, receipt.header.time.plus_ms(1000), None)
            .expect("the receipt verifies");
    assert_eq!(v.verdict, cachet_chain::verdict::Verdict::Valid);
    receipt
}

/// Poll `f` every 100 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A SoftHSM2 token of its own, in a directory of its own: an HSM for tests. Commands that
/// use it get its configuration through [`SoftHsm::env`].
pub struct SoftHsm {
    /// Its directory (configuration and token files).
    pub dir: PathBuf,
    /// The PKCS#11 module to load.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN.
    pub pin: String,
}

impl SoftHsm {
    /// A fresh token named `name`. Fails when SoftHSM2 is missing: `scripts/install-deps
    /// --tests` installs it.
    pub fn new(name: &str) -> SoftHsm {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is not installed: run scripts/install-deps --tests");
        let dir = std::env::temp_dir().join(format!("cachet-hsm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).expect("token directory");
        std::fs::write(
            dir.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .expect("SoftHSM2 configuration");
        let hsm = SoftHsm {
            dir,
            module,
            token: name.to_string(),
            pin: "246810".to_string(),
        };
        let made = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", name, "--pin", &hsm.pin])
            .args(["--so-pin", "13579111"])
            .env("SOFTHSM2_CONF", hsm.dir.join("softhsm2.conf"))
            .output()
            .expect("softhsm2-util runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        hsm
    }

    /// The environment a process needs to reach this token.
    pub fn env(&self) -> (&'static str, PathBuf) {
        ("SOFTHSM2_CONF", self.dir.join("softhsm2.conf"))
    }

    /// The pkcs11: URI of the key labelled `object`, with `pin` as its PIN.
    pub fn uri_with_pin(&self, object: &str, pin: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?module-path={}&pin-value={pin}",
            self.token,
            self.module.display()
        )
    }

    /// The pkcs11: URI of the key labelled `object`.
    pub fn uri(&self, object: &str) -> String {
        self.uri_with_pin(object, &self.pin)
    }
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `cachet devnet` (the embedded default), as a user starts it.
pub struct Devnet {
    /// Its directory.
    pub dir: PathBuf,
    /// `devnet.json`.
    pub manifest: serde_json::Value,
    child: Child,
}

impl Devnet {
    /// Start `cachet devnet` in a fresh directory named after `name` and wait for its manifest.
    pub fn start(name: &str) -> Devnet {
        Devnet::start_prepared(name, |_| {})
    }

    /// [`Devnet::start`], after `prepare` has changed what `cachet devnet --no-start` wrote in
    /// the devnet's directory (its genesis file, say): the devnet then starts from it.
    pub fn start_prepared(name: &str, prepare: impl FnOnce(&Path)) -> Devnet {
        Devnet::start_prepared_with_env(name, prepare, &[])
    }

    /// [`Devnet::start_prepared`], with `env` set for the devnet and its nodes (a token's
    /// configuration, say).
    pub fn start_prepared_with_env(
        name: &str,
        prepare: impl FnOnce(&Path),
        env: &[(&str, &Path)],
    ) -> Devnet {
        let dir = std::env::temp_dir().join(format!("cachet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("devnet directory");
        let written = Command::new(cachet_bin())
            .args(["devnet", "--no-start", "--dir"])
            .arg(&dir)
            .output()
            .expect("cachet devnet --no-start runs");
        assert!(
            written.status.success(),
            "devnet --no-start: {}",
            String::from_utf8_lossy(&written.stderr)
        );
        prepare(&dir);
        let log = dir.join("devnet.log");
        let out = std::fs::File::create(&log).expect("devnet log");
        let mut child = Command::new(cachet_bin())
            .args(["devnet", "--dir"])
            .arg(&dir)
            .envs(env.iter().copied())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("devnet starts");
        let path = dir.join("devnet.json");
        // The devnet bounds its own start and exits with the reason if it cannot.
        let up = wait_until(Duration::from_secs(600), || {
            path.exists() || matches!(child.try_wait(), Ok(Some(_)))
        });
        assert!(
            up && path.exists(),
            "the devnet did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let manifest =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("manifest")).expect("JSON");
        Devnet {
            dir,
            manifest,
            child,
        }
    }

    /// The RPC URL of node `i`.
    pub fn rpc_url(&self, i: usize) -> String {
        self.manifest["nodes"][i]["rpc"]
            .as_str()
            .expect("rpc url")
            .to_string()
    }

    /// Stop it with SIGTERM, as Ctrl-C would, and wait until it has exited.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(
            wait_until(Duration::from_secs(20), || matches!(
                self.child.try_wait(),
                Ok(Some(_))
            )),
            "devnet did not stop"
        );
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
        if std::env::var_os("CACHET_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A node of the cluster.
pub struct NodeProc {
    /// Its name (the agency that runs it).
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// `127.0.0.1:port` of its RPC.
    pub rpc: String,
    child: Option<Child>,
}

/// A consortium of `cachet start` processes.
pub struct Cluster {
    /// Working directory (removed on drop unless `CACHET_KEEP_TEST_DIR` is set).
    pub dir: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeProc>,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Write a devnet of `validators` nodes (not started).
    pub fn new(name: &str, validators: usize) -> Cluster {
        Self::with_spares(name, validators, 0)
    }

    /// Write a devnet of `validators` nodes plus `spares` nodes that may join by governance
    /// (they come last in `nodes`).
    pub fn with_spares(name: &str, validators: usize, spares: usize) -> Cluster {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = std::env::temp_dir().join(format!("cachet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(cachet_bin())
            .args([
                "devnet",
                "--no-start",
                "--validators",
                &validators.to_string(),
                "--spares",
                &spares.to_string(),
                "--dir",
            ])
            .arg(&dir)
            .output()
            .expect("cachet devnet runs");
        assert!(
            out.status.success(),
            "devnet --no-start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let config = PathBuf::from(line.trim());
                let cfg: toml::Value =
                    toml::from_str(&std::fs::read_to_string(&config).expect("config"))
                        .expect("toml");
                NodeProc {
                    name: cfg["moniker"].as_str().expect("moniker").to_string(),
                    rpc: cfg["rpc"]["listen"].as_str().expect("rpc").to_string(),
                    config,
                    child: None,
                }
            })
            .collect();
        Cluster {
            dir,
            nodes,
            _serial: serial,
        }
    }

    /// Make node `i` an equivocating validator (needs a binary built with `--all-features`).
    pub fn make_byzantine(&mut self, i: usize) {
        self.misbehave(i, "equivocate_votes = true");
    }

    /// Run node `i`'s clock `ms` milliseconds ahead of the machine's (negative: behind; needs a
    /// binary built with `--all-features`).
    pub fn shift_clock(&mut self, i: usize, ms: i64) {
        self.misbehave(i, &format!("clock_offset_ms = {ms}"));
    }

    /// Add `setting` to node `i`'s `[byzantine]` section, the last of its config file.
    /// Set `key` of `[section]` in node `i`'s config file to `value` (before it starts).
    pub fn configure(&mut self, i: usize, section: &str, key: &str, value: impl Into<toml::Value>) {
        let path = &self.nodes[i].config;
        let mut config: toml::Table =
            toml::from_str(&std::fs::read_to_string(path).expect("config")).expect("TOML");
        let table = config
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("a table");
        table.insert(key.into(), value.into());
        std::fs::write(path, toml::to_string(&config).expect("TOML")).expect("config");
    }

    fn misbehave(&mut self, i: usize, setting: &str) {
        let path = &self.nodes[i].config;
        let mut text = std::fs::read_to_string(path).expect("config");
        if !text.contains("\n[byzantine]\n") {
            text.push_str("\n[byzantine]\n");
        }
        text.push_str(setting);
        text.push('\n');
        std::fs::write(path, text).expect("config");
    }

    /// Start node `i`.
    pub fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} is running", node.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.config.with_file_name("node.log"))
            .expect("log file");
        let child = Command::new(cachet_bin())
            .args(["start", "--config"])
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cachet start");
        node.child = Some(child);
    }

    /// Start nodes `0..n` and wait until each serves RPC.
    pub fn start_first(&mut self, n: usize) {
        for i in 0..n {
            self.start(i);
        }
        for i in 0..n {
            self.wait_serving(i);
        }
    }

    /// Start every node and wait until each serves RPC.
    pub fn start_all(&mut self) {
        self.start_first(self.nodes.len());
    }

    /// Kill node `i` with SIGKILL, as a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Is node `i` running?
    pub fn running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The lowest height every running node has reached.
    pub fn min_height(&mut self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .filter_map(|i| self.height(i))
            .min()
            .unwrap_or(0)
    }
}

/// A consortium's nodes, by index: their names, logs and JSON-RPC. What the process and the
/// container harnesses share.
pub trait Nodes {
    /// How many nodes there are.
    fn count(&self) -> usize;

    /// Node `i`'s name (the agency that runs it).
    fn name(&self, i: usize) -> &str;

    /// The last lines of node `i`'s log.
    fn log_tail(&self, i: usize) -> String;

    /// `host:port` of node `i`'s RPC.
    fn rpc_addr(&self, i: usize) -> &str;

    /// Wait until node `i` serves RPC.
    fn wait_serving(&self, i: usize) {
        assert!(
            wait_until(Duration::from_secs(60), || self.status(i).is_some()),
            "node {} did not start; log:\n{}",
            self.name(i),
            self.log_tail(i)
        );
    }

    /// Every node's height and log tail, for failure messages.
    fn diagnose(&self) -> String {
        (0..self.count())
            .map(|i| {
                let (name, height) = (self.name(i), self.height(i));
                format!("== {name} height {height:?}\n{}", self.log_tail(i))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Call a method on node `i`.
    fn call(&self, i: usize, method: &str, params: Value) -> Result<Value, RpcError> {
        rpc(self.rpc_addr(i), method, params)
    }

    /// Node `i`'s metrics (`GET /metrics`), by series; panics if it does not serve them.
    fn metrics(&self, i: usize) -> std::collections::BTreeMap<String, f64> {
        let (status, content_type, body) =
            http_get(self.rpc_addr(i), "/metrics").expect("metrics answered");
        assert_eq!(status, 200, "metrics of node {i}: {body}");
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        assert!(body.ends_with("# EOF\n"), "metrics end with # EOF");
        metric_samples(&body)
    }

    /// Node `i`'s status, if it answers.
    fn status(&self, i: usize) -> Option<Value> {
        self.call(i, "cachet_status", json!([])).ok()
    }

    /// Node `i`'s committed height, if it answers.
    fn height(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["height"].as_u64())
    }

    /// The hash of node `i`'s block at `height`.
    fn block_hash(&self, i: usize, height: u64) -> Option<String> {
        self.call(i, "cachet_block", json!([height]))
            .ok()
            .and_then(|b| b["hash"].as_str().map(str::to_string))
    }

    /// Wait until node `i` has committed `height`.
    fn wait_height(&self, i: usize, height: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.height(i).is_some_and(|h| h >= height))
    }

    /// Submit a transaction through node `i`; returns its id or the refusal.
    fn submit(&self, i: usize, tx: &Transaction) -> Result<String, RpcError> {
        self.submit_bytes(i, &tx.encode())
    }

    /// Submit raw bytes as a transaction through node `i`.
    fn submit_bytes(&self, i: usize, bytes: &[u8]) -> Result<String, RpcError> {
        self.call(i, "cachet_submit", json!([hex::encode(bytes)]))
            .map(|v| v["id"].as_str().unwrap_or_default().to_string())
    }

    /// Where transaction `id` stands on node `i`: `Some(height)` once committed.
    fn committed_at(&self, i: usize, id: &str) -> Option<u64> {
        let v = self.call(i, "cachet_transaction", json!([id])).ok()?;
        (v["status"] == "committed")
            .then(|| v["height"].as_u64())
            .flatten()
    }

    /// Assert that nodes `a` and `b` have the same block hash at every height up to `upto`.
    fn assert_same_chain(&self, a: usize, b: usize, upto: u64) {
        for h in 1..=upto {
            let (x, y) = (self.block_hash(a, h), self.block_hash(b, h));
            assert!(
                x.is_some() && x == y,
                "nodes {a} and {b} differ at height {h}: {x:?} vs {y:?}"
            );
        }
    }

    /// Wait until node `i` reaches the height node `from` is at now, and check that they
    /// agree up to it; that height.
    fn catch_up(&self, i: usize, from: usize, timeout: Duration) -> u64 {
        let target = self.height(from).expect("the node caught up with answers");
        assert!(
            self.wait_height(i, target, timeout),
            "node {i} did not catch up with node {from} at height {target}; log:\n{}",
            self.log_tail(i)
        );
        self.assert_same_chain(from, i, target);
        target
    }
}

impl Nodes for Cluster {
    fn count(&self) -> usize {
        self.nodes.len()
    }

    fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].config.with_file_name("node.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn rpc_addr(&self, i: usize) -> &str {
        &self.nodes[i].rpc
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::env::var_os("CACHET_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Signed transactions of the example agencies (development keys) for the devnet chain.
pub mod txs {
    use cachet_chain::document::{Commitment, Fingerprint, FingerprintAlg, Salt};
    use cachet_chain::hash::{Domain, Hash32};
    use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height};
    use cachet_chain::tx::{Action, Issuance, Terms, Transaction, TxBody};
    use cachet_contracts::example;

    /// The devnet chain id.
    pub fn chain_id() -> ChainId {
        ChainId::new("cachet-devnet").expect("valid")
    }

    /// A signed transaction of `agency` with `nonce` on the devnet chain.
    pub fn signed(agency: &str, nonce: u64, action: Action) -> Transaction {
        signed_on(chain_id(), agency, nonce, action)
    }

    /// A signed transaction of `agency` with `nonce` on `chain_id`.
    pub fn signed_on(chain_id: ChainId, agency: &str, nonce: u64, action: Action) -> Transaction {
        let key = example::agency_key(agency);
        TxBody {
            chain_id,
            signer: AgencyId::new(agency).expect("valid id"),
            key: key.public(),
            nonce,
            expires_at: Height(1_000_000),
            action,
        }
        .sign(&key)
    }

    /// A land-title issuance for a made-up document `name`.
    pub fn title(name: &str) -> Issuance {
        Issuance {
            kind: CertKind::LandTitle,
            commitment: Commitment::new(
                &Fingerprint::of(FingerprintAlg::Sha256, name.as_bytes()),
                &Salt(Hash32([4; 32])),
            ),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: Domain::Commitment.hash(name.as_bytes()),
            },
        }
    }

    /// moi-land anchors the title `name` with `nonce`.
    pub fn anchor(nonce: u64, name: &str) -> Transaction {
        signed("moi-land", nonce, Action::Issue(title(name)))
    }
}
