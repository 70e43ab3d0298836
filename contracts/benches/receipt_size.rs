//! How big a receipt is on a large state: the size a QR code has to carry. Fills a chain with
//! land titles (1,000,000 by default; `CACHET_RECEIPT_FILL` sets another count), issues a batch
//! of 7,800 reward orders (one a civil-servant agency), and prints one JSON object with the
//! receipts' sizes as a node sends them — just more than two thirds of the 4 validators'
//! signatures, no issuer record, a verifier trusting the latest checkpoint — and with the
//! issuer's record, as the verify page asks for it.
//! Run: `cargo bench -p cachet-contracts --bench receipt_size`.

#[path = "../tests/common/mod.rs"]
mod common;

use cachet_chain::ids::{CertKind, Height};
use cachet_chain::receipt::verify;
use cachet_chain::tx::{Action, Issuance, Terms, TxBody};
use cachet_chain::verdict::Verdict;
use common::receipts::{batch_entry_receipt, certificate_receipt, trust};
use common::{World, doc, id, parcel};
use std::time::Instant;

/// Issuances a block carries while filling.
const BLOCK: usize = 5_000;
/// Entries of the batch: one reward order for each of about 7,800 agencies.
const BATCH: usize = 7_800;

fn main() {
    let fill: usize = std::env::var("CACHET_RECEIPT_FILL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let mut w = World::new();
    let key = w.keys["moi-land"].clone();
    let mut last = None;
    let mut issued = 0;
    while issued < fill {
        let nonce = w.agency("moi-land").next_nonce;
        let n = BLOCK.min(fill - issued);
        let txs = (0..n)
            .map(|i| {
                let name = format!("title-{}", issued + i);
                let issuance = Issuance {
                    kind: CertKind::LandTitle,
                    commitment: doc(&name),
                    valid_from: None,
                    valid_until: None,
                    terms: Terms::LandTitle {
                        parcel: parcel(&name),
                    },
                };
                last = Some(issuance.cert_id());
                TxBody {
                    chain_id: w.chain.head().chain_id.clone(),
                    signer: id("moi-land"),
                    key: key.public(),
                    nonce: nonce + i as u64,
                    expires_at: Height(w.chain.head().height.0 + 100),
                    action: Action::Issue(issuance),
                }
                .sign(&key)
            })
            .collect();
        let built = w.submit_block(txs);
        assert!(built.failures().is_empty(), "{:?}", built.failures());
        issued += n;
    }
    let filled_s = started.elapsed().as_secs_f64();
    let (batch, tree, commitments) = common::receipts::issue_reward_orders_of(&mut w, BATCH);

    let title = last.expect("at least one title");
    let trust = trust();
    let now = w.chain.head().time.plus_ms(1000);
    let with_issuer = certificate_receipt(&w, title);
    let mut single = with_issuer.clone();
    single.issuer = None;
    let entry_with_issuer =
        batch_entry_receipt(&w, "dgpa-personnel", &batch, &tree, &commitments, BATCH / 2);
    let mut entry = entry_with_issuer.clone();
    entry.issuer = None;
    for r in [&single, &with_issuer, &entry, &entry_with_issuer] {
        assert_eq!(
            verify(r, &trust, now, None).unwrap().verdict,
            Verdict::Valid
        );
        assert_eq!(r.commit.signatures.len(), 3, "just over two thirds of 4");
    }
    println!(
        "{}",
        serde_json::json!({
            "certificates": fill + BATCH,
            "validators": 4,
            "batch_leaves": BATCH,
            "receipt_bytes_single": single.encode().len(),
            "receipt_bytes_batch_entry": entry.encode().len(),
            "with_issuer_record": {
                "receipt_bytes_single": with_issuer.encode().len(),
                "receipt_bytes_batch_entry": entry_with_issuer.encode().len(),
            },
            "fill_seconds": (filled_s * 10.0).round() / 10.0,
        })
    );
}
