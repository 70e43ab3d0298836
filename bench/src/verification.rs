//! Phase 3: verification under anchoring load. Concurrent verifiers (closed loop, one request
//! in flight each) ask one node for receipts (`cachet_receipt`) and verdicts with receipts
//! (`cachet_verify`) of certificates anchored earlier, while issuers keep anchoring through the
//! other nodes. A sample of the receipts served is verified offline against the genesis.

use super::anchors::Anchors;
use super::load;
use super::net::{Net, lock};
use super::probe::{self, milli, percentile};
use anyhow::{Context, Result, bail};
use cachet_chain::CertId;
use cachet_client::Client;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Certificates to draw verification requests from.
const MIN_CERTIFICATES: usize = 1000;

/// What one verifier measured.
#[derive(Default)]
struct Tally {
    receipt_ms: Vec<f64>,
    verify_ms: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
    /// The first receipt it was served, for the offline check.
    sample: Option<Vec<u8>>,
}

/// The part of a `cachet_receipt` or `cachet_verify` reply a verifier keeps.
#[derive(serde::Deserialize)]
struct Served {
    receipt: String,
}

async fn verifier(
    url: String,
    ids: Arc<Vec<CertId>>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<Tally> {
    let client = Client::new(&url)?;
    let mut tally = Tally::default();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // xorshift: a spread of certificates, the same for the same seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = ids[(x % ids.len() as u64) as usize];
        let method = if n.is_multiple_of(2) {
            "cachet_receipt"
        } else {
            "cachet_verify"
        };
        n += 1;
        let start = Instant::now();
        let reply: Result<Served, _> = client.call_as(method, vec![json!(id.0.to_string())]).await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match reply.ok().map(|r| r.receipt) {
            Some(receipt) => {
                if method == "cachet_receipt" {
                    tally.receipt_ms.push(ms);
                } else {
                    tally.verify_ms.push(ms);
                }
                if tally.sample.is_none() {
                    tally.sample = Some(hex::decode(receipt)?);
                }
            }
            None => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{method} {id:?} gave no receipt"));
                }
            }
        }
    }
    Ok(tally)
}

fn latency(mut ms: Vec<f64>) -> Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    json!({
        "requests": ms.len(),
        "p50_ms": milli(percentile(&ms, 0.50)),
        "p99_ms": milli(percentile(&ms, 0.99)),
    })
}

/// Certificates to verify: those anchored so far, or, when there are too few (the anchor phase
/// did not run), some anchored now.
pub(crate) async fn certificates(net: &mut Net, anchors: &mut Anchors) -> Result<Vec<CertId>> {
    let others: Vec<usize> = (1..net.nodes.len()).collect();
    let mut ids = anchors.committed(net);
    if ids.len() < MIN_CERTIFICATES {
        let mut make = |net: &mut Net| anchors.next(net);
        let prepared = load::prepare(net, 500.0, Duration::from_secs(4), &mut make);
        load::offer(net, prepared, &others).await?;
        net.drain(1).await?;
        ids = anchors.committed(net);
    }
    if ids.is_empty() {
        bail!("no certificate was anchored to verify");
    }
    Ok(ids)
}

/// Run the phase: `clients` verifiers on node 0 for `duration`, with anchors offered at
/// `anchor_rate` tx/s through the other nodes meanwhile.
pub async fn run(
    net: &mut Net,
    anchors: &mut Anchors,
    clients: usize,
    anchor_rate: f64,
    duration: Duration,
    quiet: bool,
) -> Result<Value> {
    let others: Vec<usize> = (1..net.nodes.len()).collect();
    let ids = certificates(net, anchors).await?;
    let mut make = |net: &mut Net| anchors.next(net);
    let anchoring = load::prepare(net, anchor_rate, duration, &mut make);
    let ids = Arc::new(ids);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(verifier(
                net.nodes[0].rpc.clone(),
                ids.clone(),
                i as u64 + 1,
                stop.clone(),
            ))
        })
        .collect();
    let committed0 = net.committed_count();
    let rss_from = lock(&net.rss_timeline).len();
    // CPU per receipt is steadier than receipts/s on a shared machine, and the serving node's
    // share is what a faster reply path changes (it also validates the anchors meanwhile).
    let serving_cpu0 = probe::cpu_ticks(net.nodes[0].pid);
    let own_cpu0 = probe::own_cpu_ticks();
    let start = Instant::now();
    let anchoring = load::offer(net, anchoring, &others).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let serving_cpu_ms = probe::ticks_ms(probe::cpu_ticks(net.nodes[0].pid) - serving_cpu0);
    let own_cpu_ms = probe::ticks_ms(probe::own_cpu_ticks() - own_cpu0);
    let anchored = (net.committed_count() - committed0) as f64 / elapsed;
    let mut all = Tally::default();
    let mut samples = Vec::new();
    for task in tasks {
        let t = task.await.context("verifier task")??;
        all.receipt_ms.extend(t.receipt_ms);
        all.verify_ms.extend(t.verify_ms);
        all.errors += t.errors;
        all.first_error = all.first_error.or(t.first_error);
        samples.extend(t.sample);
    }
    anchoring?;
    let checked = check_offline(net, &samples)?;
    let offline = offline_rate(net, &ids).await?;
    let served = all.receipt_ms.len() + all.verify_ms.len();
    let both: Vec<f64> = all
        .receipt_ms
        .iter()
        .chain(&all.verify_ms)
        .copied()
        .collect();
    let report = json!({
        "receipts_per_s": (served as f64 / elapsed).round(),
        "all": latency(both),
        "receipt": latency(all.receipt_ms),
        "verify": latency(all.verify_ms),
        "errors": all.errors,
        "first_error": all.first_error,
        "clients": clients,
        "certificates": ids.len(),
        "anchors_offered_tps": anchor_rate.round(),
        "anchors_finalized_tps": anchored.round(),
        "receipts_verified_offline": checked,
        "receipt_bytes_single": samples.iter().map(Vec::len).max().unwrap_or(0),
        "offline": offline,
        "serving_node_cpu_us_per_receipt": milli(serving_cpu_ms * 1000.0 / served.max(1) as f64),
        "load_generator_cpu_s": milli(own_cpu_ms / 1000.0),
        "rss_mb_max_per_minute": max_per_minute(&lock(&net.rss_timeline)[rss_from..]),
        "seconds": milli(elapsed),
    });
    if !quiet {
        eprintln!(
            "verification: {} receipts/s with anchors at {anchored:.0} tx/s",
            report["receipts_per_s"]
        );
    }
    Ok(report)
}

/// The highest RSS of any node in each minute of `samples` (`(seconds, MiB per node)`, in
/// time order), counted from the first sample: whether memory is flat over the run.
fn max_per_minute(samples: &[(u64, Vec<u64>)]) -> Vec<u64> {
    let Some((first, _)) = samples.first() else {
        return Vec::new();
    };
    let mut out: Vec<u64> = Vec::new();
    for (at, per_node) in samples {
        let minute = ((at - first) / 60) as usize;
        if out.len() <= minute {
            out.resize(minute + 1, 0);
        }
        out[minute] = out[minute].max(per_node.iter().copied().max().unwrap_or(0));
    }
    out
}

/// Verify receipts served during the run against the genesis; each must say `valid`.
/// Receipts a verifier checks offline per second on one core (decoding included), as a bank
/// checking a directory of receipts fetched together does: receipts of one height share the
/// head check (`cachet_chain::receipt::Verifier`).
async fn offline_rate(net: &Net, ids: &[CertId]) -> Result<Value> {
    const RECEIPTS: usize = 1000;
    let client = Client::new(&net.nodes[0].rpc)?;
    let mut receipts = Vec::with_capacity(RECEIPTS);
    for id in ids.iter().take(RECEIPTS) {
        let served: Served = client
            .call_as("cachet_receipt", vec![json!(id.0.to_string())])
            .await?;
        receipts.push(hex::decode(served.receipt)?);
    }
    let trust = net.trust()?;
    let now = super::net::now();
    let start = Instant::now();
    let mut verifier = cachet_chain::receipt::Verifier::new(&trust);
    for bytes in &receipts {
        let r = cachet_chain::receipt::Receipt::decode(bytes)?;
        let v = verifier.verify(&r, now, None)?;
        if v.verdict != cachet_chain::verdict::Verdict::Valid {
            bail!("the receipt for {} says {}", v.id, v.verdict);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(json!({
        "receipts": receipts.len(),
        "heads": verifier.heads_checked(),
        "receipts_verified_per_s_per_core": (receipts.len() as f64 / elapsed).round(),
    }))
}

fn check_offline(net: &Net, receipts: &[Vec<u8>]) -> Result<usize> {
    let trust = net.trust()?;
    for bytes in receipts {
        Net::check_valid(&trust, bytes)?;
    }
    Ok(receipts.len())
}

#[cfg(test)]
mod tests {
    use super::max_per_minute;

    #[test]
    fn rss_is_the_highest_node_in_each_minute_from_the_first_sample() {
        let samples = vec![
            (100, vec![10, 30]),
            (150, vec![40, 20]),
            (160, vec![5, 5]),
            (230, vec![7, 9]),
        ];
        assert_eq!(max_per_minute(&samples), vec![40, 5, 9]);
        assert!(max_per_minute(&[]).is_empty());
    }
}
