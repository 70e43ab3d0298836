//! Any bytes as a snapshot manifest or chunk (what a joining node takes from a peer): decoding
//! and checking never panic, what decodes re-encodes to the same bytes, a manifest is refused
//! unless it makes the root it is checked against, and a chunk checks against a manifest only
//! if it holds exactly that manifest's entries for it.
#![no_main]
use cachet_chain::hash::Hash32;
use cachet_chain::snapshot::{Chunk, Entry, Manifest, chunk_of};
use cachet_chain::state_tree::{self, value_hash};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A state of a few entries, cut at depth 2, and its chunks.
fn known() -> &'static (Manifest, Hash32, Vec<Chunk>) {
    static KNOWN: OnceLock<(Manifest, Hash32, Vec<Chunk>)> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let entries: Vec<Entry> =
            (0u8..9).map(|i| Entry { key: Hash32([i * 0x1d; 32]), value: vec![i; usize::from(i)] }).collect();
        let hashed: Vec<_> = entries.iter().map(|e| (e.key, value_hash(&e.value))).collect();
        let root = state_tree::build(&hashed, &mut |_, _| {});
        let mut chunks = vec![Chunk::default(); 4];
        for e in entries {
            chunks[chunk_of(&e.key, 2) as usize].entries.push(e);
        }
        (Manifest::cut(3, 2, &hashed), root, chunks)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (manifest, root, chunks) = known();
    if selector & 1 == 0 {
        if let Ok(m) = Manifest::decode(rest) {
            assert_eq!(m.encode(), rest);
            let made = m.root(&mut |_, _| {});
            assert_eq!(m.verify(root).is_ok(), made == *root);
            let _ = m.entries();
        }
    } else if let Ok(c) = Chunk::decode(rest) {
        assert_eq!(c.encode(), rest);
        let index = u32::from(selector >> 1) % 4;
        if manifest.check_chunk(index, &c, &mut |_, _| {}).is_ok() {
            assert_eq!(c, chunks[index as usize], "a chunk other than the state's checked");
        }
    }
});
