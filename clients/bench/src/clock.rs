//! The bench's clock: nanoseconds since one instant taken when the process first asks.
//! Every intended send time and every arrival is read on this clock, so latencies are
//! differences of two readings in the same process.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the bench's epoch.
pub fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The tokio instant of a time on the bench's clock.
pub fn instant_at(ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch() + Duration::from_nanos(ns))
}

/// Seconds as nanoseconds.
pub fn secs_ns(secs: f64) -> u64 {
    (secs * 1e9) as u64
}
