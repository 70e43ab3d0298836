//! Any bytes as a state proof or a batch proof: decoding and checking never panic, and a proof
//! that decodes re-encodes to the same bytes.
#![no_main]
use cachet_chain::codec::{decode, encode};
use cachet_chain::hash::Hash32;
use cachet_chain::merkle::BatchProof;
use cachet_chain::state_tree::StateProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let key = Hash32([selector; 32]);
    if selector & 1 == 0 {
        if let Ok(p) = decode::<StateProof>(rest, 1 << 16) {
            assert_eq!(encode(&p), rest);
            let _ = p.resolve(&key);
        }
    } else if let Ok(p) = decode::<BatchProof>(rest, 1 << 16) {
        assert_eq!(encode(&p), rest);
        let _ = p.root_for(u32::from(selector) * 1000 + 1, &key);
        let _ = p.root_for(u32::MAX, &key);
    }
});
