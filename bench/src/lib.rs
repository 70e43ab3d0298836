//! `cachet-bench`, the `cachet bench` command: load a local 4-validator devnet and measure it, in
//! four phases on one chain:
//!
//! 1. **anchors** — signed single anchors from many issuing agencies at a rising rate until
//!    finalized throughput stops growing, then 90% of the best rate sustained: finalized tx/s,
//!    finality latency (submit → seen committed), CPU per transaction, disk per certificate;
//! 2. **batches** — the same with Merkle batches of reward orders: certificates/s, and a sample
//!    of per-certificate receipts fetched and verified offline;
//! 3. **verification** — receipts/s one node serves to concurrent verifiers, with latency,
//!    while anchoring goes on through the other nodes;
//! 4. **fairness** — polite verifiers' latency alone and beside one greedy client, on a node
//!    with a per-client read limit and on one without ([`fairness`]);
//! 5. **join** (not run unless asked) — a new node joining the chain as it stands, from a
//!    snapshot and by replaying every block ([`join`]);
//! 6. **prune** (not run unless asked) — the bytes per certificate a node keeps with block
//!    pruning, beside an archive's ([`prune`]);
//! 7. **scale** (not run unless asked) — the chain filled in steps to each of `--scale-sizes`
//!    certificates, and at each the held anchor rate, finality, receipts served, RSS and bytes
//!    per certificate, projected to 100 million ([`scale`]).
//!
//! Before them, a **fill** phase can anchor a given number of certificates, unmeasured, and a
//! run can start **from** a devnet directory an earlier run left (see [`saved`]): runs that
//! start from one saved state measure the same tree. Or it can **target** a devnet that is
//! already running (the README's `cachet devnet`), which it leaves running.
//!
//! Next to them: this machine's ed25519 verification rates and the bound they put on
//! throughput (every validator verifies every signature), the ratio to it, the highest ratio
//! the measured CPU per transaction allows, and each node's RSS.
//!
//! What it is not: a test. It asserts no speed: it reports figures, to be read and compared as
//! the project's performance method page says. The devnet it starts is the `cachet` binary it
//! runs in (`cachet devnet`), so it is a library of that binary, not a program of its own.

mod anchors;
mod batches;
mod fairness;
mod join;
mod load;
mod net;
mod probe;
mod prune;
mod saved;
mod scale;
mod verification;
mod watch;

use anyhow::{Context, Result, bail};
use net::Net;
use probe::milli;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// Which phases to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Anchor `--fill-certificates` certificates, unmeasured (the state later phases start from).
    Fill,
    /// Single anchors at a rising rate.
    Anchors,
    /// Merkle batches of reward orders.
    Batches,
    /// Receipts served while anchoring.
    Verification,
    /// Polite verifiers beside a greedy one, on a node with a per-client read limit and on one
    /// without.
    Fairness,
    /// A new node joining from a snapshot, then by replaying every block.
    Join,
    /// Bytes per certificate on a node that prunes blocks, beside an archive.
    Prune,
    /// The figures at each of `--scale-sizes` certificates in the state.
    Scale,
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
    /// Certificates the fill phase anchors.
    pub fill_certificates: usize,
    /// Certificates in the state at each step of the scale phase.
    pub scale_sizes: Vec<usize>,
    /// Working directory for the devnet (a fresh temporary one by default).
    pub dir: Option<PathBuf>,
    /// A devnet directory an earlier run left, copied into the working directory to start
    /// from.
    pub from: Option<PathBuf>,
    /// The directory of a running devnet to measure instead of starting one.
    pub target: Option<PathBuf>,
    /// Where the nodes of the devnet the bench starts keep their state tree (`None`: as their
    /// configs say).
    pub state_tree: Option<cachet_node::store::TreePlacement>,
}

/// Run the benchmark and print its report.
pub async fn run(opts: Options, json_out: bool) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let (single, batch) = probe::ed25519_rates();
    if !json_out {
        eprintln!(
            "ed25519 on one core: {single:.0}/s strict, {batch:.0}/s in batches of 64; bound with {VALIDATORS} validators on {cores} cores: {:.0} tx/s",
            bound(batch, cores)
        );
    }

    if let Some(target) = &opts.target {
        let result = match Net::connect(target, opts.agencies, None).await {
            Ok(net) => {
                // Certificates a saved state there lists are verified too; new documents are
                // numbered apart from every earlier run's, which left no record of theirs.
                let certificates = saved::Saved::read(target)
                    .map(|s| s.certificates)
                    .unwrap_or_default();
                let saved = saved::Saved {
                    certificates,
                    ..saved::Saved::unique()
                };
                phases(net, &opts, saved, None, json_out).await
            }
            Err(e) => Err(e),
        };
        return report(result, target, single, batch, cores, json_out);
    }
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cachet-bench-{}", std::process::id())),
    };
    if let Some(from) = &opts.from {
        saved::check_apart(from, &dir)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let saved = match &opts.from {
        Some(from) => {
            saved::copy_devnet(from, &dir)?;
            saved::Saved::read(&dir)?
        }
        None => saved::Saved::fresh(),
    };
    let log = dir.join("devnet.log");
    let out = std::fs::File::create(&log)?;
    let devnet = || -> Result<Command> {
        let mut devnet = Command::new(std::env::current_exe()?);
        // A spare node (not started with the others) for the join phase.
        devnet.args(["devnet", "--spares", "1", "--dir"]).arg(&dir);
        if let Some(placement) = opts.state_tree {
            devnet.args(["--state-tree", placement.name()]);
        }
        Ok(devnet)
    };
    // Written first, so that the second node gets a per-client read limit for the fairness
    // phase (a devnet keeps it when started on the directory).
    let written = devnet()?.arg("--no-start").output()?;
    if !written.status.success() {
        bail!(
            "cachet devnet --no-start failed: {}",
            String::from_utf8_lossy(&written.stderr)
        );
    }
    limit_reads(&dir, fairness::FAIR_READS_PER_SECOND)?;
    let mut devnet: Child = devnet()?.stdout(out.try_clone()?).stderr(out).spawn()?;
    let result = match Net::connect(&dir, opts.agencies, Some(&mut devnet)).await {
        Ok(net) => phases(net, &opts, saved, opts.dir.as_deref(), json_out).await,
        Err(e) => Err(e),
    };
    let _ = Command::new("kill")
        .args(["-TERM", &devnet.id().to_string()])
        .status();
    let _ = devnet.wait();
    report(result, &dir, single, batch, cores, json_out)?;
    if opts.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Give the last validator's node of the devnet in `dir` (never node 0, which the
/// verification phase measures) a per-client read limit of `rate` calls per second (and a
/// bucket of as many).
fn limit_reads(dir: &std::path::Path, rate: u32) -> Result<()> {
    let genesis: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json"))?)?;
    let last = genesis["validators"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|v| v["agency"].as_str())
        .context("the devnet's genesis names no validator")?;
    let path = &dir.join("nodes").join(last).join("config.toml");
    let text = std::fs::read_to_string(path)?;
    let mut config: toml::Table = toml::from_str(&text)?;
    let rpc = config
        .entry("rpc")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .context("[rpc] is not a table")?;
    rpc.insert("reads_per_second_per_client".into(), i64::from(rate).into());
    rpc.insert("read_burst_per_client".into(), i64::from(rate).into());
    std::fs::write(path, toml::to_string_pretty(&config)?)?;
    Ok(())
}

/// Where the devnet in `dir` keeps its state tree, as its first node's config says (`None`:
/// no readable config).
fn state_tree_of(dir: &std::path::Path) -> Option<cachet_node::store::TreePlacement> {
    let mut nodes: Vec<_> = std::fs::read_dir(dir.join("nodes"))
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("config.toml")))
        .filter(|path| path.exists())
        .collect();
    nodes.sort();
    let config = cachet_node::config::NodeConfig::load(nodes.first()?).ok()?;
    Some(config.storage.state_tree)
}

/// The validators of the devnets the bench measures.
const VALIDATORS: f64 = 4.0;

/// The throughput bound of `VALIDATORS` validators sharing `cores` cores, each verifying every
/// signature at `per_core` verifications per second on one core.
fn bound(per_core: f64, cores: f64) -> f64 {
    per_core * cores / VALIDATORS
}

/// The highest ratio to the bound that the nodes' CPU per transaction (all nodes together)
/// allows: the ratio if they kept every core busy. Throughput is then `cores / cpu` and the
/// bound `batch × cores / VALIDATORS`, so the cores cancel, and what is left is the share of a
/// validator's CPU per transaction that one batch-verified signature takes. A ratio above it
/// takes less CPU per transaction, not more load or more cores.
fn ratio_ceiling(batch_per_core: f64, cpu_ms_per_tx_all_nodes: f64) -> f64 {
    let signature_s = 1.0 / batch_per_core;
    let validator_s = cpu_ms_per_tx_all_nodes / 1000.0 / VALIDATORS;
    signature_s / validator_s
}

/// Print the report of a run on the devnet in `dir`, with this machine's ed25519 rates
/// (`single` and `batch` per core) and the bound they put on `cores` cores; an error if the
/// run failed.
fn report(
    result: Result<Value>,
    dir: &std::path::Path,
    single: f64,
    batch: f64,
    cores: f64,
    json_out: bool,
) -> Result<()> {
    let (bound_single, bound) = (bound(single, cores), bound(batch, cores));
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
    if let Some(placement) = state_tree_of(dir) {
        report["state_tree"] = json!(placement.name());
    }
    if let Some(f) = report["finalized_tps"].as_f64() {
        report["ratio"] = json!(milli(f / bound));
    }
    // From the CPU of the window the ratio is measured over.
    if let Some(cpu) = report["sustained_cpu_ms_per_tx_all_nodes"]
        .as_f64()
        .filter(|c| *c > 0.0)
    {
        report["ratio_ceiling"] = json!(milli(ratio_ceiling(batch, cpu)));
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
    Ok(())
}

async fn phases(
    mut net: Net,
    opts: &Options,
    saved: saved::Saved,
    keep: Option<&std::path::Path>,
    quiet: bool,
) -> Result<Value> {
    let step = Duration::from_secs(opts.step_seconds);
    let sustain = Duration::from_secs(opts.duration);
    let mut report = json!({
        "agencies": opts.agencies,
        "validators": net.nodes.len(),
    });
    if !saved.certificates.is_empty() {
        report["started_from_certificates"] = json!(saved.certificates.len());
    }
    // Documents and batches are numbered on from the saved state, so that nothing repeats.
    let mut anchors = anchors::Anchors::new(&saved);
    let mut next_batch = saved.next_batch;
    let mut anchored_tps = None;
    let rpcs: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();
    let mut settled_s = Vec::new();
    for (i, phase) in opts.phases.iter().enumerate() {
        if i > 0 {
            // A phase counts what commits while it runs: let the last one's backlog land
            // first, or its transactions would be counted as this phase's.
            net.drain(100).await?;
        }
        // And it measures the chain, not compaction an earlier run or phase left owing.
        let waited = watch::settle(&rpcs, watch::SETTLE_AT_MOST).await;
        if !quiet && waited >= 1.0 {
            eprintln!("{phase:?}: waited {waited} s for the nodes' compaction to settle");
        }
        settled_s.push(waited);
        match phase {
            Phase::Fill => {
                report["fill"] =
                    anchors::fill(&mut net, &mut anchors, opts.fill_certificates, quiet).await?;
            }
            Phase::Anchors => {
                let r = anchors::run(&mut net, &mut anchors, step, sustain, quiet).await?;
                anchored_tps = r["finalized_tps"].as_f64();
                if let (Value::Object(to), Value::Object(from)) = (&mut report, r) {
                    to.extend(from);
                }
            }
            Phase::Batches => {
                report["batches"] = batches::run(
                    &mut net,
                    opts.batch_leaves,
                    &mut next_batch,
                    step,
                    sustain,
                    quiet,
                )
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
            Phase::Fairness => {
                let ids = verification::certificates(&mut net, &mut anchors).await?;
                let each = Duration::from_secs((opts.verification_seconds / 4).max(2));
                report["fairness"] = fairness::run(&net, ids, each, quiet).await?;
            }
            Phase::Join => {
                report["join"] = join::run(&net, Duration::from_secs(3600), quiet).await?;
            }
            Phase::Prune => {
                report["prune"] = prune::run(&mut net, &mut anchors, quiet).await?;
            }
            Phase::Scale => {
                let mut sizes = opts.scale_sizes.clone();
                sizes.sort_unstable();
                sizes.dedup();
                let plan = scale::Plan {
                    sizes,
                    step,
                    sustain,
                    verification: Duration::from_secs(opts.verification_seconds),
                    verifiers: opts.verifiers,
                };
                report["scale"] = scale::run(&mut net, &mut anchors, &plan, quiet).await?;
            }
        }
    }
    report["compaction_settle_s"] = json!(settled_s);
    if let Some(dir) = keep {
        // A saved state at rest: a later run from it starts with nothing to compact.
        watch::settle(&rpcs, watch::SETTLE_AT_MOST).await;
        // What a later run needs to start from this directory. Anchors still in flight are
        // left out (their document numbers are not used again).
        saved::Saved {
            last_document: anchors.last_document(),
            next_batch,
            certificates: anchors.committed(&net),
        }
        .write(dir)?;
    }
    report["refusals"] = net.refusals();
    report["rss_mb_per_node"] = json!(net.rss_mb());
    report["rss_mb_timeline"] = json!(*net::lock(&net.rss_timeline));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::{bound, ratio_ceiling};

    #[test]
    fn the_ratio_ceiling_is_a_signatures_share_of_a_validators_cpu_per_transaction() {
        // 0.236 ms over four validators is 59 µs each; a batch-64 check at 64,959/s is 15.4 µs.
        assert!((ratio_ceiling(64_959.0, 0.236) - 0.261).abs() < 0.001);
        // Validators doing nothing but check signatures would reach the bound.
        assert!((ratio_ceiling(50_000.0, 4.0 * 1000.0 / 50_000.0) - 1.0).abs() < 1e-9);
        // It is the ratio of the throughput that every core spent at that cost would give,
        // whatever the number of cores.
        for cores in [1.0, 2.0, 16.0] {
            let (batch, cpu_ms) = (70_000.0, 0.25);
            let full_use_tps = cores / (cpu_ms / 1000.0);
            let ratio = full_use_tps / bound(batch, cores);
            assert!(
                (ratio - ratio_ceiling(batch, cpu_ms)).abs() < 1e-9,
                "{cores}"
            );
        }
    }
}
