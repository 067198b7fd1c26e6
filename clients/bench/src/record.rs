//! What a measured run counts: HDR histograms of latency (microseconds) and counters, one
//! set per phase (warm-up, then each measured run). A message belongs to the phase its
//! intended send time falls in, wherever and whenever it arrives.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::payload::Stamp;

/// The highest latency recorded exactly: one minute, in microseconds.
const MAX_US: u64 = 60_000_000;

/// A new latency histogram: 1 µs to one minute, three significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Records `ns` into `h` as microseconds (at least 1, at most a minute).
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1000).clamp(1, MAX_US);
    h.record(us).expect("value within bounds");
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Summarizes a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// One phase's counters and histograms.
pub struct Phase {
    /// Its name (`warmup`, `run1`, ...).
    pub name: String,
    /// Start of the phase, ns on the bench clock (inclusive).
    pub start: u64,
    /// End of the phase (exclusive).
    pub end: u64,
    /// Messages sent whose intended time falls in the phase.
    pub sent: AtomicU64,
    /// Deliveries of those messages to members other than the sender.
    pub delivered: AtomicU64,
    /// Acks of those messages.
    pub acked: AtomicU64,
    /// Send to delivery at each other member.
    pub delivery: Mutex<Histogram<u64>>,
    /// Send to ack at the sender.
    pub ack: Mutex<Histogram<u64>>,
}

/// Phases laid end to end; messages outside every phase are not counted.
pub struct Recorder {
    /// The phases, in time order.
    pub phases: Vec<Phase>,
    /// Deliveries a receiver had already seen (must stay 0).
    pub duplicates: AtomicU64,
    /// Messages a receiver skipped over: a later message of a sender came first (must stay 0).
    pub gaps: AtomicU64,
    /// Error frames received from the server.
    pub errors: AtomicU64,
}

impl Recorder {
    /// A warm-up phase from `start`, then `runs` measured phases of `run_ns` each.
    pub fn new(start: u64, warmup_ns: u64, runs: usize, run_ns: u64) -> Self {
        let mut phases = Vec::with_capacity(runs + 1);
        let mut at = start;
        let mut push = |name: String, len: u64| {
            phases.push(Phase {
                name,
                start: at,
                end: at + len,
                sent: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                acked: AtomicU64::new(0),
                delivery: Mutex::new(histogram()),
                ack: Mutex::new(histogram()),
            });
            at += len;
        };
        push("warmup".into(), warmup_ns);
        for i in 1..=runs {
            push(format!("run{i}"), run_ns);
        }
        Self {
            phases,
            duplicates: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// When the last phase ends.
    pub fn end(&self) -> u64 {
        self.phases.last().map_or(0, |p| p.end)
    }

    fn phase(&self, t: u64) -> Option<&Phase> {
        self.phases.iter().find(|p| p.start <= t && t < p.end)
    }

    /// A message was handed to its connection.
    pub fn sent(&self, stamp: &Stamp) {
        if let Some(p) = self.phase(stamp.t) {
            p.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message reached a member other than its sender at `now`.
    pub fn delivered(&self, stamp: &Stamp, now: u64) {
        if let Some(p) = self.phase(stamp.t) {
            p.delivered.fetch_add(1, Ordering::Relaxed);
            let mut h = p.delivery.lock().unwrap_or_else(|e| e.into_inner());
            record_ns(&mut h, now.saturating_sub(stamp.t));
        }
    }

    /// A message was acknowledged to its sender at `now`.
    pub fn acked(&self, stamp: &Stamp, now: u64) {
        if let Some(p) = self.phase(stamp.t) {
            p.acked.fetch_add(1, Ordering::Relaxed);
            let mut h = p.ack.lock().unwrap_or_else(|e| e.into_inner());
            record_ns(&mut h, now.saturating_sub(stamp.t));
        }
    }

    /// What a phase measured; `fanout` is the number of other members each message should
    /// reach, and `seconds` the phase's length.
    pub fn summary(&self, phase: &Phase, fanout: u64) -> PhaseSummary {
        let sent = phase.sent.load(Ordering::Relaxed);
        let delivered = phase.delivered.load(Ordering::Relaxed);
        let acked = phase.acked.load(Ordering::Relaxed);
        let seconds = (phase.end - phase.start) as f64 / 1e9;
        let delivery = Latency::of(&phase.delivery.lock().unwrap_or_else(|e| e.into_inner()));
        let ack = Latency::of(&phase.ack.lock().unwrap_or_else(|e| e.into_inner()));
        PhaseSummary {
            name: phase.name.clone(),
            seconds,
            sent,
            expected_deliveries: sent * fanout,
            delivered,
            lost: (sent * fanout).saturating_sub(delivered),
            acked,
            sent_per_second: sent as f64 / seconds,
            acked_per_second: acked as f64 / seconds,
            deliveries_per_second: delivered as f64 / seconds,
            delivery,
            ack,
        }
    }

    /// Summaries of the measured phases (the warm-up left out).
    pub fn runs(&self, fanout: u64) -> Vec<PhaseSummary> {
        self.phases
            .iter()
            .skip(1)
            .map(|p| self.summary(p, fanout))
            .collect()
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PhaseSummary {
    /// `run1`, `run2`, ...
    pub name: String,
    /// Its length.
    pub seconds: f64,
    /// Messages sent.
    pub sent: u64,
    /// Deliveries due: each message to every other member of its room.
    pub expected_deliveries: u64,
    /// Deliveries seen.
    pub delivered: u64,
    /// Deliveries due but not seen by the end of the drain.
    pub lost: u64,
    /// Acks seen.
    pub acked: u64,
    /// Messages sent per second.
    pub sent_per_second: f64,
    /// Acks per second.
    pub acked_per_second: f64,
    /// Deliveries per second.
    pub deliveries_per_second: f64,
    /// Send to delivery at every other member.
    pub delivery: Latency,
    /// Send to ack.
    pub ack: Latency,
}

/// The index of the median run, by `key` (the lower middle for an even count).
pub fn median_by(runs: &[PhaseSummary], key: impl Fn(&PhaseSummary) -> f64) -> usize {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| key(&runs[a]).total_cmp(&key(&runs[b])));
    order
        .get(runs.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Per receiver, the last counter seen from each sender: finds duplicates and gaps.
#[derive(Default)]
pub struct Sequence {
    last: std::collections::HashMap<u32, u64>,
}

impl Sequence {
    /// Notes a delivery; returns false for a duplicate (or a message that came out of
    /// order). Gaps are counted into `recorder`.
    pub fn see(&mut self, stamp: &Stamp, recorder: &Recorder) -> bool {
        match self.last.get(&stamp.sender).copied() {
            Some(last) if stamp.n <= last => {
                recorder.duplicates.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(last) => {
                if stamp.n > last + 1 {
                    recorder
                        .gaps
                        .fetch_add(stamp.n - last - 1, Ordering::Relaxed);
                }
                self.last.insert(stamp.sender, stamp.n);
                true
            }
            None => {
                self.last.insert(stamp.sender, stamp.n);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_median() {
        let r = Recorder::new(0, 10, 3, 10);
        assert_eq!(r.end(), 40);
        let s = Stamp {
            sender: 0,
            n: 0,
            t: 15,
        };
        r.sent(&s);
        r.delivered(&s, 15 + 2_000_000);
        let runs = r.runs(1);
        assert_eq!(runs[0].sent, 1);
        assert_eq!(runs[0].lost, 0);
        assert_eq!(runs[0].delivery.p50_ms, 2.0);
        assert_eq!(runs[median_by(&runs, |p| p.sent as f64)].sent, 0);
    }

    #[test]
    fn sequence_counts_gaps_and_duplicates() {
        let r = Recorder::new(0, 0, 1, 10);
        let mut seq = Sequence::default();
        let at = |n| Stamp { sender: 1, n, t: 0 };
        assert!(seq.see(&at(0), &r));
        assert!(seq.see(&at(1), &r));
        assert!(!seq.see(&at(1), &r));
        assert!(seq.see(&at(4), &r));
        assert_eq!(r.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(r.gaps.load(Ordering::Relaxed), 2);
    }
}
