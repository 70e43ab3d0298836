//! Any bytes as what a verifier decodes from a QR code, a link or a node: a receipt, a trust
//! anchor or an advance to a checkpoint. Decoding and verifying never panic, and what decodes
//! re-encodes to the same bytes.
#![no_main]
use cachet_chain::checkpoint::Advance;
use cachet_chain::ids::Timestamp;
use cachet_chain::receipt::{Receipt, verify};
use cachet_chain::trust::{Trust, TrustAnchor};
use cachet_contracts::example;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn trust() -> &'static Trust {
    static TRUST: OnceLock<Trust> = OnceLock::new();
    TRUST.get_or_init(|| Trust::from_genesis(&example::genesis()).expect("example genesis"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 3 {
        0 => {
            if let Ok(r) = Receipt::decode(rest) {
                assert_eq!(r.encode(), rest);
                let _ = verify(&r, trust(), Timestamp(u64::from(selector) << 40), None);
            }
        }
        1 => {
            if let Ok(a) = TrustAnchor::decode(rest) {
                assert_eq!(a.encode(), rest);
                let _ = a.trust(&a.root());
            }
        }
        _ => {
            if let Ok(a) = Advance::decode(rest) {
                assert_eq!(a.encode(), rest);
                let _ = a.verify(trust());
            }
        }
    }
});
