//! Phase 1: single anchors. Every transaction issues one reward order, so finalized tx/s is
//! certificates/s and is directly comparable with the signature-verification bound.

use super::load::{self, Plan};
use super::net::{Net, lock};
use super::probe::{self, milli};
use super::saved::Saved;
use anyhow::Result;
use cachet_chain::CertId;
use cachet_chain::document::{Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::CertKind;
use cachet_chain::tx::{Action, Issuance, Terms, TxId};
use serde_json::{Value, json};
use std::time::Duration;

/// One reward order whose document is the counter `n`.
fn reward_order(n: u64) -> (CertId, Action) {
    let commitment = Commitment::new(
        &Fingerprint::of(FingerprintAlg::Sha256, &n.to_le_bytes()),
        &Salt(Hash32([5; 32])),
    );
    let action = Action::Issue(Issuance {
        kind: CertKind::RewardOrder,
        commitment,
        valid_from: None,
        valid_until: None,
        terms: Terms::Plain,
    });
    (CertId::derive(CertKind::RewardOrder, &commitment), action)
}

/// Makes reward-order anchors and remembers the certificate ids it anchored.
pub struct Anchors {
    counter: u64,
    /// Certificates a saved state already holds.
    preloaded: Vec<CertId>,
    /// Every certificate offered, with the transaction that anchors it.
    pub offered: Vec<(TxId, CertId)>,
}

impl Anchors {
    /// Numbering documents after `saved.last_document`, so that nothing repeats on the chain
    /// it was saved from, and knowing the certificates it holds.
    pub fn new(saved: &Saved) -> Anchors {
        Anchors {
            counter: saved.last_document,
            preloaded: saved.certificates.clone(),
            offered: Vec::new(),
        }
    }

    /// The last document number used.
    pub fn last_document(&self) -> u64 {
        self.counter
    }

    /// The next anchor, signed by the next bench agency.
    pub fn next(&mut self, net: &mut Net) -> cachet_chain::tx::Transaction {
        self.counter += 1;
        let (id, action) = reward_order(self.counter);
        let tx = net.signed(action);
        self.offered.push((tx.id(), id));
        tx
    }

    /// The certificates of the saved state, then those offered since whose transactions
    /// have committed.
    pub fn committed(&self, net: &Net) -> Vec<CertId> {
        let seen = lock(&net.committed);
        let mut ids = self.preloaded.clone();
        ids.extend(
            self.offered
                .iter()
                .filter(|(tx, _)| seen.contains_key(tx))
                .map(|(_, id)| *id),
        );
        ids
    }
}

/// Run the phase; the report's fields are the bench's top-level figures.
pub async fn run(
    net: &mut Net,
    anchors: &mut Anchors,
    step: Duration,
    sustain: Duration,
    quiet: bool,
) -> Result<Value> {
    let cpu0 = net.cpu_ticks();
    let disk0 = net.disk_bytes();
    let store0 = net.store_bytes().await;
    let generator0 = probe::own_cpu_ticks();
    let committed0 = net.committed_count();
    let plan = Plan {
        label: "anchors",
        start_rate: 200.0,
        max_rate: 40_000.0,
        step,
        sustain,
    };
    let outcome = load::rising(net, &plan, quiet, &mut |net| anchors.next(net)).await?;
    let committed = (net.committed_count() - committed0).max(1) as f64;
    let cpu_ms = probe::ticks_ms(net.cpu_ticks() - cpu0);
    let disk = probe::disk_per_certificate(disk0, net.disk_bytes(), committed, net.nodes.len());
    let store = probe::store_bytes_per_certificate(
        &store0,
        &net.store_bytes().await,
        committed,
        net.nodes.len(),
    );
    let (p50, p99) = outcome.p50_p99();
    Ok(json!({
        "finalized_tps": outcome.sustained_tps.round(),
        "offered_tps": outcome.sustained_offered.round(),
        "peak_step_finalized_tps": outcome.best_tps.round(),
        "best_hold_finalized_tps": outcome.best_hold_tps.round(),
        "finality_p50_ms": p50,
        "finality_p99_ms": p99,
        "committed_in_sustained_window": outcome.latencies_ms.len(),
        "offered_in_sustained_window": outcome.offered_in_window,
        "cpu_ms_per_tx_all_nodes": milli(cpu_ms / committed),
        "sustained_cpu_ms_per_tx_all_nodes": milli(outcome.sustained_cpu_ms_per_tx),
        "load_generator_cpu_s": milli((probe::own_cpu_ticks() - generator0) as f64 / probe::TICKS_PER_SECOND),
        "disk_bytes_per_certificate_per_node": disk.map(f64::round),
        "store_bytes_per_certificate_per_node": store,
        "steps": outcome.steps,
    }))
}

/// Anchors a fill offers per window (4,000/s): more than the chain takes, so that it sets
/// the pace (see [`fill`]).
const FILL_PER_WINDOW: usize = 20_000;
/// Each window of a fill.
const FILL_WINDOW: Duration = Duration::from_secs(5);
/// The longest a fill waits for the chain to catch up with one window.
const FILL_CATCH_UP: Duration = Duration::from_secs(120);

/// Anchor `count` more certificates, unmeasured: the state later phases (or later runs, from
/// the saved directory) start from. Windows of [`FILL_PER_WINDOW`] anchors are offered; after
/// each, the fill waits until at most one window's worth is uncommitted, so the chain sets the
/// pace and no backlog builds up; at the end it waits for all of them.
pub async fn fill(
    net: &mut Net,
    anchors: &mut Anchors,
    count: usize,
    quiet: bool,
) -> Result<Value> {
    let start = std::time::Instant::now();
    let store0 = net.store_bytes().await;
    let targets = net.all_nodes();
    let committed0 = net.committed_count();
    let committed = |net: &Net| net.committed_count() - committed0;
    let mut offered = 0;
    while offered < count || committed(net) < offered {
        if offered < count {
            let n = FILL_PER_WINDOW.min(count - offered);
            let prepared = load::prepare_count(net, n, FILL_WINDOW, &mut |net| anchors.next(net));
            offered += load::offer(net, prepared, &targets).await?.len();
        }
        let backlog = if offered < count { FILL_PER_WINDOW } else { 0 };
        let waited = std::time::Instant::now();
        while committed(net) + backlog < offered {
            if waited.elapsed() > FILL_CATCH_UP {
                anyhow::bail!(
                    "the fill stalled: {} of {offered} anchors committed after {FILL_CATCH_UP:?}",
                    committed(net)
                );
            }
            // Resubmit what a full mempool turned away, once something committed.
            net.drain(u64::MAX).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !quiet {
            eprintln!(
                "fill: {} of {count} anchors committed, {:.0} s",
                committed(net),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let store = probe::store_bytes_per_certificate(
        &store0,
        &net.store_bytes().await,
        committed(net) as f64,
        net.nodes.len(),
    );
    Ok(json!({
        "certificates": committed(net),
        "seconds": milli(seconds),
        "tps": (committed(net) as f64 / seconds).round(),
        "store_bytes_per_certificate_per_node": store,
    }))
}
