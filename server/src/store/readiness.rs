//! Whether the store answers, as `/readyz` reports it: a background probe asks the store
//! every interval, with a deadline, and keeps the outcome, so a readiness check answers at
//! once from it (503 the moment the store is found down) instead of waiting on the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::SharedStore;

/// The store's readiness as last probed. Not ready until the first probe succeeds.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
}

impl Readiness {
    /// Whether the store answered the last probe in time.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Asks the store once, within `deadline`, and keeps the answer.
    pub async fn probe(&self, store: &SharedStore, deadline: Duration) -> bool {
        let ready = matches!(
            tokio::time::timeout(deadline, store.ready()).await,
            Ok(true)
        );
        let was = self.ready.swap(ready, Ordering::Relaxed);
        if was != ready {
            if ready {
                tracing::info!("store reachable: ready");
            } else {
                tracing::warn!("store unreachable: not ready");
            }
        }
        ready
    }
}

/// Probes the store every `interval` until `stop`. A probe that panics is logged, the
/// store counts as not ready, and probing goes on.
pub fn start(
    readiness: Arc<Readiness>,
    store: SharedStore,
    interval: Duration,
    deadline: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            // A probe under way does not hold up the shutdown.
            let probe = std::panic::AssertUnwindSafe(readiness.probe(&store, deadline));
            let outcome = tokio::select! {
                () = stop.cancelled() => break,
                outcome = probe.catch_unwind() => outcome,
            };
            if outcome.is_err() {
                tracing::error!("the store readiness probe panicked; probing again");
                readiness.ready.store(false, Ordering::Relaxed);
            }
        }
    })
}
