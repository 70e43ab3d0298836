//! The **scale** phase: how the figures move as the state grows. The chain is filled in steps
//! to each of the sizes asked for (certificates in the state, as a chain that anchored them one
//! by one holds them: the fill submits signed single anchors), and at each size, once the nodes'
//! compaction has settled, it measures the held single-anchor rate and its p99 finality, the
//! receipts one node serves at a fixed anchoring rate beside them, each node's RSS, and the
//! store bytes per certificate per node. From the points it projects each figure to
//! [`PROJECT_TO`] certificates along the power law fitted to all the points by least squares on
//! log-log axes (the figure changes by one factor for each tenfold growth of the state) — a
//! projection from a few points, stated as one.
//!
//! It is not a pass or fail: the report gives the points, and `scripts/scale-chart` draws them
//! (it reports how the figures move; reading them against the targets is for whoever runs it).

use crate::anchors::{self, Anchors};
use crate::net::Net;
use crate::{probe, verification, watch};
use anyhow::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The size the figures are projected to.
pub const PROJECT_TO: f64 = 100_000_000.0;

/// The anchoring rate beside the verifiers at each size (the 200 anchors/s).
pub const ANCHORS_BESIDE_VERIFIERS: f64 = 200.0;

/// What the phase measures at each size.
pub struct Plan {
    /// Certificates in the state at each step, increasing.
    pub sizes: Vec<usize>,
    /// Seconds per rising step of the anchors measurement.
    pub step: Duration,
    /// Seconds the best anchor rate is held.
    pub sustain: Duration,
    /// Seconds of the verification load.
    pub verification: Duration,
    /// Concurrent verifiers.
    pub verifiers: usize,
}

/// Run the phase: one point per size.
pub async fn run(net: &mut Net, anchors: &mut Anchors, plan: &Plan, quiet: bool) -> Result<Value> {
    let rpcs: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();
    let mut points = Vec::new();
    for &size in &plan.sizes {
        let have = anchors.committed(net).len();
        if size > have {
            if !quiet {
                eprintln!("scale: filling from {have} to {size} certificates");
            }
            anchors::fill(net, anchors, size - have, quiet).await?;
            net.drain(100).await?;
        }
        watch::settle(&rpcs, watch::SETTLE_AT_MOST).await;
        let certificates = anchors.committed(net).len();
        // At rest: every byte the stores hold, over every certificate in the state.
        let store = probe::store_bytes_per_certificate(
            &BTreeMap::new(),
            &net.store_bytes().await,
            certificates as f64,
            net.nodes.len(),
        );
        let rss_at_rest = net.rss_mb();
        let held = anchors::run(net, anchors, plan.step, plan.sustain, quiet).await?;
        net.drain(100).await?;
        let served = verification::run(
            net,
            anchors,
            plan.verifiers,
            ANCHORS_BESIDE_VERIFIERS,
            plan.verification,
            quiet,
        )
        .await?;
        net.drain(100).await?;
        let point = json!({
            "certificates": certificates,
            "finalized_tps": held["finalized_tps"],
            "finality_p99_ms": held["finality_p99_ms"],
            "sustained_cpu_ms_per_tx_all_nodes": held["sustained_cpu_ms_per_tx_all_nodes"],
            "receipts_per_s": served["receipts_per_s"],
            "receipt_p99_ms": served["all"]["p99_ms"],
            "anchors_beside_verifiers_tps": served["anchors_finalized_tps"],
            "rss_mb_per_node_at_rest": rss_at_rest,
            "rss_mb_per_node": net.rss_mb(),
            "store_bytes_per_certificate_per_node": store,
        });
        if !quiet {
            eprintln!("scale: {point}");
        }
        points.push(point);
    }
    Ok(json!({
        "points": points,
        "projection": projection(&points),
    }))
}

/// The figures the chart plots, with how each is read from a point.
pub const FIGURES: [(&str, &[&str]); 6] = [
    ("finalized_tps", &["finalized_tps"]),
    ("finality_p99_ms", &["finality_p99_ms"]),
    ("receipts_per_s", &["receipts_per_s"]),
    ("receipt_p99_ms", &["receipt_p99_ms"]),
    ("rss_mb_max", &["rss_mb_per_node"]),
    (
        "store_bytes_per_certificate",
        &["store_bytes_per_certificate_per_node", "all"],
    ),
];

/// A figure of a point: a number, or the largest of a list (RSS per node).
fn figure(point: &Value, path: &[&str]) -> Option<f64> {
    let mut v = point;
    for key in path {
        v = &v[*key];
    }
    match v {
        Value::Array(list) => list.iter().filter_map(Value::as_f64).reduce(f64::max),
        v => v.as_f64(),
    }
}

/// Each figure at [`PROJECT_TO`] certificates, on the power law fitted by least squares to
/// the points' logarithms; absent with fewer than two sizes, and a figure absent where fewer
/// than two points have a positive value of it.
fn projection(points: &[Value]) -> Value {
    let sizes = points
        .iter()
        .filter_map(|p| p["certificates"].as_f64())
        .filter(|n| *n > 0.0)
        .map(f64::to_bits)
        .collect::<std::collections::BTreeSet<_>>();
    if sizes.len() < 2 {
        return Value::Null;
    }
    let mut out = serde_json::Map::new();
    out.insert("certificates".into(), json!(PROJECT_TO));
    for (name, path) in FIGURES {
        let xy: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| {
                let x = p["certificates"].as_f64().filter(|n| *n > 0.0)?;
                let y = figure(p, path).filter(|v| *v > 0.0)?;
                Some((x.ln(), y.ln()))
            })
            .collect();
        if let Some(projected) = power_law_at(&xy, PROJECT_TO.ln()) {
            out.insert(name.into(), json!((projected * 10.0).round() / 10.0));
        }
    }
    Value::Object(out)
}

/// The least-squares line through `xy` (logarithms), evaluated at `x` and exponentiated; `None`
/// without two distinct x.
fn power_law_at(xy: &[(f64, f64)], x: f64) -> Option<f64> {
    let n = xy.len() as f64;
    let mean_x = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if xy.len() < 2 || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xy.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((mean_y + slope * (x - mean_x)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_projected_along_a_power_law_fitted_to_the_points() {
        let point = |n: f64, tps: f64, rss: [u64; 2], bytes: f64| {
            json!({
                "certificates": n,
                "finalized_tps": tps,
                "rss_mb_per_node": rss,
                "store_bytes_per_certificate_per_node": { "all": bytes },
            })
        };
        let points = [
            point(1e5, 4000.0, [300, 320], 1000.0),
            point(1e6, 2000.0, [400, 380], 1100.0),
        ];
        let p = projection(&points);
        // Two decades on from 10^6: the same factor twice more (halved twice; the largest
        // RSS, 320 → 400, times 1.25 twice; 1.1 times twice). Never below zero.
        assert_eq!(p["finalized_tps"], json!(500.0));
        assert_eq!(p["rss_mb_max"], json!(625.0));
        assert_eq!(p["store_bytes_per_certificate"], json!(1331.0));
        assert!(
            p.get("receipts_per_s").is_none(),
            "not measured: not projected"
        );
        assert_eq!(projection(&points[..1]), Value::Null);
    }
}
