//! What the bench reads off this machine and off the node processes: ed25519 rates, CPU ticks,
//! resident memory, bytes on disk, and latency percentiles.

use cachet_chain::crypto::{SecretKey, verify_many};
use cachet_chain::hash::Domain;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub use cachet_node::metrics::TICKS_PER_SECOND;

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
    u32::try_from(pid).map_or(0, cachet_node::metrics::cpu_ticks)
}

/// CPU ticks used by this process (the load generator).
pub fn own_cpu_ticks() -> u64 {
    cachet_node::metrics::cpu_ticks(std::process::id())
}

/// Milliseconds of CPU in `ticks`.
pub fn ticks_ms(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND * 1000.0
}

/// Resident memory of a process, in MiB.
pub fn rss_mb(pid: u64) -> u64 {
    u32::try_from(pid).map_or(0, cachet_node::metrics::resident_bytes) >> 20
}

/// A node's `/metrics` text, from its RPC address (`http://host:port`).
pub async fn metrics_text(rpc: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = rpc.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut body)).await??;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The value of an unlabelled sample `name` in a metrics text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A node's table and memtable bytes per RocksDB column family, read from its `/metrics` at
/// `rpc`. Unlike bytes under a directory, these leave out files a compaction is still writing
/// or has just made obsolete, and the write-ahead log: a node stopped or sampled
/// mid-compaction showed 20% more on disk than it holds.
pub async fn store_bytes(rpc: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(store_bytes_of(&metrics_text(rpc).await?))
}

/// The families' `cachet_store_sst_bytes` plus `cachet_store_memtable_bytes` in a metrics text.
fn store_bytes_of(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix("cachet_store_sst_bytes{family=\"")
            .or_else(|| line.strip_prefix("cachet_store_memtable_bytes{family=\""))
        else {
            continue;
        };
        if let Some((family, value)) = rest.split_once("\"} ")
            && let Ok(v) = value.trim().parse::<u64>()
        {
            *out.entry(family.to_string()).or_default() += v;
        }
    }
    out
}

/// Growth per certificate per node of each family between two sums over all nodes, with
/// `"all"` for their total; a family that shrank (compaction dropped more than was written)
/// counts as negative.
pub fn store_bytes_per_certificate(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    certificates: f64,
    nodes: usize,
) -> BTreeMap<String, f64> {
    let per = certificates.max(1.0) * nodes.max(1) as f64;
    let mut out: BTreeMap<String, f64> = after
        .iter()
        .map(|(family, a)| {
            let b = before.get(family).copied().unwrap_or(0);
            (family.clone(), (*a as f64 - b as f64) / per)
        })
        .filter(|(_, v)| v.abs() >= 0.5)
        .map(|(f, v)| (f, v.round()))
        .collect();
    let all = after.values().sum::<u64>() as f64 - before.values().sum::<u64>() as f64;
    out.insert("all".into(), (all / per).round());
    out
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

/// Round to three decimals (for ratios and per-transaction figures in the report).
pub fn milli(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod disk_tests {
    use super::disk_per_certificate;

    #[test]
    fn store_bytes_are_summed_per_family_from_the_metrics_text() {
        let text = "# TYPE cachet_store_sst_bytes gauge\n\
            cachet_store_sst_bytes{family=\"nodes\"} 1000\n\
            cachet_store_sst_bytes{family=\"blocks\"} 40\n\
            cachet_store_memtable_bytes{family=\"nodes\"} 24\n\
            cachet_store_live_bytes{family=\"nodes\"} 999999\n\
            # EOF\n";
        let got = super::store_bytes_of(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got["nodes"], 1024);
        assert_eq!(got["blocks"], 40);
        let before = super::store_bytes_of("cachet_store_sst_bytes{family=\"nodes\"} 24\n");
        let per = super::store_bytes_per_certificate(&before, &got, 2.0, 2);
        assert_eq!(per["nodes"], 250.0);
        assert_eq!(per["blocks"], 10.0);
        assert_eq!(per["all"], 260.0);
    }

    #[test]
    fn an_unlabelled_sample_is_read_by_its_exact_name() {
        let text = "cachet_height_seconds 9\ncachet_height 42\ncachet_cache{x=\"y\"} 1\n";
        assert_eq!(super::metric(text, "cachet_height"), Some(42.0));
        assert_eq!(super::metric(text, "cachet_cache"), None);
        assert_eq!(super::metric(text, "cachet_missing"), None);
    }

    #[test]
    fn disk_per_certificate_is_growth_per_node_or_none_when_it_shrank() {
        assert_eq!(disk_per_certificate(1_000, 9_000, 2.0, 4), Some(1_000.0));
        assert_eq!(disk_per_certificate(5_000, 5_000, 10.0, 4), Some(0.0));
        assert_eq!(disk_per_certificate(9_000, 1_000, 2.0, 4), None);
    }
}
