//! What an operator runs against a node: `backup` (a running node copies its store),
//! `snapshot` (a running node takes a snapshot at a coming height),
//! `restore` (a backup put back in place of a stopped node's lost store), `fsck` (a stopped
//! node's store, or a backup, checked against itself) and `probe` (is it ready?).
//!
//! It is not the checks or the copy themselves (`cachet_node::fsck`, `cachet_node::backup`).

use anyhow::{Context, Result, anyhow};
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::hash::Hash32;
use cachet_node::fsck::Report;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A client for operator calls to the node at `rpc`, with its operator token if `token_file`
/// is given.
pub fn client(rpc: &str, token_file: Option<&Path>) -> Result<cachet_client::Client> {
    let token = token_file
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the operator token {}", f.display()))
        })
        .transpose()?;
    Ok(cachet_client::Client::with_token(
        rpc,
        token.as_deref().map(str::trim),
    )?)
}

/// `cachet backup`: ask the node (on its operator RPC) to copy its store into `out`.
pub async fn backup(client: &cachet_client::Client, out: &Path, json: bool) -> Result<()> {
    // The node resolves the path on its own machine: the operator's is made absolute here.
    let out = std::path::absolute(out).context("the backup directory")?;
    let started = Instant::now();
    let manifest = client
        .call(
            "cachet_admin_backup",
            vec![serde_json::json!(out.to_string_lossy())],
        )
        .await?;
    if json {
        println!("{manifest}");
    } else {
        println!(
            "backed up height {} of {} into {} in {:.1} s",
            manifest["height"],
            manifest["chain_id"].as_str().unwrap_or("?"),
            out.display(),
            started.elapsed().as_secs_f64()
        );
        println!("keys are not in it: keep the node's validator.key apart");
    }
    Ok(())
}

/// `cachet snapshot`: ask the node (on its operator RPC) for a snapshot at height `at`.
pub async fn snapshot(client: &cachet_client::Client, at: u64) -> Result<()> {
    let answer = client
        .call("cachet_admin_snapshot", vec![serde_json::json!(at)])
        .await?;
    println!(
        "the node takes a snapshot at height {} (under its home's snapshots/ once written)",
        answer["height"]
    );
    Ok(())
}

/// `cachet restore`: put the backup in `from` in place of the store of the node configured in
/// `config` (stopped, its database gone).
pub fn restore(from: &Path, config: &Path, check: bool, json: bool) -> Result<()> {
    let config = cachet_node::NodeConfig::load(config).map_err(|e| anyhow!("{e:#}"))?;
    let genesis = genesis_hash(&config.genesis)?;
    let started = Instant::now();
    let (manifest, report) =
        cachet_node::backup::restore(from, &config.home, &genesis, check, progress_printer(json))
            .map_err(|e| anyhow!("{e:#}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "restored": manifest, "checked": report })
        );
    } else {
        eprintln!();
        println!(
            "restored height {} ({} state entries checked) into {} in {:.1} s",
            manifest.height,
            report.map_or("none".into(), |r| r.entries.to_string()),
            config.home.join("db").display(),
            started.elapsed().as_secs_f64()
        );
        println!(
            "start the node: it syncs the heights after {} from its peers",
            manifest.height
        );
    }
    Ok(())
}

/// `cachet fsck`: check the store under `dir` (a node's home or a backup: either holds `db/`);
/// with `genesis`, also that it is that chain's. Returns the exit code: 0 consistent, 1 not.
pub fn fsck(dir: &Path, genesis: Option<&PathBuf>, json: bool) -> Result<i32> {
    let db = dir.join("db");
    let store = cachet_node::store::Store::open_read_only(&db).map_err(|e| {
        anyhow!(
            "cannot open the store under {}: {e} (stop the node first)",
            db.display()
        )
    })?;
    let started = Instant::now();
    let mut report =
        cachet_node::fsck::check(&store, progress_printer(json)).map_err(|e| anyhow!("{e:#}"))?;
    if let Some(path) = genesis {
        let expected = genesis_hash(path)?;
        if report.genesis != Some(expected) {
            report.problems.insert(
                0,
                cachet_node::fsck::Problem {
                    height: Some(0),
                    what: format!("the store's genesis is not the one of {}", path.display()),
                },
            );
        }
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!();
        print_report(&report, started.elapsed().as_secs_f64());
    }
    Ok(if report.clean() { 0 } else { 1 })
}

fn print_report(report: &Report, seconds: f64) {
    println!(
        "checked {} blocks, {} transactions, {} checkpoints and {} state entries up to height {} in {seconds:.1} s",
        report.blocks, report.transactions, report.checkpoints, report.entries, report.head
    );
    match report.problems.first() {
        None => println!("consistent"),
        Some(first) => {
            println!(
                "INCONSISTENT: {} problem(s); the first{}: {}",
                report.problems.len(),
                first
                    .height
                    .map_or(String::new(), |h| format!(" at height {h}")),
                first.what
            );
            for p in &report.problems[1..] {
                println!(
                    "  {}{}",
                    p.height.map_or(String::new(), |h| format!("height {h}: ")),
                    p.what
                );
            }
        }
    }
}

/// Progress on standard error (a line rewritten at most every second), unless output is JSON.
fn progress_printer(json: bool) -> impl FnMut(u64, u64) {
    let mut last = Instant::now();
    move |h, head| {
        if json || (h != head && last.elapsed().as_secs() < 1) {
            return;
        }
        last = Instant::now();
        eprint!("\rchecking height {h} of {head}");
        let _ = std::io::stderr().flush();
    }
}

/// `cachet probe`: `GET /readyz` (or `/healthz`) of the node at `rpc`, printed; 0 when it
/// answers 200, 1 when it answers anything else or nothing within 5 s.
pub fn probe(rpc: &str, live: bool) -> Result<i32> {
    use std::io::{Read, Write};
    let authority = rpc
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the RPC URL must be http://host:port, not {rpc}"))?
        .trim_end_matches('/');
    let path = if live { "/healthz" } else { "/readyz" };
    let timeout = std::time::Duration::from_secs(5);
    let answer = (|| -> std::io::Result<Vec<u8>> {
        use std::net::ToSocketAddrs;
        let addr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    })();
    let answer = match answer {
        Ok(a) => String::from_utf8_lossy(&a).into_owned(),
        Err(e) => {
            println!("{rpc}{path}: no answer: {e}");
            return Ok(1);
        }
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("none");
    println!("{status} {}", body.trim());
    Ok(if status == "200" { 0 } else { 1 })
}

fn genesis_hash(path: &Path) -> Result<Hash32> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    let doc = GenesisDoc::from_json(&text)?;
    let (header, _) = cachet_contracts::genesis_state(&doc)?;
    Ok(header.hash())
}
