//! What a node says of its own fitness to serve, for `GET /readyz` (a load balancer, Docker, a
//! monitoring system): whether it follows the chain (its head is recent), reaches enough of the
//! consortium, has disk to write to, and keeps time with the other validators. Each check reports what it saw, so that an operator
//! reads why a node is not ready.
//!
//! It is not consensus or its liveness (a ready node can still be outvoted) nor a metric store
//! (`/metrics` carries the same figures over time).

use crate::config::Health;
use cachet_rpc::{Check, Readiness};
use std::path::Path;

/// What the checks read, gathered by the caller.
pub struct Observed<'a> {
    /// The committed head's height.
    pub height: u64,
    /// Milliseconds since the committed head's block time, by this node's clock corrected by
    /// its skew (0 if the head's time is later).
    pub head_age_ms: u64,
    /// How far this node's clock stands from the other proposers', once known.
    pub clock: Option<crate::clock::Skew>,
    /// Consortium peers connected (transaction gossip).
    pub peers: usize,
    /// Validators in the current set.
    pub validators: usize,
    /// The node's data directory.
    pub home: &'a Path,
    /// Whether the node waits for disk space before writing ([`crate::disk`]).
    pub writes_paused: bool,
}

/// Peers a node must reach so that, with itself, more than two thirds of `validators` are in
/// touch: `⌊2n/3⌋` (0 for a single validator).
pub fn peers_needed(validators: usize) -> usize {
    2 * validators / 3
}

/// Run every check against `limits`.
pub fn readiness(seen: &Observed<'_>, limits: &Health) -> Readiness {
    let following = Check {
        name: "following".into(),
        ok: seen.head_age_ms <= limits.max_head_age_ms,
        detail: format!(
            "head at height {}, {} ms old (at most {} ms)",
            seen.height, seen.head_age_ms, limits.max_head_age_ms
        ),
    };
    let needed = peers_needed(seen.validators);
    let peers = Check {
        name: "peers".into(),
        ok: seen.peers >= needed,
        detail: format!(
            "{} consortium peers connected, {needed} needed with {} validators",
            seen.peers, seen.validators
        ),
    };
    let min_free = limits.min_free_disk_mb.saturating_mul(1 << 20);
    let disk = match crate::disk::free_bytes(seen.home) {
        Ok(free) => Check {
            name: "disk".into(),
            ok: free >= min_free && !seen.writes_paused,
            detail: format!(
                "{} MiB free under {} (at least {} MiB){}",
                free >> 20,
                seen.home.display(),
                limits.min_free_disk_mb,
                if seen.writes_paused {
                    "; below the reserve: committing nothing until space is freed"
                } else {
                    ""
                }
            ),
        },
        Err(e) => Check {
            name: "disk".into(),
            ok: false,
            detail: format!(
                "cannot read the free space under {}: {e}",
                seen.home.display()
            ),
        },
    };
    let clock = match seen.clock {
        None => Check {
            name: "clock".into(),
            ok: true,
            detail: "not enough proposals from other validators yet to compare clocks".into(),
        },
        Some(skew) => Check {
            name: "clock".into(),
            ok: skew.within_drift(),
            detail: skew.describe(),
        },
    };
    let checks = vec![following, peers, disk, clock];
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        height: seen.height,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_two_thirds_with_the_node_itself() {
        for (n, needed) in [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (7, 4), (10, 6)] {
            assert_eq!(peers_needed(n), needed, "{n} validators");
            // With itself, the node reaches more than two thirds; one peer fewer does not.
            assert!(3 * (needed + 1) > 2 * n);
            assert!(needed == 0 || 3 * needed <= 2 * n);
        }
    }

    #[test]
    fn each_failing_check_says_why_and_makes_the_node_unready() {
        let home = std::env::temp_dir();
        let limits = Health::default();
        let seen = |head_age_ms, peers| Observed {
            height: 7,
            head_age_ms,
            clock: None,
            peers,
            validators: 4,
            home: &home,
            writes_paused: false,
        };
        let ready = readiness(&seen(100, 3), &limits);
        assert!(ready.checks[..2].iter().all(|c| c.ok), "{ready:?}");
        assert!(ready.checks[3].ok, "{ready:?}");
        let stale = readiness(&seen(limits.max_head_age_ms + 1, 3), &limits);
        assert!(!stale.ready && !stale.checks[0].ok, "{stale:?}");
        let alone = readiness(&seen(100, 1), &limits);
        assert!(!alone.ready && !alone.checks[1].ok, "{alone:?}");
        assert!(alone.checks[1].detail.contains("2 needed"), "{alone:?}");
        let full = readiness(
            &seen(100, 3),
            &Health {
                min_free_disk_mb: u64::MAX >> 20,
                ..limits
            },
        );
        assert!(!full.ready && !full.checks[2].ok, "{full:?}");
        for (ms, ok) in [
            (9_000, true),
            (-9_000, true),
            (61_000, false),
            (-61_000, false),
        ] {
            let skewed = readiness(
                &Observed {
                    clock: Some(crate::clock::Skew { ms, samples: 15 }),
                    ..seen(100, 3)
                },
                &limits,
            );
            assert_eq!(skewed.checks[3].ok, ok, "{skewed:?}");
            assert_eq!(skewed.ready, ok, "{skewed:?}");
        }
    }
}
