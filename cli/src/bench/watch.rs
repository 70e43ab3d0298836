//! The nodes' own view of a step, sampled from their `/metrics` while it runs: the most
//! compaction RocksDB had pending on any node, heights committed, and heights decided past
//! round 0. Stalls under load lined up with compaction bursts on all nodes at once
//! (docs/performance.md, eleventh round); each step's report shows both beside its throughput,
//! so a run explains its own collapses.

use super::probe;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Between two samples of every node.
const EVERY: Duration = Duration::from_secs(1);
/// The gauge of the compaction a node's RocksDB has pending.
const PENDING_COMPACTION: &str = "cachet_store_pending_compaction_bytes";

/// What was seen since the last [`Watch::step`].
#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    /// The most pending compaction any node reported, in bytes.
    pending_compaction_max: u64,
    /// Per node, its last `(height, heights past round 0)`, and the same at the step's start.
    last: Vec<Option<(u64, u64)>>,
    first: Vec<Option<(u64, u64)>>,
}

/// Samples every node in the background until dropped.
pub struct Watch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Start sampling the nodes at these RPC addresses.
    pub fn start(rpcs: Vec<String>) -> Watch {
        let seen = Arc::new(Mutex::new(Seen {
            last: vec![None; rpcs.len()],
            first: vec![None; rpcs.len()],
            ..Seen::default()
        }));
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
    fn record(&mut self, node: usize, text: &str) {
        let value = |name| probe::metric(text, name).map(|v| v as u64);
        if let Some(pending) = value(PENDING_COMPACTION) {
            self.pending_compaction_max = self.pending_compaction_max.max(pending);
        }
        if let (Some(height), Some(past_zero)) = (
            value("cachet_height"),
            value("cachet_heights_past_round_zero_total"),
        ) {
            self.last[node] = Some((height, past_zero));
            self.first[node].get_or_insert((height, past_zero));
        }
    }

    /// The step's figures: heights and heights past round 0 are the most any node counted.
    fn take(&mut self) -> Value {
        let (mut heights, mut past_zero) = (0, 0);
        for (first, last) in self.first.iter().zip(&self.last) {
            if let (Some(first), Some(last)) = (first, last) {
                heights = heights.max(last.0.saturating_sub(first.0));
                past_zero = past_zero.max(last.1.saturating_sub(first.1));
            }
        }
        let out = json!({
            "heights": heights,
            "heights_past_round_zero": past_zero,
            "pending_compaction_max_mb": (self.pending_compaction_max as f64 / 1e6).round(),
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

    #[test]
    fn a_step_reports_the_peak_compaction_and_the_heights_since_the_last_step() {
        let mut seen = Seen {
            last: vec![None; 2],
            first: vec![None; 2],
            ..Seen::default()
        };
        seen.record(0, &metrics(10, 1, 5_000_000));
        seen.record(1, &metrics(9, 1, 190_000_000));
        seen.record(0, &metrics(14, 3, 0));
        seen.record(1, &metrics(13, 2, 20_000_000));
        assert_eq!(
            seen.take(),
            json!({ "heights": 4, "heights_past_round_zero": 2, "pending_compaction_max_mb": 190.0 })
        );
        // The next step starts where this one ended, with its peak forgotten.
        seen.record(0, &metrics(16, 3, 1_000_000));
        assert_eq!(
            seen.take(),
            json!({ "heights": 2, "heights_past_round_zero": 0, "pending_compaction_max_mb": 1.0 })
        );
        // A node never heard from counts for nothing.
        let mut silent = Seen {
            last: vec![None],
            first: vec![None],
            ..Seen::default()
        };
        assert_eq!(
            silent.take(),
            json!({ "heights": 0, "heights_past_round_zero": 0, "pending_compaction_max_mb": 0.0 })
        );
    }
}
