//! Connection setup (workload 6): how many connections a second the server takes in
//! (websocket upgrade, sign-in, room entry; for Triad `hello`, welcome, every room's `live`,
//! and a moderator's `join`) while every connection made so far stays open. Several
//! rounds, each a fresh set of connections; the median round is reported.

use serde::{Deserialize, Serialize};

use super::{Fleet, SetupStats, Timing, connect_fleet};
use crate::procstat::{Snapshot, Usage};
use crate::target::Running;
use crate::wire::Dialect;

/// A setup run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupResult {
    /// Connections per round.
    pub connections: usize,
    /// The median round (by connections per second).
    pub median: SetupStats,
    /// Every round.
    pub rounds: Vec<SetupStats>,
    /// Server CPU and memory over the median round.
    pub usage: Vec<Usage>,
}

/// Runs `timing.runs` rounds of `connections` connections each.
pub async fn run(
    target: &Running,
    dialect: Dialect,
    connections: usize,
    timing: &Timing,
) -> anyhow::Result<SetupResult> {
    let mut rounds = Vec::new();
    let mut usages = Vec::new();
    for round in 0..timing.runs.max(1) {
        let before = Snapshot::take(&target.watched);
        let (sockets, stats) =
            connect_fleet(target, dialect, connections, timing.concurrency).await?;
        usages.push(Snapshot::take(&target.watched).since(&before));
        eprintln!(
            "  round {}: {connections} connections in {:.2} s: {:.0}/s, p50 {:.1} ms p99 {:.1} ms",
            round + 1,
            stats.seconds,
            stats.per_second,
            stats.latency.p50_ms,
            stats.latency.p99_ms
        );
        rounds.push(stats);
        Fleet::start(target, dialect, sockets).close().await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| rounds[a].per_second.total_cmp(&rounds[b].per_second));
    let m = order[(order.len() - 1) / 2];
    Ok(SetupResult {
        connections,
        median: rounds[m].clone(),
        usage: usages[m].clone(),
        rounds,
    })
}
