//! Receipt verification, as a bank or a verify page does it offline: decode the receipt, check
//! the ≥2/3 precommits against the genesis validator set, the issuer's key history and the state
//! proof of the certificate, in a state of 2,000 certificates; and the same with the head
//! already checked for an earlier receipt of the height, as a bulk check shares it.
//! Run: `cargo bench -p cachet-contracts --bench receipt`.

#[path = "../tests/common/mod.rs"]
mod common;

use cachet_chain::ids::Timestamp;
use cachet_chain::receipt::{Receipt, verify};
use cachet_chain::verdict::Verdict;
use common::World;
use common::receipts::{certificate_receipt, trust};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn receipt(c: &mut Criterion) {
    let mut w = World::new();
    let mut last = None;
    for i in 0..2_000 {
        last = Some(w.issue_title("moi-land", &format!("title-{i}"), &format!("parcel-{i}")));
    }
    let id = last.expect("issued");
    let bytes = certificate_receipt(&w, id).encode();
    let trust = trust();
    let now = Timestamp(w.now().0 + 1);

    let mut g = c.benchmark_group("receipt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| {
        b.iter(|| Receipt::decode(&bytes).expect("decodes"))
    });
    g.bench_function("decode_and_verify_land_title", |b| {
        b.iter(|| {
            let r = Receipt::decode(&bytes).expect("decodes");
            let v = verify(&r, &trust, now, None).expect("verifies");
            assert_eq!(v.verdict, Verdict::Valid);
        })
    });
    // A bank's bulk check: receipts of one height share the head (`receipt::Verifier`), so
    // each costs its decoding and its proofs.
    let mut verifier = cachet_chain::receipt::Verifier::new(&trust);
    g.bench_function("decode_and_verify_sharing_the_head", |b| {
        b.iter(|| {
            let r = Receipt::decode(&bytes).expect("decodes");
            let v = verifier.verify(&r, now, None).expect("verifies");
            assert_eq!(v.verdict, Verdict::Valid);
        })
    });
    g.finish();
}

criterion_group!(benches, receipt);
criterion_main!(benches);
