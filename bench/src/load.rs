//! The open-loop load driver the anchor and batch phases share: offer signed transactions in
//! 100 ms ticks at a rising rate until finalized throughput stops following the offered rate
//! (two steps in a row below 85% of it), let the backlog drain, then hold 90% of the best
//! finalized rate (15% less each time the chain does not keep up with it, up to four times) and
//! measure it, with the latency of every transaction offered in that window (submitted → seen
//! in a committed block). Each window's transactions are made before it starts.

use super::net::{Net, lock};
use super::probe::{percentile, ticks_ms};
use super::watch::Watch;
use anyhow::Result;
use cachet_chain::tx::{Transaction, TxId};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(100);
/// Held rates tried before reporting the last one.
const MAX_HOLDS: usize = 4;

/// Makes the next transaction to offer.
pub type Maker<'a> = dyn FnMut(&mut Net) -> Transaction + 'a;

/// How a phase rises and how long it holds.
pub struct Plan {
    /// What the phase offers (for progress lines).
    pub label: &'static str,
    /// Offered transactions per second of the first step.
    pub start_rate: f64,
    /// Never offer more than this.
    pub max_rate: f64,
    /// Length of a rising step.
    pub step: Duration,
    /// Length of the sustained window.
    pub sustain: Duration,
}

/// What a phase measured.
pub struct Outcome {
    /// Every step: offered and finalized tx/s.
    pub steps: Vec<Value>,
    /// The best finalized tx/s of a rising step.
    pub best_tps: f64,
    /// Finalized tx/s over the sustained window.
    pub sustained_tps: f64,
    /// Offered tx/s over the sustained window.
    pub sustained_offered: f64,
    /// The nodes' CPU (ms, all nodes together) per transaction committed in the sustained
    /// window: the cost at the rate the ratio is measured at.
    pub sustained_cpu_ms_per_tx: f64,
    /// The most any held window finalized per second: the last hold's figure when it kept up,
    /// otherwise what the chain did sustain for a whole window while falling behind.
    pub best_hold_tps: f64,
    /// Latencies (ms, ascending) of the transactions offered in the sustained window that
    /// committed.
    pub latencies_ms: Vec<f64>,
    /// Transactions offered in the sustained window.
    pub offered_in_window: usize,
}

/// A window's transactions, signed before it starts, one list per tick.
pub struct Prepared(Vec<Vec<Transaction>>);

/// Make the transactions of `duration` at `rate` per second, before the window they are
/// offered in: issuers sign (and hash their batches) on their own machines, so the two cores
/// the validators share should measure the chain, not the load generator. Fractional
/// transactions carry over from tick to tick, so low rates are offered exactly.
pub fn prepare(net: &mut Net, rate: f64, duration: Duration, make: &mut Maker<'_>) -> Prepared {
    Prepared(
        per_tick(rate, duration)
            .into_iter()
            .map(|n| (0..n).map(|_| make(net)).collect())
            .collect(),
    )
}

/// Make exactly `count` transactions spread evenly over the ticks of `duration`.
pub fn prepare_count(
    net: &mut Net,
    count: usize,
    duration: Duration,
    make: &mut Maker<'_>,
) -> Prepared {
    Prepared(
        spread(count, duration)
            .into_iter()
            .map(|n| (0..n).map(|_| make(net)).collect())
            .collect(),
    )
}

/// `count` split over the ticks of `duration`, as evenly as whole numbers allow.
fn spread(count: usize, duration: Duration) -> Vec<usize> {
    let ticks = (duration.as_millis().div_ceil(TICK.as_millis()) as usize).max(1);
    (0..ticks)
        .map(|i| count * (i + 1) / ticks - count * i / ticks)
        .collect()
}

/// How many transactions each tick of `duration` offers at `rate` per second.
fn per_tick(rate: f64, duration: Duration) -> Vec<usize> {
    let ticks = duration.as_millis().div_ceil(TICK.as_millis()) as usize;
    let mut owed = 0.0f64;
    (0..ticks)
        .map(|_| {
            owed += rate * TICK.as_secs_f64();
            let n = owed.floor() as usize;
            owed -= n as f64;
            n
        })
        .collect()
}

/// Offer `prepared` to `targets`, one tick's list every 100 ms from now (a late tick is caught
/// up at once, so the offered rate holds while submitting keeps up); returns every offered
/// transaction's id with the time it was submitted.
pub async fn offer(
    net: &mut Net,
    prepared: Prepared,
    targets: &[usize],
) -> Result<Vec<(TxId, Instant)>> {
    let mut offered = Vec::new();
    let ticks = prepared.0.len() as u32;
    let start = tokio::time::Instant::now();
    for (i, txs) in prepared.0.into_iter().enumerate() {
        tokio::time::sleep_until(start + TICK * i as u32).await;
        let at = Instant::now();
        net.submit(&txs, targets).await?;
        offered.extend(txs.iter().map(|t| (t.id(), at)));
    }
    // The window lasts its last tick too.
    tokio::time::sleep_until(start + TICK * ticks).await;
    Ok(offered)
}

/// Finalized transactions per second over `window` that began when `before` were committed.
fn finalized_since(net: &Net, before: usize, window: Duration) -> f64 {
    (net.committed_count() - before) as f64 / window.as_secs_f64()
}

/// Rising steps in a row that may finalize less than 85% of their offer before the search
/// ends. A step lasts a few seconds, so one slow height can pull it below the line while the
/// chain still keeps up: such a step is repeated once (its backlog carries into the repeat)
/// instead of ending the search early.
const SHORTFALLS_TO_STOP: usize = 2;

/// The rate of the next rising step, after one offered `rate` and `shortfalls` steps in a row
/// fell short; `None` when the search is over.
fn next_rising_step(rate: f64, shortfalls: usize, max_rate: f64) -> Option<f64> {
    if shortfalls >= SHORTFALLS_TO_STOP || rate >= max_rate {
        None
    } else if shortfalls > 0 {
        Some(rate)
    } else {
        Some((rate * 1.5).min(max_rate))
    }
}

/// Rise, drain, sustain: see the module documentation.
pub async fn rising(
    net: &mut Net,
    plan: &Plan,
    quiet: bool,
    make: &mut Maker<'_>,
) -> Result<Outcome> {
    let targets = net.all_nodes();
    let mut steps = Vec::new();
    let mut rate = plan.start_rate;
    let mut best = (0.0f64, 0.0f64); // (finalized, offered)
    let mut shortfalls = 0;
    // What each step offered, for its latencies once everything has landed.
    let mut step_offers = Vec::new();
    let watch = Watch::start(net.nodes.iter().map(|n| n.rpc.clone()).collect());
    loop {
        let prepared = prepare(net, rate, plan.step, make);
        let before = net.committed_count();
        let start = Instant::now();
        watch.step();
        step_offers.push(offer(net, prepared, &targets).await?);
        let finalized = finalized_since(net, before, start.elapsed());
        steps.push(with_health(
            json!({ "offered_tps": rate.round(), "finalized_tps": finalized.round() }),
            &watch,
        ));
        if !quiet {
            eprintln!(
                "{}: offered {rate:.0} tx/s -> finalized {finalized:.0} tx/s{}",
                plan.label,
                health_line(steps.last())
            );
        }
        if finalized > best.0 {
            best = (finalized, rate);
        }
        shortfalls = if finalized < 0.85 * rate {
            shortfalls + 1
        } else {
            0
        };
        match next_rising_step(rate, shortfalls, plan.max_rate) {
            Some(next) => rate = next,
            None => break,
        }
    }
    // Saturated: let the overload's backlog drain, then hold just below the best rate. A step's
    // figure can include backlog from the step before, so if the chain does not keep up with the
    // held rate, drain again and hold a lower one.
    let mut rate = (0.9 * best.0).max(plan.start_rate.min(100.0));
    let mut best_hold = 0.0f64;
    let (offered, finalized, cpu_ms_per_tx) = loop {
        net.drain(100).await?;
        let prepared = prepare(net, rate, plan.sustain, make);
        let before = net.committed_count();
        let cpu_before = net.cpu_ticks();
        let start = Instant::now();
        watch.step();
        let offered = offer(net, prepared, &targets).await?;
        step_offers.push(offered.clone());
        // One count for the rate and the CPU per transaction, read with the CPU.
        let window = start.elapsed();
        let committed = net.committed_count() - before;
        let cpu_ms_per_tx = ticks_ms(net.cpu_ticks() - cpu_before) / committed.max(1) as f64;
        let finalized = committed as f64 / window.as_secs_f64();
        steps.push(with_health(
            json!({ "offered_tps": rate.round(), "finalized_tps": finalized.round(), "sustained": true }),
            &watch,
        ));
        if !quiet {
            eprintln!(
                "{}: held {rate:.0} tx/s -> finalized {finalized:.0} tx/s{}",
                plan.label,
                health_line(steps.last())
            );
        }
        best_hold = best_hold.max(finalized);
        let kept_up = finalized >= 0.95 * rate;
        let attempts = steps.iter().filter(|s| s["sustained"] == true).count();
        if kept_up || attempts >= MAX_HOLDS || rate <= plan.start_rate {
            break (offered, finalized, cpu_ms_per_tx);
        }
        rate = (rate * 0.85).max(plan.start_rate);
    };
    // Let the last of them land before reading latencies.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) {
        if net.retry_len() > 0 {
            net.submit(&[], &targets).await?;
        }
        let landed = {
            let committed = lock(&net.committed);
            offered.iter().all(|(id, _)| committed.contains_key(id))
        };
        if landed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let committed = lock(&net.committed);
    let latencies = |offered: &[(TxId, Instant)]| {
        let mut ms: Vec<f64> = offered
            .iter()
            .filter_map(|(id, at)| {
                committed
                    .get(id)
                    .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        ms
    };
    // Finality latency at every offered rate, not only the held one.
    for (step, offered) in steps.iter_mut().zip(&step_offers) {
        let ms = latencies(offered);
        step["finality_p50_ms"] = json!(percentile(&ms, 0.50).round());
        step["finality_p99_ms"] = json!(percentile(&ms, 0.99).round());
    }
    let latencies_ms = latencies(&offered);
    drop(committed);
    Ok(Outcome {
        steps,
        best_tps: best.0,
        sustained_tps: finalized,
        sustained_offered: rate,
        sustained_cpu_ms_per_tx: cpu_ms_per_tx,
        best_hold_tps: best_hold,
        offered_in_window: offered.len(),
        latencies_ms,
    })
}

/// A step's figures with what the nodes showed during it (see [`Watch`]).
fn with_health(mut step: Value, watch: &Watch) -> Value {
    if let (Value::Object(step), Value::Object(health)) = (&mut step, watch.step()) {
        step.extend(health);
    }
    step
}

/// The health fields of a step for a progress line.
fn health_line(step: Option<&Value>) -> String {
    let Some(step) = step else {
        return String::new();
    };
    format!(
        " ({} heights, {} past round 0, compaction pending up to {} MB, {} MB compacted, \
         {} MB of filters read)",
        step["heights"],
        step["heights_past_round_zero"],
        step["pending_compaction_max_mb"],
        step["compaction_written_mb"],
        step["filter_read_mb"]
    )
}

impl Outcome {
    /// Finality latency p50 and p99, in ms.
    pub fn p50_p99(&self) -> (f64, f64) {
        (
            percentile(&self.latencies_ms, 0.50).round(),
            percentile(&self.latencies_ms, 0.99).round(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{next_rising_step, per_tick, spread};
    use std::time::Duration;

    #[test]
    fn ticks_carry_fractions_so_low_rates_are_offered_exactly() {
        let ticks = per_tick(15.0, Duration::from_secs(2));
        assert_eq!(ticks.len(), 20);
        assert_eq!(ticks.iter().sum::<usize>(), 30);
        assert!(ticks.iter().all(|&n| n <= 2));
        assert_eq!(
            per_tick(1_000.0, Duration::from_millis(250)),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn a_count_is_spread_exactly_over_the_ticks() {
        for count in [0, 1, 7, 49, 50, 51, 20_000, 20_001] {
            let ticks = spread(count, Duration::from_secs(5));
            assert_eq!(ticks.len(), 50);
            assert_eq!(ticks.iter().sum::<usize>(), count, "{count}");
            let (lo, hi) = (ticks.iter().min().unwrap(), ticks.iter().max().unwrap());
            assert!(hi - lo <= 1, "{count}: {ticks:?}");
        }
        assert_eq!(spread(3, Duration::ZERO), vec![3]);
    }

    #[test]
    fn one_short_step_is_repeated_two_in_a_row_end_the_search() {
        assert_eq!(next_rising_step(1_000.0, 0, 50_000.0), Some(1_500.0));
        assert_eq!(next_rising_step(1_000.0, 1, 50_000.0), Some(1_000.0));
        assert_eq!(next_rising_step(1_000.0, 2, 50_000.0), None);
        assert_eq!(next_rising_step(40_000.0, 0, 50_000.0), Some(50_000.0));
        assert_eq!(next_rising_step(50_000.0, 0, 50_000.0), None);
    }
}
