//! Idle connections (workload 1): a fleet of authenticated clients sitting in their trio
//! rooms (Socket.IO: connected with a token and joined; the ceiling: connected), and what
//! they cost the server: resident memory per connection over the server's own baseline,
//! and CPU while nothing is sent (keep-alives only), over several measured windows.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Fleet, SetupStats, Timing, connect_fleet};
use crate::procstat::{Snapshot, Usage};
use crate::target::Running;
use crate::wire::Dialect;

/// The result of an idle run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    /// Connections held.
    pub connections: usize,
    /// Distinct people they belong to.
    pub people: usize,
    /// How they were set up.
    pub setup: SetupStats,
    /// The server's resident set before any connection, KiB.
    pub server_rss_base_kib: u64,
    /// The server's resident set with every connection idle, KiB.
    pub server_rss_kib: u64,
    /// (with - before) / connections, KiB.
    pub server_rss_per_connection_kib: f64,
    /// Redis's resident set growth per connection, KiB (Socket.IO's adapter, Triad on Redis).
    pub redis_rss_per_connection_kib: Option<f64>,
    /// CPU of each process in each idle window.
    pub windows: Vec<Vec<Usage>>,
    /// The server's CPU in the median window, as a share of one core.
    pub server_cpu_cores: f64,
    /// That per connection: microseconds of CPU per connection per second.
    pub server_cpu_us_per_connection_second: f64,
    /// The generator's own resident set, KiB (to judge its share of the machine).
    pub generator_rss_kib: u64,
}

/// Holds `connections` idle clients of `target` and measures.
pub async fn run(
    target: &Running,
    dialect: Dialect,
    connections: usize,
    timing: &Timing,
) -> anyhow::Result<IdleResult> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = Snapshot::take(&target.watched);
    let (sockets, setup) = connect_fleet(target, dialect, connections, timing.concurrency).await?;
    eprintln!(
        "  {connections} idle connections in {:.1} s ({:.0}/s)",
        setup.seconds, setup.per_second
    );
    let fleet = Fleet::start(target, dialect, sockets);
    tokio::time::sleep(Duration::from_secs_f64(timing.warmup_secs.max(1.0))).await;
    let mut windows = Vec::new();
    let mut last = Snapshot::take(&target.watched);
    for _ in 0..timing.runs.max(1) {
        tokio::time::sleep(Duration::from_secs_f64(timing.run_secs)).await;
        let now = Snapshot::take(&target.watched);
        windows.push(now.since(&last));
        last = now;
    }
    let server_cpu = |w: &Vec<Usage>| {
        w.iter()
            .find(|u| u.role == "server")
            .map_or(0.0, |u| u.cpu_cores)
    };
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by(|&a, &b| server_cpu(&windows[a]).total_cmp(&server_cpu(&windows[b])));
    let median = &windows[order[(order.len() - 1) / 2]];
    let cores = server_cpu(median);
    let per_conn =
        |role: &str| (last.rss_kib(role) as f64 - base.rss_kib(role) as f64) / connections as f64;
    let has_redis = target.watched.iter().any(|w| w.role == "redis");
    let closed = fleet
        .shared
        .closed
        .load(std::sync::atomic::Ordering::Relaxed);
    if closed > 0 {
        anyhow::bail!("{closed} idle connections were closed by the server");
    }
    let result = IdleResult {
        connections,
        people: connections.min(target.trios.len() * 4),
        setup,
        server_rss_base_kib: base.rss_kib("server"),
        server_rss_kib: last.rss_kib("server"),
        server_rss_per_connection_kib: per_conn("server"),
        redis_rss_per_connection_kib: has_redis.then(|| per_conn("redis")),
        windows: windows.clone(),
        server_cpu_cores: cores,
        server_cpu_us_per_connection_second: cores * 1e6 / connections as f64,
        generator_rss_kib: crate::procstat::sample(std::process::id()).map_or(0, |s| s.rss_kib),
    };
    eprintln!(
        "  server RSS {} -> {} KiB: {:.1} KiB per connection; idle CPU {:.3} cores",
        result.server_rss_base_kib,
        result.server_rss_kib,
        result.server_rss_per_connection_kib,
        cores
    );
    fleet.close().await;
    Ok(result)
}
