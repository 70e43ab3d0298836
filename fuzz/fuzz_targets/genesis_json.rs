//! Any text as a genesis file: parsing and building the genesis state never panic.
#![no_main]
use cachet_chain::genesis::GenesisDoc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(doc) = GenesisDoc::from_json(text) {
        let _ = cachet_contracts::genesis_state(&doc);
    }
});
