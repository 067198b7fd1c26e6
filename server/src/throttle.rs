//! Rate limits keyed by who asks (a peer address, a person, a person in a room): one token
//! bucket per key, a sustained rate and a burst, and when a key is refused, how long until
//! it may try again (for `Retry-After`).
//!
//! The map of buckets is bounded: when it is full, buckets that have refilled (keys that
//! are idle) are forgotten first, and if that is not enough, the oldest half. Time is
//! `tokio::time::Instant`, so tests run on paused time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The most keys a [`Throttle`] remembers.
const MAX_KEYS: usize = 100_000;

/// A rate: `per_period` operations per `period` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    per_second: f64,
    /// The bucket's size.
    burst: f64,
}

impl Rate {
    /// `count` per `period`, sustained, and `burst` at once (at least 1). A `count` of 0
    /// turns the limit off.
    pub fn new(count: u32, period: Duration, burst: u32) -> Self {
        Self {
            per_second: f64::from(count) / period.as_secs_f64().max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
        }
    }

    /// `count` per second, `burst` at once.
    pub fn per_second(count: u32, burst: u32) -> Self {
        Self::new(count, Duration::from_secs(1), burst)
    }

    fn is_off(self) -> bool {
        self.per_second <= 0.0
    }
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1: the value of a `Retry-After` header.
    pub fn secs(self) -> u64 {
        let whole = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        whole.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One rate, applied per key.
#[derive(Debug)]
pub struct Throttle<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// A throttle allowing `rate` per key.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` now, or says when one will be there.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        self.check_at(key, Instant::now())
    }

    /// Takes one token for `key` at `now`, or says when one will be there.
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        if self.rate.is_off() {
            return Ok(());
        }
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            prune(&mut buckets, self.rate, now);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(RetryAfter(Duration::from_secs_f64(wait.min(86_400.0))))
        }
    }
}

/// Forgets the buckets that are full again at `now`; if none is, the older half.
fn prune<K: Eq + Hash + Clone>(buckets: &mut HashMap<K, Bucket>, rate: Rate, now: Instant) {
    buckets.retain(|_, bucket| {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens + elapsed * rate.per_second < rate.burst
    });
    if buckets.len() >= MAX_KEYS {
        let mut ages: Vec<Instant> = buckets.values().map(|b| b.last).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        buckets.retain(|_, bucket| bucket.last > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_then_retry_after() {
        let start = Instant::now();
        let throttle = Throttle::new(Rate::new(6, Duration::from_secs(60), 2));
        let key = "203.0.113.7".to_string();
        assert!(throttle.check_at(&key, start).is_ok());
        assert!(throttle.check_at(&key, start).is_ok());
        let refused = throttle.check_at(&key, start).unwrap_err();
        assert_eq!(refused.secs(), 10);
        // Another key has its own bucket.
        assert!(
            throttle
                .check_at(&"198.51.100.1".to_string(), start)
                .is_ok()
        );
        assert!(
            throttle
                .check_at(&key, start + Duration::from_secs(10))
                .is_ok()
        );
        assert!(
            throttle
                .check_at(&key, start + Duration::from_secs(10))
                .is_err()
        );
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let throttle = Throttle::new(Rate::per_second(0, 1));
        let now = Instant::now();
        assert!((0..1000).all(|_| throttle.check_at(&1u8, now).is_ok()));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(100)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(3)).secs(), 3);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
    }
}
