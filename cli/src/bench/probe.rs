//! What the bench reads off this machine and off the node processes: ed25519 rates, CPU ticks,
//! resident memory, bytes on disk, and latency percentiles.

use cachet_chain::crypto::{SecretKey, verify_many};
use cachet_chain::hash::Domain;
use std::path::Path;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The best of three 500 ms runs: what the core can do, not what a noisy neighbour left of it.
fn rate<F: FnMut() -> usize>(mut f: F) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < Duration::from_millis(500) {
                n += f();
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// ed25519 verifications per second on one core: strict one by one, and batches of 64.
pub fn ed25519_rates() -> (f64, f64) {
    let items: Vec<_> = (0..64u32)
        .map(|i| {
            let k = SecretKey::dev(&format!("bench-{i}"));
            let m = Domain::TxId.hash(&i.to_le_bytes());
            (k.public(), m, k.sign(&m))
        })
        .collect();
    let single = rate(|| {
        let (k, m, s) = &items[0];
        k.verify(m, s).map(|_| 1).unwrap_or(0)
    });
    let batch = rate(|| verify_many(&items).map(|_| 64).unwrap_or(0));
    (single, batch)
}

/// User + system CPU ticks a process has used.
pub fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime is the 14th field, stime the 15th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// CPU ticks used by this process (the load generator).
pub fn own_cpu_ticks() -> u64 {
    cpu_ticks(std::process::id() as u64)
}

/// Resident memory of a process, in MiB.
pub fn rss_mb(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
        / 1024
}

/// Bytes under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The `p` quantile (0..=1) of ascending `sorted` values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Round to three decimals (for ratios and per-transaction figures in the report).
/// Disk growth per certificate per node over a phase, or `None` when the data directories
/// shrank: compaction of an earlier phase's garbage then outweighed what this phase wrote, and
/// the difference says nothing about this phase (it used to be reported as 0).
pub fn disk_per_certificate(
    before: u64,
    after: u64,
    certificates: f64,
    nodes: usize,
) -> Option<f64> {
    let grown = after.checked_sub(before)? as f64;
    Some(grown / certificates.max(1.0) / nodes.max(1) as f64)
}

pub fn milli(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod disk_tests {
    use super::disk_per_certificate;

    #[test]
    fn disk_per_certificate_is_growth_per_node_or_none_when_it_shrank() {
        assert_eq!(disk_per_certificate(1_000, 9_000, 2.0, 4), Some(1_000.0));
        assert_eq!(disk_per_certificate(5_000, 5_000, 10.0, 4), Some(0.0));
        assert_eq!(disk_per_certificate(9_000, 1_000, 2.0, 4), None);
    }
}
