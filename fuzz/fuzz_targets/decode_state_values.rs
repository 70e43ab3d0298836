//! Any bytes as any state record: decoding never panics and is canonical.
#![no_main]
use cachet_chain::codec::encode;
use cachet_chain::state::*;
use libfuzzer_sys::fuzz_target;

fn check<T: borsh::BorshDeserialize + borsh::BorshSerialize>(bytes: &[u8]) {
    if let Ok(v) = decode_value::<T>(bytes) {
        assert_eq!(encode(&v), bytes, "the encoding is canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 10 {
        0 => check::<ChainParams>(rest),
        1 => check::<ValidatorSet>(rest),
        2 => check::<AgencyRecord>(rest),
        3 => check::<KindPolicy>(rest),
        4 => check::<CertificateRecord>(rest),
        5 => check::<BatchRecord>(rest),
        6 => check::<RevocationRecord>(rest),
        7 => check::<Proposal>(rest),
        8 => check::<StateKey>(rest),
        _ => check::<Accreditation>(rest),
    }
});
