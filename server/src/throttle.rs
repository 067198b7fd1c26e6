//! Rate limits keyed by who asks (a peer address, a person, a person in a room): one token
//! bucket per key, a sustained rate and a burst, and when a key is refused, how long until
//! it may try again (for `Retry-After`).
//!
//! The map of buckets is bounded: when it is full, buckets that have refilled (keys that
//! are idle) are forgotten first, and if that is not enough, the least recently seen, down
//! to three quarters of the bound. So a spray of new keys scans the map at most once per
//! quarter of the bound, not once per key. Time is `tokio::time::Instant`, so tests run on
//! paused time.
//!
//! [`client_key`] is the key of a peer address: IPv4 as it is, IPv6 by its /64 (one
//! household or one host holds a whole /64, so per-address keys would not limit it).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The most keys a [`Throttle`] remembers.
const MAX_KEYS: usize = 100_000;

/// The key a peer address is limited by: an IPv4 address (IPv4-mapped IPv6 included) as
/// it is, an IPv6 address by its /64 network.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

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
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// A throttle allowing `rate` per key.
    pub fn new(rate: Rate) -> Self {
        Self::with_max_keys(rate, MAX_KEYS)
    }

    /// A throttle allowing `rate` per key that remembers at most `max_keys` keys.
    fn with_max_keys(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(4),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has a token now, without taking it: `Err` says when it will.
    pub fn peek(&self, key: &K) -> Result<(), RetryAfter> {
        self.peek_at(key, Instant::now())
    }

    /// Whether `key` has a token at `now`, without taking it.
    pub fn peek_at(&self, key: &K, now: Instant) -> Result<(), RetryAfter> {
        if self.rate.is_off() {
            return Ok(());
        }
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            None => Ok(()),
            Some(bucket) => self.rate.wait(bucket.refilled(self.rate, now)),
        }
    }

    /// Takes a token for `key` now whether or not one is there: the bucket may go below
    /// empty (down to minus its burst), so operations that were let through together and
    /// turned out to count are all paid for. For limits counted after the fact.
    pub fn charge(&self, key: &K) {
        self.charge_at(key, Instant::now());
    }

    /// Takes a token for `key` at `now` whether or not one is there.
    pub fn charge_at(&self, key: &K, now: Instant) {
        if self.rate.is_off() {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = self.bucket(&mut buckets, key, now);
        bucket.tokens = (bucket.tokens - 1.0).max(-self.rate.burst);
    }

    /// The bucket of `key`, refilled to `now` (made, after pruning if the map is full).
    fn bucket<'a>(
        &self,
        buckets: &'a mut HashMap<K, Bucket>,
        key: &K,
        now: Instant,
    ) -> &'a mut Bucket {
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            prune(buckets, self.rate, now, self.max_keys / 4 * 3);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            last: now,
        });
        bucket.tokens = bucket.refilled(self.rate, now);
        bucket.last = now;
        bucket
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
        let rate = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = self.bucket(&mut buckets, key, now);
        rate.wait(bucket.tokens)?;
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// How many keys are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Rate {
    /// `Ok` if `tokens` hold a whole one, else how long until they will.
    fn wait(self, tokens: f64) -> Result<(), RetryAfter> {
        if tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - tokens) / self.per_second;
            Err(RetryAfter(Duration::from_secs_f64(wait.min(86_400.0))))
        }
    }
}

impl Bucket {
    /// The tokens at `now`.
    fn refilled(self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * rate.per_second).min(rate.burst)
    }
}

/// Forgets the buckets that are full again at `now`; if more than `keep` remain, the least
/// recently seen, down to `keep`.
fn prune<K: Eq + Hash + Clone>(
    buckets: &mut HashMap<K, Bucket>,
    rate: Rate,
    now: Instant,
    keep: usize,
) {
    buckets.retain(|_, bucket| bucket.refilled(rate, now) < rate.burst);
    if buckets.len() > keep {
        let mut ages: Vec<Instant> = buckets.values().map(|b| b.last).collect();
        // The newest `keep` stay: those seen after the cut (ties at the cut go too).
        let at = ages.len() - keep - 1;
        let (_, cut, _) = ages.select_nth_unstable(at);
        let cut = *cut;
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
    fn a_full_map_is_pruned_to_three_quarters_and_not_again_at_once() {
        let start = Instant::now();
        let throttle = Throttle::with_max_keys(Rate::new(1, Duration::from_secs(3600), 2), 100);
        // A spray of new keys, each seen once (so none has refilled).
        for key in 0..100u32 {
            let now = start + Duration::from_millis(u64::from(key));
            throttle.check_at(&key, now).unwrap();
        }
        assert_eq!(throttle.len(), 100);
        throttle
            .check_at(&100, start + Duration::from_millis(100))
            .unwrap();
        assert!(throttle.len() <= 75 + 1, "{} keys", throttle.len());
        // The most recent keys were kept, with what they had used.
        throttle
            .check_at(&99, start + Duration::from_millis(101))
            .unwrap();
        assert!(
            throttle
                .check_at(&99, start + Duration::from_millis(102))
                .is_err()
        );
        // The next keys go in without another prune until the map is full again.
        let before = throttle.len();
        for key in 200..210u32 {
            throttle
                .check_at(&key, start + Duration::from_millis(200))
                .unwrap();
        }
        assert_eq!(throttle.len(), before + 10);
    }

    #[test]
    fn peek_takes_nothing_and_charge_takes_even_from_an_empty_bucket() {
        let now = Instant::now();
        let throttle = Throttle::new(Rate::new(1, Duration::from_secs(60), 2));
        for _ in 0..10 {
            assert!(throttle.peek_at(&"a", now).is_ok());
        }
        throttle.charge_at(&"a", now);
        throttle.charge_at(&"a", now);
        assert_eq!(throttle.peek_at(&"a", now).unwrap_err().secs(), 60);
        // Below empty: it takes longer to come back.
        throttle.charge_at(&"a", now);
        assert_eq!(throttle.peek_at(&"a", now).unwrap_err().secs(), 120);
        assert!(throttle.peek_at(&"b", now).is_ok());
    }

    #[test]
    fn ipv6_peers_are_keyed_by_their_64_and_mapped_v4_as_v4() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(100)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(3)).secs(), 3);
        assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
    }
}
