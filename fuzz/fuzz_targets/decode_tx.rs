//! Any bytes: decoding a transaction never panics, and what decodes re-encodes to the same bytes.
#![no_main]
use cachet_chain::tx::Transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data, "the encoding is canonical");
        let _ = tx.id();
        let _ = tx.verify_signature();
    }
});
