//! How many candidates a proposer takes: while its build is expected to end within its budget.

use std::time::Duration;

/// Blocks smaller than this do not update the proposer's estimate of the work per transaction
/// after its candidates.
const MIN_TXS_TO_MEASURE: usize = 256;

/// Candidates for a block, handed out while the build is expected to end within its budget.
///
/// A block sized only by a count outgrows the propose timeout as the state and the load grow:
/// executing a transaction costs more on a large state and a busy machine, validators need
/// about as long again, and a round that misses the timeout costs a whole new build. The work
/// after the last candidate (the state root: walks to deep tree nodes, about half of a build on
/// a large state) grows with the candidates taken, so it is counted at `after_per_tx` each, as
/// measured in the previous build. The first candidate is always handed out, so a proposer on a
/// slow machine still makes progress.
pub(super) struct WithinBudget<I, C> {
    candidates: I,
    elapsed: C,
    budget: Duration,
    after_per_tx: Duration,
    handed_out: u32,
    /// When the last candidate had been taken: the rest of the build starts here.
    done_at: Option<Duration>,
}

impl<I, C: FnMut() -> Duration> WithinBudget<I, C> {
    pub(super) fn new(candidates: I, elapsed: C, budget: Duration, after_per_tx: Duration) -> Self {
        WithinBudget {
            candidates,
            elapsed,
            budget,
            after_per_tx,
            handed_out: 0,
            done_at: None,
        }
    }

    /// The cost per transaction of the work after the candidates, measured when the build
    /// that took `txs` of them ended at `now`. A small block says nothing about it: its fixed
    /// costs (writing the block, hashing) would count as a high cost per transaction and cut
    /// the next blocks short (a 1-transaction block at idle made the next one 987 of 2,493).
    pub(super) fn after_per_tx(&self, now: Duration, txs: usize) -> Option<Duration> {
        let done_at = self.done_at?;
        (txs >= MIN_TXS_TO_MEASURE).then(|| now.saturating_sub(done_at) / txs as u32)
    }
}

impl<I: Iterator, C: FnMut() -> Duration> Iterator for WithinBudget<I, C> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let now = (self.elapsed)();
        if self.handed_out > 0 && now + self.after_per_tx * self.handed_out >= self.budget {
            self.done_at = Some(now);
            return None;
        }
        let Some(next) = self.candidates.next() else {
            self.done_at = Some(now);
            return None;
        };
        self.handed_out += 1;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::WithinBudget;
    use std::cell::Cell;
    use std::time::Duration;

    /// A clock that moves `step` every time it is read.
    fn ticking(step: Duration) -> impl FnMut() -> Duration {
        let now = Cell::new(Duration::ZERO);
        move || {
            now.set(now.get() + step);
            now.get()
        }
    }

    #[test]
    fn candidates_stop_when_the_budget_is_spent() {
        let ms = Duration::from_millis;
        // Read before each candidate: 1 ms, 2 ms, ... at 10 ms the budget is spent.
        let taken: Vec<u32> =
            WithinBudget::new(0..1_000, ticking(ms(1)), ms(10), Duration::ZERO).collect();
        assert_eq!(taken, (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn the_work_after_the_candidates_is_counted_and_measured() {
        let ms = Duration::from_millis;
        // Each candidate taken adds 1 ms after the loop: at 5 ms with 4 taken the build would
        // end at 9 ms, so a fifth is taken; at 6 ms it would end at 11 ms, so the loop stops.
        let mut budgeted = WithinBudget::new(0..1_000, ticking(ms(1)), ms(10), ms(1));
        let taken: Vec<u32> = budgeted.by_ref().collect();
        assert_eq!(taken, (0..5).collect::<Vec<_>>());
        // The loop ended at 6 ms. Too few for a measure: a build of 5 that ends at 16 ms would
        // say 2 ms per transaction, mostly the fixed costs of any block.
        assert_eq!(budgeted.after_per_tx(ms(16), 5), None);
        assert_eq!(budgeted.after_per_tx(ms(16), 0), None);
        // An exhausted pool also marks the end of the loop; 512 kept, ending 1,024 µs later:
        // 2 µs each.
        let mut exhausted = WithinBudget::new(0..512, || Duration::ZERO, ms(100), ms(0));
        assert_eq!(exhausted.by_ref().count(), 512);
        let us = Duration::from_micros;
        assert_eq!(exhausted.after_per_tx(us(1_024), 512), Some(us(2)));
    }

    #[test]
    fn a_spent_budget_still_takes_one_candidate_and_a_roomy_one_takes_all() {
        let ms = Duration::from_millis;
        let none_after = Duration::ZERO;
        let one: Vec<u32> = WithinBudget::new(0..100, || ms(5_000), ms(750), none_after).collect();
        assert_eq!(one, vec![0]);
        let all: Vec<u32> = WithinBudget::new(0..100, || ms(1), ms(750), ms(1)).collect();
        assert_eq!(all.len(), 100);
        let none: Vec<u32> = WithinBudget::new(0..0, || ms(5_000), ms(750), none_after).collect();
        assert!(none.is_empty());
    }
}
