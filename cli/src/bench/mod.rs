//! `cachet bench`: load a local 4-validator devnet and measure it, in three phases on one chain:
//!
//! 1. **anchors** — signed single anchors from many issuing agencies at a rising rate until
//!    finalized throughput stops growing, then 90% of the best rate sustained: finalized tx/s,
//!    finality latency (submit → seen committed), CPU per transaction, disk per certificate;
//! 2. **batches** — the same with Merkle batches of reward orders: certificates/s, and a sample
//!    of per-certificate receipts fetched and verified offline;
//! 3. **verification** — receipts/s one node serves to concurrent verifiers, with latency,
//!    while anchoring goes on through the other nodes.
//!
//! Next to them: this machine's ed25519 verification rates and the bound they put on
//! throughput (every validator verifies every signature), the ratio to it, and each node's RSS.

mod anchors;
mod batches;
mod load;
mod net;
mod probe;
mod verification;

use anyhow::{Result, bail};
use net::Net;
use probe::milli;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// Which phases to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Single anchors at a rising rate.
    Anchors,
    /// Merkle batches of reward orders.
    Batches,
    /// Receipts served while anchoring.
    Verification,
}

/// Options of a run.
pub struct Options {
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Seconds to sustain the best rate.
    pub duration: u64,
    /// Seconds to run the verification load.
    pub verification_seconds: u64,
    /// Seconds per rising step.
    pub step_seconds: u64,
    /// Issuing agencies to spread the load over.
    pub agencies: usize,
    /// Certificates per batch.
    pub batch_leaves: u32,
    /// Concurrent verifiers.
    pub verifiers: usize,
    /// Working directory for the devnet (a fresh temporary one by default).
    pub dir: Option<PathBuf>,
}

/// Run the benchmark and print its report.
pub async fn run(opts: Options, json_out: bool) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let (single, batch) = probe::ed25519_rates();
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
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("devnet.log");
    let out = std::fs::File::create(&log)?;
    let mut devnet: Child = Command::new(std::env::current_exe()?)
        .args(["devnet", "--dir"])
        .arg(&dir)
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let result = match Net::connect(&dir, opts.agencies, &mut devnet).await {
        Ok(net) => phases(net, &opts, json_out).await,
        Err(e) => Err(e),
    };
    let _ = Command::new("kill")
        .args(["-TERM", &devnet.id().to_string()])
        .status();
    let _ = devnet.wait();
    let (mut report, ok) = match result {
        Ok(r) => (r, true),
        Err(e) => (
            json!({ "error": format!("{e:#}"), "devnet_dir": dir }),
            false,
        ),
    };
    report["ed25519_verify_per_core"] = json!(single.round());
    report["ed25519_batch64_verify_per_core"] = json!(batch.round());
    report["cores"] = json!(cores);
    report["bound_tps"] = json!(bound.round());
    report["bound_single_tps"] = json!(bound_single.round());
    if let Some(f) = report["finalized_tps"].as_f64() {
        report["ratio"] = json!(milli(f / bound));
    }
    if json_out {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if !ok {
        // The devnet's directory holds its logs: keep it for whoever reads the error.
        bail!("benchmark failed; logs in {}", dir.display());
    }
    if opts.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

async fn phases(mut net: Net, opts: &Options, quiet: bool) -> Result<Value> {
    let step = Duration::from_secs(opts.step_seconds);
    let sustain = Duration::from_secs(opts.duration);
    let mut report = json!({
        "agencies": opts.agencies,
        "validators": net.nodes.len(),
    });
    // Documents are numbered apart so that no two phases anchor the same certificate.
    let mut anchors = anchors::Anchors::new(0);
    let mut anchored_tps = None;
    for (i, phase) in opts.phases.iter().enumerate() {
        if i > 0 {
            // A phase counts what commits while it runs: let the last one's backlog land
            // first, or its transactions would be counted as this phase's.
            net.drain(100).await?;
        }
        match phase {
            Phase::Anchors => {
                let r = anchors::run(&mut net, &mut anchors, step, sustain, quiet).await?;
                anchored_tps = r["finalized_tps"].as_f64();
                if let (Value::Object(to), Value::Object(from)) = (&mut report, r) {
                    to.extend(from);
                }
            }
            Phase::Batches => {
                report["batches"] =
                    batches::run(&mut net, opts.batch_leaves, 1 << 40, step, sustain, quiet)
                        .await?;
            }
            Phase::Verification => {
                // Anchoring at half the rate the chain sustains, so that finality holds.
                let rate = anchored_tps.map(|t| t / 2.0).unwrap_or(200.0).max(50.0);
                let seconds = Duration::from_secs(opts.verification_seconds);
                report["verification"] =
                    verification::run(&mut net, &mut anchors, opts.verifiers, rate, seconds, quiet)
                        .await?;
            }
        }
    }
    report["refusals"] = net.refusals();
    report["rss_mb_per_node"] = json!(net.rss_mb());
    report["rss_mb_timeline"] = json!(*net::lock(&net.rss_timeline));
    Ok(report)
}
