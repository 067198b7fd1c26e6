//! Exponential backoff with full jitter, for reconnecting and for retrying sends the server
//! refused for a passing reason. The n-th delay is drawn uniformly from
//! `0..=min(max, initial * 2^n)`, so many clients dropped at once do not come back at once.

use std::time::Duration;

use rand::Rng;

/// Delays between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The largest delay the next attempt may wait.
    pub fn ceiling(&self) -> Duration {
        ceiling(self.initial, self.max, self.attempt)
    }

    /// The delay before the next attempt, and counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.ceiling(), &mut rand::rng());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success: the next failure starts again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `min(max, initial * 2^attempt)`, without overflow.
pub(crate) fn ceiling(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

/// A delay drawn uniformly from `0..=ceiling`, at millisecond resolution.
fn jitter(ceiling: Duration, rng: &mut impl Rng) -> Duration {
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let (initial, max) = (100 * MS, 5000 * MS);
        let ceilings: Vec<_> = (0..8).map(|n| ceiling(initial, max, n)).collect();
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(|n| n * MS)
        );
        assert_eq!(ceiling(initial, max, u32::MAX), max);
        assert_eq!(ceiling(Duration::from_secs(u64::MAX / 2), max, 40), max);
    }

    #[test]
    fn delays_stay_within_bounds_and_reset() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        for n in 0..50 {
            let bound = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(delay <= bound, "attempt {n}: {delay:?} > {bound:?}");
            assert!(delay <= 1000 * MS);
        }
        assert_eq!(backoff.ceiling(), 1000 * MS);
        backoff.reset();
        assert_eq!(backoff.ceiling(), 100 * MS);
    }

    #[test]
    fn a_maximum_below_the_initial_delay_is_raised() {
        let backoff = Backoff::new(300 * MS, 100 * MS);
        assert_eq!(backoff.ceiling(), 300 * MS);
    }
}
