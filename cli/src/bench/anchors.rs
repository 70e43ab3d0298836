//! Phase 1: single anchors. Every transaction issues one reward order, so finalized tx/s is
//! certificates/s and is directly comparable with the signature-verification bound.

use super::load::{self, Plan};
use super::net::{Net, lock};
use super::probe::{self, TICKS_PER_SECOND, milli};
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
    /// Every certificate offered, with the transaction that anchors it.
    pub offered: Vec<(TxId, CertId)>,
}

impl Anchors {
    /// Numbering documents from `first` (distinct runs on one chain use distinct ranges).
    pub fn new(first: u64) -> Anchors {
        Anchors {
            counter: first,
            offered: Vec::new(),
        }
    }

    /// The next anchor, signed by the next bench agency.
    pub fn next(&mut self, net: &mut Net) -> cachet_chain::tx::Transaction {
        self.counter += 1;
        let (id, action) = reward_order(self.counter);
        let tx = net.signed(action);
        self.offered.push((tx.id(), id));
        tx
    }

    /// The certificates offered so far whose transactions have committed.
    pub fn committed(&self, net: &Net) -> Vec<CertId> {
        let seen = lock(&net.committed);
        self.offered
            .iter()
            .filter(|(tx, _)| seen.contains_key(tx))
            .map(|(_, id)| *id)
            .collect()
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
    let cpu_ms = (net.cpu_ticks() - cpu0) as f64 / TICKS_PER_SECOND * 1000.0;
    let disk = probe::disk_per_certificate(disk0, net.disk_bytes(), committed, net.nodes.len());
    let (p50, p99) = outcome.p50_p99();
    Ok(json!({
        "finalized_tps": outcome.sustained_tps.round(),
        "offered_tps": outcome.sustained_offered.round(),
        "peak_step_finalized_tps": outcome.best_tps.round(),
        "finality_p50_ms": p50,
        "finality_p99_ms": p99,
        "committed_in_sustained_window": outcome.latencies_ms.len(),
        "offered_in_sustained_window": outcome.offered_in_window,
        "cpu_ms_per_tx_all_nodes": milli(cpu_ms / committed),
        "load_generator_cpu_s": milli((probe::own_cpu_ticks() - generator0) as f64 / probe::TICKS_PER_SECOND),
        "disk_bytes_per_certificate_per_node": disk.map(f64::round),
        "steps": outcome.steps,
    }))
}
