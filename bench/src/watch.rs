//! The nodes' own view of a step, sampled from their `/metrics` while it runs: the most
//! compaction RocksDB had pending on any node, heights committed, heights decided past round 0,
//! and the most any node's RocksDB compacted and read of Bloom filters from its table files.
//! Stalls under load lined up with compaction bursts on all nodes at once, and with Bloom
//! filters that did not stay cached in the block cache (ADR 0006); each step's
//! report shows them beside its throughput, so a run explains its own collapses.

use super::probe;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Between two samples of every node.
const EVERY: Duration = Duration::from_secs(1);
/// The gauge of the compaction a node's RocksDB has pending.
const PENDING_COMPACTION: &str = "cachet_store_pending_compaction_bytes";
/// Bytes of Bloom-filter blocks a node's RocksDB read from table files into its block cache.
const FILTER_READ: &str = "cachet_store_block_cache_insert_bytes_total{block=\"filter\"}";
/// Bytes a node's compaction wrote.
const COMPACTION_WRITTEN: &str = "cachet_store_compaction_write_bytes_total";

/// A node's counters at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    height: u64,
    past_zero: u64,
    /// The RocksDB counters, 0 where a node does not report them.
    filter_read: u64,
    compaction_written: u64,
}

/// What was seen since the last [`Watch::step`].
#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    /// The most pending compaction any node reported, in bytes.
    pending_compaction_max: u64,
    /// Per node, its last counters, and the same at the step's start.
    last: Vec<Option<Counters>>,
    first: Vec<Option<Counters>>,
}

/// Samples every node in the background until dropped.
pub struct Watch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Start sampling the nodes at these RPC addresses.
    pub fn start(rpcs: Vec<String>) -> Watch {
        let seen = Arc::new(Mutex::new(Seen::of(rpcs.len())));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                for (i, rpc) in rpcs.iter().enumerate() {
                    // A node that does not answer within the sampling period is skipped.
                    let Ok(Ok(text)) = tokio::time::timeout(EVERY, probe::metrics_text(rpc)).await
                    else {
                        continue;
                    };
                    let mut seen = shared.lock().unwrap_or_else(|p| p.into_inner());
                    seen.record(i, &text);
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Watch { seen, task }
    }

    /// What the nodes showed since the last call (or the start), as report fields; and a new
    /// step begins.
    pub fn step(&self) -> Value {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.take()
    }
}

/// The longest [`settle`] waits.
pub const SETTLE_AT_MOST: Duration = Duration::from_secs(180);

/// Wait until no node has compaction pending, for at most `at_most`; returns the seconds
/// waited. A state just opened compacts what its last run left: a run from a saved 600k state
/// began with 181 MB pending on every node, and its first step finalized 80 of the 200 tx/s
/// offered, which ended the rising search at once. A phase measured meanwhile measures that,
/// not the chain.
pub async fn settle(rpcs: &[String], at_most: Duration) -> f64 {
    let start = tokio::time::Instant::now();
    while start.elapsed() < at_most {
        let mut settled = true;
        for rpc in rpcs {
            let pending = match tokio::time::timeout(EVERY, probe::metrics_text(rpc)).await {
                Ok(Ok(text)) => probe::metric(&text, PENDING_COMPACTION),
                _ => None,
            };
            settled &= pending == Some(0.0);
        }
        if settled {
            break;
        }
        tokio::time::sleep(EVERY).await;
    }
    (start.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Seen {
    /// Nothing seen yet of `nodes` nodes.
    fn of(nodes: usize) -> Seen {
        Seen {
            last: vec![None; nodes],
            first: vec![None; nodes],
            ..Seen::default()
        }
    }

    fn record(&mut self, node: usize, text: &str) {
        let value = |name| probe::metric(text, name).map(|v| v as u64);
        if let Some(pending) = value(PENDING_COMPACTION) {
            self.pending_compaction_max = self.pending_compaction_max.max(pending);
        }
        if let (Some(height), Some(past_zero)) = (
            value("cachet_height"),
            value("cachet_heights_past_round_zero_total"),
        ) {
            let now = Counters {
                height,
                past_zero,
                filter_read: value(FILTER_READ).unwrap_or(0),
                compaction_written: value(COMPACTION_WRITTEN).unwrap_or(0),
            };
            self.last[node] = Some(now);
            self.first[node].get_or_insert(now);
        }
    }

    /// The step's figures: each is the most any node counted during the step.
    fn take(&mut self) -> Value {
        let mut most = Counters::default();
        for (first, last) in self.first.iter().zip(&self.last) {
            if let (Some(first), Some(last)) = (first, last) {
                let grew = |f: fn(&Counters) -> u64| f(last).saturating_sub(f(first));
                most.height = most.height.max(grew(|c| c.height));
                most.past_zero = most.past_zero.max(grew(|c| c.past_zero));
                most.filter_read = most.filter_read.max(grew(|c| c.filter_read));
                most.compaction_written =
                    most.compaction_written.max(grew(|c| c.compaction_written));
            }
        }
        let mb = |bytes: u64| (bytes as f64 / 1e6).round();
        let out = json!({
            "heights": most.height,
            "heights_past_round_zero": most.past_zero,
            "pending_compaction_max_mb": mb(self.pending_compaction_max),
            "compaction_written_mb": mb(most.compaction_written),
            "filter_read_mb": mb(most.filter_read),
        });
        self.pending_compaction_max = 0;
        self.first = self.last.clone();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;
    use serde_json::json;

    fn metrics(height: u64, past_zero: u64, pending: u64) -> String {
        format!(
            "cachet_height {height}\n\
             cachet_heights_past_round_zero_total {past_zero}\n\
             cachet_store_pending_compaction_bytes {pending}\n# EOF\n"
        )
    }

    /// The same with RocksDB's counters: filter bytes read and compaction bytes written.
    fn metrics_with_io(height: u64, filter_read: u64, compacted: u64) -> String {
        format!(
            "cachet_height {height}\n\
             cachet_heights_past_round_zero_total 0\n\
             cachet_store_pending_compaction_bytes 0\n\
             cachet_store_block_cache_insert_bytes_total{{block=\"data\"}} 999000000\n\
             cachet_store_block_cache_insert_bytes_total{{block=\"filter\"}} {filter_read}\n\
             cachet_store_compaction_write_bytes_total {compacted}\n# EOF\n"
        )
    }

    #[test]
    fn a_step_reports_the_peak_compaction_and_the_heights_since_the_last_step() {
        let mut seen = Seen::of(2);
        seen.record(0, &metrics(10, 1, 5_000_000));
        seen.record(1, &metrics(9, 1, 190_000_000));
        seen.record(0, &metrics(14, 3, 0));
        seen.record(1, &metrics(13, 2, 20_000_000));
        assert_eq!(
            seen.take(),
            json!({ "heights": 4, "heights_past_round_zero": 2, "pending_compaction_max_mb": 190.0,
                    "compaction_written_mb": 0.0, "filter_read_mb": 0.0 })
        );
        // The next step starts where this one ended, with its peak forgotten.
        seen.record(0, &metrics(16, 3, 1_000_000));
        assert_eq!(
            seen.take(),
            json!({ "heights": 2, "heights_past_round_zero": 0, "pending_compaction_max_mb": 1.0,
                    "compaction_written_mb": 0.0, "filter_read_mb": 0.0 })
        );
        // A node never heard from counts for nothing.
        let mut silent = Seen::of(1);
        assert_eq!(
            silent.take(),
            json!({ "heights": 0, "heights_past_round_zero": 0, "pending_compaction_max_mb": 0.0,
                    "compaction_written_mb": 0.0, "filter_read_mb": 0.0 })
        );
    }

    #[test]
    fn a_step_reports_the_most_filter_bytes_read_and_compaction_written_by_any_node() {
        let mut seen = Seen::of(2);
        seen.record(0, &metrics_with_io(10, 1_000_000, 50_000_000));
        seen.record(1, &metrics_with_io(10, 7_000_000, 0));
        seen.record(0, &metrics_with_io(12, 4_000_000, 250_000_000));
        seen.record(1, &metrics_with_io(12, 38_000_000, 10_000_000));
        let step = seen.take();
        // Node 1 read 31 MB of filters; node 0 compacted 200 MB. The data blocks do not count.
        assert_eq!(step["filter_read_mb"], json!(31.0));
        assert_eq!(step["compaction_written_mb"], json!(200.0));
    }
}
