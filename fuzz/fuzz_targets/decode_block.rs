//! Any bytes: decoding a block never panics, and what decodes re-encodes to the same bytes.
#![no_main]
use cachet_chain::block::{Block, tx_root};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data, "the encoding is canonical");
        let _ = block.hash();
        let _ = tx_root(&block.txs);
    }
});
