//! `cachet bench`: drive a 4-validator devnet with signed anchors from many issuing agencies at a
//! rising rate, find where finalized throughput stops growing, sustain that rate, and report
//! finalized tx/s, finality latency (submit → seen committed), CPU per transaction, memory per
//! node and disk per certificate — next to this machine's ed25519 verification rates and the
//! bound they put on throughput (every validator verifies every signature).

use crate::client::Client;
use anyhow::{Context, Result, bail};
use cachet_chain::crypto::{SecretKey, verify_many};
use cachet_chain::document::{Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::{Domain, Hash32};
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height};
use cachet_chain::state::Name;
use cachet_chain::tx::{Action, AgencyRegistration, Issuance, Terms, Transaction, TxBody};
use cachet_contracts::example;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of a run.
pub struct Options {
    /// Seconds to sustain the best rate.
    pub duration: u64,
    /// Seconds per rising step.
    pub step_seconds: u64,
    /// Issuing agencies to spread the load over.
    pub agencies: usize,
    /// Working directory for the devnet (a fresh temporary one by default).
    pub dir: Option<PathBuf>,
}

fn measure<F: FnMut() -> usize>(mut f: F) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < Duration::from_millis(800) {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// ed25519 verifications per second on one core: strict one by one, and batches of 64.
fn ed25519_rates() -> (f64, f64) {
    let items: Vec<_> = (0..64u32)
        .map(|i| {
            let k = SecretKey::dev(&format!("bench-{i}"));
            let m = Domain::TxId.hash(&i.to_le_bytes());
            (k.public(), m, k.sign(&m))
        })
        .collect();
    let single = measure(|| {
        let (k, m, s) = &items[0];
        k.verify(m, s).map(|_| 1).unwrap_or(0)
    });
    let batch = measure(|| verify_many(&items).map(|_| 64).unwrap_or(0));
    (single, batch)
}

fn proc_cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime is the 14th field, stime the 15th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn proc_rss_kb(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Agency {
    id: AgencyId,
    key: SecretKey,
    nonce: u64,
}

fn signed(chain: &ChainId, a: &mut Agency, action: Action) -> Transaction {
    let tx = TxBody {
        chain_id: chain.clone(),
        signer: a.id.clone(),
        key: a.key.public(),
        nonce: a.nonce,
        expires_at: Height(u64::MAX / 2),
        action,
    }
    .sign(&a.key);
    a.nonce += 1;
    tx
}

fn order(n: u64) -> Action {
    Action::Issue(Issuance {
        kind: CertKind::RewardOrder,
        commitment: Commitment::new(
            &Fingerprint::of(FingerprintAlg::Sha256, &n.to_le_bytes()),
            &Salt(Hash32([5; 32])),
        ),
        valid_from: None,
        valid_until: None,
        terms: Terms::Plain,
    })
}

async fn submit(client: &Client, txs: &[Transaction]) -> Result<usize> {
    let list: Vec<Value> = txs.iter().map(|t| json!(hex::encode(t.encode()))).collect();
    let v = client
        .call("cachet_submitMany", vec![Value::Array(list)])
        .await?;
    Ok(v.as_array()
        .map(|a| a.iter().filter(|r| r.get("id").is_some()).count())
        .unwrap_or(0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Run the benchmark and print its report.
pub async fn run(opts: Options, json_out: bool) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let (single, batch) = ed25519_rates();
    let validators = 4.0;
    let bound_single = single * cores / validators;
    let bound = batch * cores / validators;
    if !json_out {
        eprintln!(
            "ed25519 on one core: {single:.0}/s strict, {batch:.0}/s in batches of 64; bound with {validators} validators on {cores} cores: {bound:.0} tx/s"
        );
    }

    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cachet-bench-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut devnet: Child = Command::new(std::env::current_exe()?)
        .args(["devnet", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = drive(&opts, &dir, json_out).await;
    let _ = Command::new("kill")
        .args(["-TERM", &devnet.id().to_string()])
        .status();
    let _ = devnet.wait();
    let (mut report, ok) = match result {
        Ok(r) => (r, true),
        Err(e) => (json!({ "error": format!("{e:#}") }), false),
    };
    report["ed25519_verify_per_core"] = json!(single.round());
    report["ed25519_batch64_verify_per_core"] = json!(batch.round());
    report["cores"] = json!(cores);
    report["bound_tps"] = json!(bound.round());
    report["bound_single_tps"] = json!(bound_single.round());
    if let Some(f) = report["finalized_tps"].as_f64() {
        report["ratio"] = json!((f / bound * 1000.0).round() / 1000.0);
    }
    if json_out {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if opts.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !ok {
        bail!("benchmark failed");
    }
    Ok(())
}

async fn drive(opts: &Options, dir: &Path, quiet: bool) -> Result<Value> {
    let manifest = dir.join("devnet.json");
    let start = Instant::now();
    while !manifest.exists() {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("devnet did not start");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest)?)?;
    let nodes: Vec<(String, u64, PathBuf)> = m["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .map(|n| {
            (
                n["rpc"].as_str().unwrap_or_default().to_string(),
                n["pid"].as_u64().unwrap_or(0),
                PathBuf::from(n["home"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    let clients: Vec<Client> = nodes
        .iter()
        .map(|(u, _, _)| Client::new(u))
        .collect::<Result<_>>()?;
    let status = clients[0].status().await?;
    let chain: ChainId = status["chain_id"].as_str().unwrap_or_default().parse()?;

    // Register the issuing agencies (the DGPA accredits them for reward orders).
    let dgpa_nonce = clients[0]
        .call("cachet_agency", vec![json!("dgpa-personnel")])
        .await?["next_nonce"]
        .as_u64()
        .unwrap_or(0);
    let mut dgpa = Agency {
        id: AgencyId::new("dgpa-personnel")?,
        key: example::agency_key("dgpa-personnel"),
        nonce: dgpa_nonce,
    };
    let mut agencies: Vec<Agency> = (0..opts.agencies)
        .map(|i| {
            let id = format!("bench-agency-{i}");
            Agency {
                id: AgencyId::new(&id).expect("valid id"),
                key: SecretKey::dev(&id),
                nonce: 0,
            }
        })
        .collect();
    let setup: Vec<Transaction> = agencies
        .iter()
        .map(|a| {
            let action = Action::Accredit {
                kind: CertKind::RewardOrder,
                agency: a.id.clone(),
                registration: Some(AgencyRegistration {
                    name: Name::new(a.id.to_string()).expect("valid name"),
                    key: a.key.public(),
                }),
            };
            signed(&chain, &mut dgpa, action)
        })
        .collect();
    submit(&clients[0], &setup).await?;
    let last = setup.last().context("no agencies")?.id();
    clients[0]
        .wait_committed(&last, Duration::from_secs(60))
        .await?;

    // Committed transactions, as the block subscription reports them.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    {
        use jsonrpsee::core::client::SubscriptionClientT;
        let ws_url = nodes[0].0.replace("http://", "ws://");
        let ws = jsonrpsee::ws_client::WsClientBuilder::default()
            .max_response_size(64 << 20)
            .build(ws_url)
            .await?;
        let mut sub: jsonrpsee::core::client::Subscription<Value> = ws
            .subscribe(
                "cachet_subscribeBlocks",
                jsonrpsee::rpc_params![],
                "cachet_unsubscribeBlocks",
            )
            .await?;
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ws = ws;
            while let Some(Ok(block)) = sub.next().await {
                let now = Instant::now();
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                for id in block["txs"].as_array().into_iter().flatten() {
                    if let Some(id) = id.as_str() {
                        s.insert(id.to_string(), now);
                    }
                }
            }
        });
    }

    let cpu0: u64 = nodes.iter().map(|n| proc_cpu_ticks(n.1)).sum();
    let disk0: u64 = nodes.iter().map(|n| dir_bytes(&n.2)).sum();
    let mut submitted: Vec<(String, Instant)> = Vec::new();
    let mut counter = 0u64;
    let mut steps = Vec::new();
    let mut rate = 200.0f64;
    let mut best = (0.0f64, 0.0f64); // (finalized tps, offered rate)
    let mut phase_sustain = false;
    let sustained: (f64, f64);
    let mut sustain_from = 0usize;
    let mut phase_start = Instant::now();
    let mut phase_seen_before = 0usize;
    let tick = Duration::from_millis(100);
    let mut next_node = 0usize;
    loop {
        let t0 = Instant::now();
        let n = (rate / 10.0).round().max(1.0) as usize;
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            counter += 1;
            let a = &mut agencies[(counter as usize) % opts.agencies];
            txs.push(signed(&chain, a, order(counter)));
        }
        let at = Instant::now();
        for chunk in txs.chunks(1000) {
            let client = &clients[next_node % clients.len()];
            next_node += 1;
            submit(client, chunk).await?;
        }
        submitted.extend(txs.iter().map(|t| (t.id().to_string(), at)));
        let elapsed = phase_start.elapsed();
        let phase_len = if phase_sustain {
            opts.duration
        } else {
            opts.step_seconds
        };
        if elapsed >= Duration::from_secs(phase_len) {
            let committed = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
            let finalized = (committed - phase_seen_before) as f64 / elapsed.as_secs_f64();
            if phase_sustain {
                steps.push(json!({ "offered_tps": rate.round(), "finalized_tps": finalized.round(), "sustained": true }));
                sustained = (finalized, rate);
                break;
            }
            steps.push(json!({ "offered_tps": rate.round(), "finalized_tps": finalized.round() }));
            if !quiet {
                eprintln!("offered {rate:.0} tx/s -> finalized {finalized:.0} tx/s");
            }
            if finalized > best.0 {
                best = (finalized, rate);
            }
            if finalized < 0.85 * rate || rate >= 40_000.0 {
                // Saturated: sustain just below the best finalized rate, once the backlog the
                // overload left in the mempools has drained.
                rate = (0.9 * best.0).max(100.0);
                phase_sustain = true;
                let drained = Instant::now();
                while drained.elapsed() < Duration::from_secs(60) {
                    let mut waiting = 0u64;
                    for c in &clients {
                        waiting += c
                            .status()
                            .await
                            .ok()
                            .and_then(|s| s["mempool"].as_u64())
                            .unwrap_or(0);
                    }
                    if waiting < 100 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                sustain_from = submitted.len();
            } else {
                rate *= 1.5;
            }
            phase_start = Instant::now();
            phase_seen_before = seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        }
        let spent = t0.elapsed();
        if spent < tick {
            tokio::time::sleep(tick - spent).await;
        }
    }
    // Let the last transactions land, then read latencies of the sustained window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut lat: Vec<f64> = submitted[sustain_from..]
        .iter()
        .filter_map(|(id, at)| {
            seen.get(id)
                .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let committed = seen.len().max(1) as f64;
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu: u64 = nodes.iter().map(|n| proc_cpu_ticks(n.1)).sum::<u64>() - cpu0;
    let disk: u64 = nodes
        .iter()
        .map(|n| dir_bytes(&n.2))
        .sum::<u64>()
        .saturating_sub(disk0);
    let (sustained_tps, sustained_rate) = sustained;
    Ok(json!({
        "finalized_tps": sustained_tps.round(),
        "offered_tps": sustained_rate.round(),
        "peak_step_finalized_tps": best.0.round(),
        "finality_p50_ms": percentile(&lat, 0.50).round(),
        "finality_p99_ms": percentile(&lat, 0.99).round(),
        "committed_in_sustained_window": lat.len(),
        "cpu_ms_per_tx_all_nodes": ((cpu as f64 / ticks_per_sec * 1000.0) / committed * 1000.0).round() / 1000.0,
        "rss_mb_per_node": nodes.iter().map(|n| proc_rss_kb(n.1) / 1024).collect::<Vec<_>>(),
        "disk_bytes_per_certificate_per_node": (disk as f64 / committed / nodes.len() as f64).round(),
        "steps": steps,
        "agencies": opts.agencies,
        "validators": nodes.len(),
    }))
}
