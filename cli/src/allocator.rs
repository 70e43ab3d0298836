//! The process's memory allocator: jemalloc, for Rust and C++ alike.
//!
//! With the override feature jemalloc defines `malloc` and `free` in the executable itself, so
//! the shared libraries resolve to it too: RocksDB's block cache, memtables and table readers
//! (allocated through libstdc++'s `operator new`) share one allocator with the node's Rust.
//! RocksDB recommends jemalloc. Against glibc's allocator (6% of a validator's CPU under load) a
//! node served 14% more receipts per second and held 100-270 MB less under anchor load, and its
//! RSS levelled off in runs where glibc's kept rising (docs/performance.md, eighteenth round).
//! `cli/tests/cli.rs` checks that libstdc++ binds to it.

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
