//! The process's memory allocator: jemalloc, for Rust and C++ alike.
//!
//! With the override feature jemalloc defines `malloc` and `free` in the executable itself, so
//! the shared libraries resolve to it too: RocksDB's block cache, memtables and table readers
//! (allocated through libstdc++'s `operator new`) share one allocator with the node's Rust.
//! RocksDB recommends jemalloc. Against glibc's allocator (6% of a validator's CPU under load) a
//! node served 14% more receipts per second and held 100-270 MB less under anchor load, and its
//! RSS levelled off in runs where glibc's kept rising (ADR 0006).
//! `cli/tests/cli.rs` checks that libstdc++ binds to it.
//!
//! Its settings are compiled in from `.cargo/config.toml`: background threads return freed pages
//! to the kernel within about a second (`dirty_decay_ms:1000`, against jemalloc's ten). With the
//! default, the pages a flush frees (a memtable, whole) stayed resident, 80-180 MB per node under
//! anchoring load, and were most of what moved a node's RSS (ADR 0006). [`heap_stats`] puts jemalloc's own split of the memory on `/metrics`.

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's statistics for the node's `/metrics`, so that an operator can split RSS into what
/// the node and RocksDB hold (`allocated`), fragmentation (`active` beyond it) and freed pages
/// jemalloc has not yet returned (`resident` beyond `active` and `metadata`).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
pub fn heap_stats() -> Option<cachet_node::metrics::HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; a new epoch refreshes them.
    epoch::advance().ok()?;
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.ok().map(|v| v as u64);
    Some(cachet_node::metrics::HeapStats {
        allocated: read(stats::allocated::read())?,
        active: read(stats::active::read())?,
        metadata: read(stats::metadata::read())?,
        resident: read(stats::resident::read())?,
        retained: read(stats::retained::read())?,
    })
}

/// Without jemalloc the system allocator keeps no statistics to report.
#[cfg(not(all(target_os = "linux", not(target_env = "musl"))))]
pub fn heap_stats() -> Option<cachet_node::metrics::HeapStats> {
    None
}

#[cfg(all(test, target_os = "linux", not(target_env = "musl")))]
mod tests {
    use super::heap_stats;

    #[test]
    fn the_statistics_follow_what_the_process_allocates() {
        let before = heap_stats().expect("jemalloc reports its statistics");
        // 256 MiB, touched so that its pages are resident. The margins below leave room for
        // whatever other tests in this process allocate or free meanwhile.
        let block = vec![1u8; 256 << 20];
        let during = heap_stats().expect("statistics");
        assert!(
            during.allocated >= before.allocated + (192 << 20),
            "{before:?} then {during:?}"
        );
        assert!(during.active >= during.allocated, "{during:?}");
        assert!(during.resident >= during.active, "{during:?}");
        assert!(during.metadata > 0, "{during:?}");
        drop(std::hint::black_box(block));
        let after = heap_stats().expect("statistics");
        assert!(
            after.allocated + (128 << 20) < during.allocated,
            "freed: {during:?} then {after:?}"
        );
    }
}
