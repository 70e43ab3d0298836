//! Phase 2: Merkle batches. Every transaction anchors the root of `leaves` reward orders, as
//! an agency issuing a round of orders would. The generator builds each batch's Merkle tree on
//! this machine, before the window that offers it (as every phase makes its transactions), and
//! reports the CPU it used. Each certificate's commitment is drawn from a BLAKE3 output stream
//! rather than hashed from a made-up document: a salted commitment is 32 pseudo-random bytes
//! either way, and fingerprinting documents is the agency's work, done on its own machines, not
//! the chain's (hashing them here took about a core at 1 M certificates/s).
//! Afterwards a sample of entries is fetched as batch receipts and verified offline against the
//! genesis, to show that each certificate's receipt is still there.

use super::load::{self, Plan};
use super::net::{Net, lock};
use super::probe::{self, milli};
use anyhow::{Context, Result};
use cachet_chain::document::Commitment;
use cachet_chain::hash::{Domain, Hash32};
use cachet_chain::ids::CertKind;
use cachet_chain::merkle::{MerkleTree, root_of};
use cachet_chain::tx::{Action, BatchId, BatchIssuance, TxId, batch_leaf};
use serde_json::{Value, json};
use std::time::Duration;

/// Batches whose entries are kept to fetch receipts for afterwards.
const SAMPLES: usize = 16;

/// One issued batch kept for the receipt check.
struct Sample {
    tx: TxId,
    batch: BatchId,
    commitments: Vec<Commitment>,
}

struct Generator {
    leaves: u32,
    /// The number of the next batch; it picks the batch's commitments.
    next_batch: u64,
    made: usize,
    samples: Vec<Sample>,
}

/// The `n` certificate commitments of batch number `batch`: distinct for distinct batches, and
/// cheap to make (the XOF fills many blocks at once).
fn commitments_of(batch: u64, n: u32) -> Vec<Commitment> {
    let mut stream = Domain::Commitment.hasher();
    stream.update(b"cachet bench batch");
    stream.update(&batch.to_le_bytes());
    let mut bytes = vec![0u8; 32 * n as usize];
    stream.finalize_xof().fill(&mut bytes);
    bytes
        .chunks_exact(32)
        .map(|c| Commitment(Hash32(c.try_into().expect("32 bytes"))))
        .collect()
}

impl Generator {
    fn next(&mut self, net: &mut Net) -> cachet_chain::tx::Transaction {
        let commitments = commitments_of(self.next_batch, self.leaves);
        self.next_batch += 1;
        let leaves: Vec<Hash32> = commitments.iter().map(batch_leaf).collect();
        let batch = BatchIssuance {
            kind: CertKind::RewardOrder,
            root: root_of(&leaves),
            leaf_count: self.leaves,
            valid_from: None,
            valid_until: None,
        };
        let id = batch.batch_id();
        let tx = net.signed(Action::IssueBatch(batch));
        // Spread the samples over the run: every 50th batch until there are enough.
        if self.made.is_multiple_of(50) && self.samples.len() < SAMPLES {
            self.samples.push(Sample {
                tx: tx.id(),
                batch: id,
                commitments,
            });
        }
        self.made += 1;
        tx
    }
}

/// Run the phase with batches of `leaves` certificates; `next_batch` numbers the first batch,
/// and is left at the number after the last.
pub async fn run(
    net: &mut Net,
    leaves: u32,
    next_batch: &mut u64,
    step: Duration,
    sustain: Duration,
    quiet: bool,
) -> Result<Value> {
    let disk0 = net.disk_bytes();
    let store0 = net.store_bytes().await;
    let generator0 = probe::own_cpu_ticks();
    let committed0 = net.committed_count();
    let mut generator = Generator {
        leaves,
        next_batch: *next_batch,
        made: 0,
        samples: Vec::new(),
    };
    let plan = Plan {
        label: "batches",
        start_rate: 20.0,
        max_rate: 10_000.0,
        step,
        sustain,
    };
    let outcome = load::rising(net, &plan, quiet, &mut |net| generator.next(net)).await?;
    *next_batch = generator.next_batch;
    let certificates = ((net.committed_count() - committed0) as f64 * leaves as f64).max(1.0);
    let disk = probe::disk_per_certificate(disk0, net.disk_bytes(), certificates, net.nodes.len());
    let store = probe::store_bytes_per_certificate(
        &store0,
        &net.store_bytes().await,
        certificates,
        net.nodes.len(),
    );
    let (checked, receipt_bytes) = check_receipts(net, &generator.samples).await?;
    let (p50, p99) = outcome.p50_p99();
    Ok(json!({
        "leaves_per_batch": leaves,
        "certificates_per_s": (outcome.sustained_tps * leaves as f64).round(),
        "peak_step_certificates_per_s": (outcome.best_tps * leaves as f64).round(),
        "best_hold_certificates_per_s": (outcome.best_hold_tps * leaves as f64).round(),
        "batches_per_s": milli(outcome.sustained_tps),
        "finality_p50_ms": p50,
        "finality_p99_ms": p99,
        "disk_bytes_per_certificate_per_node": disk.map(milli),
        "store_bytes_per_certificate_per_node": store,
        "receipts_checked": checked,
        "receipt_bytes_batch_entry": receipt_bytes,
        "load_generator_cpu_s": milli((probe::own_cpu_ticks() - generator0) as f64 / probe::TICKS_PER_SECOND),
        "steps": outcome.steps,
    }))
}

/// Fetch one entry's receipt from each sampled batch and verify it offline against the
/// genesis; every one whose batch committed must say `valid`. Returns how many were checked
/// and the largest receipt's size in bytes.
async fn check_receipts(net: &Net, samples: &[Sample]) -> Result<(usize, usize)> {
    let trust = net.trust()?;
    let mut checked = 0;
    let mut largest = 0;
    let committed: Vec<&Sample> = {
        let seen = lock(&net.committed);
        samples
            .iter()
            .filter(|s| seen.contains_key(&s.tx))
            .collect()
    };
    for (n, sample) in committed.into_iter().enumerate() {
        let index = (n * 7919) % sample.commitments.len();
        let leaves: Vec<Hash32> = sample.commitments.iter().map(batch_leaf).collect();
        let proof = MerkleTree::new(&leaves)
            .proof(index)
            .context("index is in range")?;
        let commitment = sample.commitments[index];
        let reply = net.clients[n % net.clients.len()]
            .call(
                "cachet_batchReceipt",
                vec![
                    json!(sample.batch.0.to_string()),
                    json!(commitment.0.to_string()),
                    json!(hex::encode(cachet_chain::encode(&proof))),
                ],
            )
            .await?;
        let bytes = hex::decode(reply["receipt"].as_str().context("receipt")?)?;
        Net::check_valid(&trust, &bytes)?;
        checked += 1;
        largest = largest.max(bytes.len());
    }
    Ok((checked, largest))
}

#[cfg(test)]
mod tests {
    use super::commitments_of;
    use std::collections::HashSet;

    #[test]
    fn commitments_are_distinct_within_and_across_batches_and_repeatable() {
        let mut seen = HashSet::new();
        for batch in 0..20 {
            for c in commitments_of(batch, 100) {
                assert!(seen.insert(c), "commitment repeated in batch {batch}");
            }
        }
        assert_eq!(commitments_of(7, 3), commitments_of(7, 3));
        assert_eq!(commitments_of(7, 3)[..], commitments_of(7, 5)[..3]);
    }
}
