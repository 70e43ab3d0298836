//! This node's clock: the time it stamps its proposals with and judges others' by, and how far
//! it stands from the consortium's, estimated from the proposals it receives.
//!
//! Block times come from proposers' clocks. A validator votes only for a block whose time is at
//! most [`MAX_DRIFT_MS`] ahead of its own clock, so a chain's times stay close to the clocks
//! of more than two thirds of its validators. A block that arrives with a commit certificate is
//! taken whatever this clock says: more than two thirds of the validators already judged it.
//!
//! A proposal is stamped when it is made and sent at once, so `our clock − its time`, taken
//! when it arrives, is this node's offset from its proposer's clock plus a transit of
//! milliseconds. The median of the recent ones is this node's offset from the consortium's
//! clocks as long as more than half of the recent proposers keep time. It is reported (a
//! metric, `/readyz`, one log line a minute while it is too large), never used to correct the
//! clock: setting the time is the operating system's job (NTP).
//!
//! It is not a time service, nor a source of block times for others.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tracing::warn;

/// How far a proposed block time may be ahead of our clock for us to vote for it; also how far
/// this node's clock may stand from the consortium's before it says so.
pub const MAX_DRIFT_MS: u64 = 10_000;
/// Proposals the estimate is the median of.
const WINDOW: usize = 15;
/// Proposals needed before there is an estimate.
const MIN_SAMPLES: usize = 5;
/// How often a skewed clock is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Added to the system clock: 0 but in Byzantine test nodes (`[byzantine] clock_offset_ms`).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// This node's clock, in ms since the Unix epoch (0 before it).
pub fn now_ms() -> u64 {
    let system = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    system
        .saturating_add(OFFSET_MS.load(Ordering::Relaxed))
        .max(0) as u64
}

/// How long ago `time_ms` was by the consortium's clocks: this node's, corrected by its `skew`
/// when known (a clock ahead would call every block old); 0 for a time not yet reached.
pub fn age_ms(time_ms: u64, skew: Option<Skew>) -> u64 {
    let now = (now_ms() as i64).saturating_sub(skew.map_or(0, |s| s.ms));
    now.saturating_sub(time_ms as i64).max(0) as u64
}

/// Shift this node's clock by `ms`, to test a validator whose clock is wrong.
#[cfg(feature = "byzantine")]
pub fn set_test_offset_ms(ms: i64) {
    OFFSET_MS.store(ms, Ordering::Relaxed);
}

/// The estimated offset of this node's clock from the consortium's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// Milliseconds this clock is ahead (negative: behind).
    pub ms: i64,
    /// Proposals it is the median of.
    pub samples: usize,
}

impl Skew {
    /// Is it within the drift a validator tolerates?
    pub fn within_drift(&self) -> bool {
        self.ms.unsigned_abs() <= MAX_DRIFT_MS
    }

    /// "12.3 s ahead of" / "4.0 s behind" the consortium's clocks, for people.
    pub fn describe(&self) -> String {
        let secs = self.ms.unsigned_abs() as f64 / 1000.0;
        let side = if self.ms >= 0 { "ahead of" } else { "behind" };
        format!(
            "this node's clock is {secs:.1} s {side} the consortium's (median of {} proposals; at most {} s allowed)",
            self.samples,
            MAX_DRIFT_MS / 1000
        )
    }
}

/// The recent proposals' offsets, and when a skew was last logged.
#[derive(Debug, Default)]
pub struct SkewMeter {
    inner: Mutex<Meter>,
}

#[derive(Debug, Default)]
struct Meter {
    samples: VecDeque<i64>,
    warned: Option<Instant>,
}

impl SkewMeter {
    /// A proposal stamped `block_time_ms` by another validator arrived now.
    pub fn observe(&self, block_time_ms: u64) {
        self.observe_at(now_ms(), block_time_ms, Instant::now());
    }

    fn observe_at(&self, now_ms: u64, block_time_ms: u64, at: Instant) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.samples.len() == WINDOW {
            m.samples.pop_front();
        }
        m.samples.push_back(now_ms as i64 - block_time_ms as i64);
        if let Some(skew) = median(&m.samples)
            && !skew.within_drift()
            && m.warned.is_none_or(|w| at.duration_since(w) >= WARN_EVERY)
        {
            m.warned = Some(at);
            warn!(
                skew_ms = skew.ms,
                "{}: fix this machine's time (NTP); {}",
                skew.describe(),
                if skew.ms > 0 {
                    "the others refuse this node's proposals as too far ahead"
                } else {
                    "this node cannot vote for the others' proposals and follows by their commits"
                }
            );
        }
    }

    /// The estimate, once enough proposals arrived.
    pub fn skew(&self) -> Option<Skew> {
        median(&self.inner.lock().unwrap_or_else(|p| p.into_inner()).samples)
    }
}

fn median(samples: &VecDeque<i64>) -> Option<Skew> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let mut sorted: Vec<i64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    Some(Skew {
        ms: sorted[sorted.len() / 2],
        samples: sorted.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(offsets: &[i64]) -> SkewMeter {
        let m = SkewMeter::default();
        let at = Instant::now();
        for o in offsets {
            m.observe_at((1_000_000 + o) as u64, 1_000_000, at);
        }
        m
    }

    #[test]
    fn no_estimate_from_too_few_proposals() {
        assert_eq!(meter(&[60_000; 4]).skew(), None);
        assert_eq!(meter(&[60_000; 5]).skew().map(|s| s.ms), Some(60_000));
    }

    #[test]
    fn the_median_ignores_a_minority_of_wrong_proposers() {
        // A node 60 s behind the honest majority also sees a proposer 60 s ahead of it.
        let s = meter(&[-60_000, -120_000, -60_100, -59_900, -120_000, -60_000])
            .skew()
            .unwrap();
        assert_eq!(s.ms, -60_000);
        assert!(!s.within_drift());
        assert!(s.describe().contains("60.0 s behind"), "{}", s.describe());
        // A well-set node sees a transit of milliseconds, and the wrong proposer.
        let s = meter(&[40, 35, 60_000, 20, -60_000, 50]).skew().unwrap();
        assert!(s.within_drift(), "{s:?}");
    }

    #[test]
    fn only_the_recent_window_counts() {
        let mut offsets = vec![60_000; WINDOW];
        offsets.extend([30; WINDOW / 2 + 1]);
        assert_eq!(meter(&offsets).skew().map(|s| s.ms), Some(30));
    }
}
