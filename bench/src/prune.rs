//! The prune phase: the bytes per certificate a node keeps with block pruning, beside an
//! archive's, on the chain as it stands (after a fill, say).
//!
//! The devnet's spare node is let in and started with no database, replaying from genesis,
//! with `block_history_heights` at the least a node accepts. Single anchors then trickle in
//! (a few per block, so that heights come at the block time) until the spare's base has
//! passed the head the chain had when the phase began: every block of the chain as it stood is
//! deleted there but for those receipts need, and compacted away (the node compacts once
//! pruning has caught up). Both the spare and node 0, an archive that took the same blocks,
//! then wait for their compaction to settle, and each one's table and memtable bytes per
//! family are divided by the single-anchor certificates the state holds.
//!
//! What it is not: a test that pruning keeps what receipts need (the store test
//! `block_pruning_keeps_the_horizon_and_the_blocks_receipts_need` checks that), nor a
//! measure of a validator's cost (the spare follows, it does not vote, unless a join phase
//! before made it a validator).

use crate::anchors::Anchors;
use crate::join::{admit, configure, height, rpc_of, spare_and_validators, start, stop};
use crate::net::Net;
use crate::probe::{self, milli};
use crate::watch;
use anyhow::{Context, Result, bail};
use cachet_client::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Anchors offered per trickle tick: enough that no proposer waits for a transaction.
const PER_TICK: usize = 2;
/// The trickle's tick.
const TICK: Duration = Duration::from_millis(100);
/// The longest the phase waits for the spare to prune the chain as it stood.
const AT_MOST: Duration = Duration::from_secs(3600);

/// Run the phase.
pub async fn run(net: &mut Net, anchors: &mut Anchors, quiet: bool) -> Result<Value> {
    let (home, validators) = spare_and_validators(net)?;
    let head0 = height(&validators[0]).await.context("node 0")?;
    admit(&validators, &home).await?;

    let config = home.join("config.toml");
    let keep = cachet_node::config::MIN_BLOCK_HISTORY;
    configure(&config, "state_sync", "enable", false)?;
    configure(&config, "storage", "block_history_heights", keep as i64)?;
    // Its own snapshots would hold its base (a joiner asks for the blocks after them).
    configure(&config, "state_sync", "snapshot_interval", 0)?;
    for dir in ["db", "wal", "snapshots"] {
        let _ = std::fs::remove_dir_all(home.join(dir));
    }
    let rpc = format!("http://{}", rpc_of(&config)?);
    let client = Client::new(&rpc)?;
    let child = start(&home, &home.join("prune.log"))?;
    let result = trickle(net, anchors, &client, &rpc, head0, quiet).await;
    let report = match result {
        Ok(seconds) => measure(net, anchors, &rpc, head0, keep, seconds, quiet).await,
        Err(e) => Err(e),
    };
    stop(child);
    report
}

/// Anchor a few certificates a tick until the spare's base has passed `head0`; the seconds
/// it took.
async fn trickle(
    net: &mut Net,
    anchors: &mut Anchors,
    client: &Client,
    rpc: &str,
    head0: u64,
    quiet: bool,
) -> Result<f64> {
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        let base = base_of(rpc).await;
        if base.is_some_and(|b| b >= head0) {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > AT_MOST {
            bail!("the pruning node's base is {base:?}, below {head0}, after {AT_MOST:?}");
        }
        let txs: Vec<_> = (0..PER_TICK).map(|_| anchors.next(net)).collect();
        net.submit(&txs, &[0]).await?;
        if !quiet && said.elapsed() > Duration::from_secs(30) {
            said = Instant::now();
            eprintln!(
                "prune: {:.0} s, the pruning node at height {:?} with base {base:?}, pruning below {head0} once the head passes {}",
                started.elapsed().as_secs_f64(),
                height(client).await,
                head0 + cachet_node::config::MIN_BLOCK_HISTORY,
            );
        }
        tokio::time::sleep(TICK).await;
    }
}

/// A node's store base, from its metrics.
async fn base_of(rpc: &str) -> Option<u64> {
    let text = probe::metrics_text(rpc).await.ok()?;
    probe::metric(&text, "cachet_store_base_height").map(|b| b as u64)
}

async fn measure(
    net: &mut Net,
    anchors: &Anchors,
    rpc: &str,
    head0: u64,
    keep: u64,
    seconds: f64,
    quiet: bool,
) -> Result<Value> {
    net.drain(1).await?;
    let rpcs = [net.nodes[0].rpc.clone(), rpc.to_string()];
    let settled = watch::settle(&rpcs, watch::SETTLE_AT_MOST).await;
    let certificates = anchors.committed(net).len() as f64;
    let archive = probe::store_bytes(&rpcs[0]).await?;
    let pruned = probe::store_bytes(&rpcs[1]).await?;
    let none = Default::default();
    let archive = probe::store_bytes_per_certificate(&none, &archive, certificates, 1);
    let pruned = probe::store_bytes_per_certificate(&none, &pruned, certificates, 1);
    if !quiet {
        eprintln!(
            "prune: {} B/certificate on an archive, {} B pruned ({certificates} certificates)",
            archive["all"], pruned["all"]
        );
    }
    Ok(json!({
        "block_history_heights": keep,
        "pruned_below": head0,
        "base": base_of(rpc).await,
        "certificates": certificates,
        "seconds": milli(seconds),
        "compaction_settle_s": settled,
        "archive_bytes_per_certificate": archive,
        "pruned_bytes_per_certificate": pruned,
    }))
}
