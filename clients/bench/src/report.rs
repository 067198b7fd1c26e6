//! The results document: what ran (versions of every program, the machine, the settings),
//! each workload's result per target, and the ratios between Triad and its peers. Written
//! as JSON; [`markdown`] renders the summary table `docs/BENCHMARKS.md` is made from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A results document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always `triad-bench`.
    pub suite: String,
    /// The bench's version.
    pub bench_version: String,
    /// When the run started, ms since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// The machine.
    pub machine: Machine,
    /// Program versions: triad-server, node, socket.io, redis, ...
    pub versions: BTreeMap<String, String>,
    /// The command line's settings.
    pub settings: Value,
    /// Each workload's result on each target.
    pub results: Vec<Entry>,
    /// Triad against its peers.
    pub ratios: Vec<Ratio>,
}

/// The machine a run was taken on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Memory, KiB.
    pub memory_kib: u64,
    /// The generator and the servers share it: numbers are for comparing, not for capacity
    /// planning.
    pub note: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_kib,
            note: "generator, servers and Redis share this machine; compare ratios".into(),
        }
    }
}

/// One workload on one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// `idle`, `fanout`, `durable`, `storm`, `signal`, `setup`.
    pub workload: String,
    /// `triad`, `triad-redis`, `socketio`, `ceiling`.
    pub target: String,
    /// The workload's result, or `{"error": ...}`.
    pub result: Value,
}

/// Triad's figure over a peer's for one metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    /// The workload.
    pub workload: String,
    /// What is compared.
    pub metric: String,
    /// `lower` or `higher` is better.
    pub better: String,
    /// Triad's target (`triad` or `triad-redis`).
    pub triad_target: String,
    /// Triad's figure.
    pub triad: f64,
    /// The peer.
    pub peer: String,
    /// The peer's figure.
    pub peer_value: f64,
    /// triad / peer.
    pub ratio: f64,
}

impl Report {
    /// The result of a workload on a target.
    pub fn find(&self, workload: &str, target: &str) -> Option<&Value> {
        self.results
            .iter()
            .find(|e| {
                e.workload == workload && e.target == target && e.result.get("error").is_none()
            })
            .map(|e| &e.result)
    }

    /// Computes the ratios of Triad to each peer on the workloads both ran.
    pub fn compute_ratios(&mut self) {
        let metrics: &[(&str, &str, &str, &str)] = &[
            (
                "idle",
                "/server_rss_per_connection_kib",
                "memory per idle connection (KiB)",
                "lower",
            ),
            (
                "idle",
                "/server_cpu_us_per_connection_second",
                "idle CPU per connection (µs/s)",
                "lower",
            ),
            (
                "fanout",
                "/max_rate_within_budget",
                "highest rate with p99 under budget (msg/s)",
                "higher",
            ),
            (
                "durable",
                "/max_rate_within_budget",
                "durable messages per second within budget",
                "higher",
            ),
            (
                "setup",
                "/median/per_second",
                "connections set up per second",
                "higher",
            ),
        ];
        let mut ratios = Vec::new();
        for &(workload, pointer, metric, better) in metrics {
            for triad in ["triad", "triad-redis"] {
                let Some(t) = self
                    .find(workload, triad)
                    .and_then(|v| v.pointer(pointer))
                    .and_then(Value::as_f64)
                else {
                    continue;
                };
                for peer in ["socketio", "ceiling"] {
                    let Some(p) = self
                        .find(workload, peer)
                        .and_then(|v| v.pointer(pointer))
                        .and_then(Value::as_f64)
                    else {
                        continue;
                    };
                    if p != 0.0 {
                        ratios.push(Ratio {
                            workload: workload.into(),
                            metric: metric.into(),
                            better: better.into(),
                            triad_target: triad.into(),
                            triad: t,
                            peer: peer.into(),
                            peer_value: p,
                            ratio: t / p,
                        });
                    }
                }
            }
        }
        // Fan-out latency at the highest rate every target met.
        let common = ["triad", "socketio", "ceiling"]
            .iter()
            .filter_map(|t| self.find("fanout", t))
            .filter_map(|v| v.get("max_rate_within_budget").and_then(Value::as_f64))
            .reduce(f64::min);
        if let Some(rate) = common {
            let p99_at = |target: &str| {
                self.find("fanout", target)?
                    .get("points")?
                    .as_array()?
                    .iter()
                    .find(|p| p.get("rate").and_then(Value::as_f64) == Some(rate))?
                    .pointer("/median/delivery/p99_ms")?
                    .as_f64()
            };
            if let Some(t) = p99_at("triad") {
                for peer in ["socketio", "ceiling"] {
                    if let Some(p) = p99_at(peer).filter(|p| *p > 0.0) {
                        ratios.push(Ratio {
                            workload: "fanout".into(),
                            metric: format!("delivery p99 at {rate} msg/s (ms)"),
                            better: "lower".into(),
                            triad_target: "triad".into(),
                            triad: t,
                            peer: peer.into(),
                            peer_value: p,
                            ratio: t / p,
                        });
                    }
                }
            }
        }
        self.ratios = ratios;
    }

    /// Writes the document as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    /// Reads a document.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

fn num(v: Option<&Value>, digits: usize) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    }
}

/// A Markdown summary: one table per workload, then the ratios.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let targets = |workload: &str| -> Vec<&Entry> {
        report
            .results
            .iter()
            .filter(|e| e.workload == workload)
            .collect()
    };
    let idle = targets("idle");
    if !idle.is_empty() {
        out.push_str("| idle | connections | server RSS base → held (MiB) | KiB / connection | Redis KiB / connection | idle CPU (cores) | CPU µs / connection / s | setup / s |\n|---|---|---|---|---|---|---|---|\n");
        for e in idle {
            let r = &e.result;
            let mib = |p: &str| {
                r.get(p)
                    .and_then(Value::as_f64)
                    .map_or("–".into(), |k| format!("{:.1}", k / 1024.0))
            };
            out.push_str(&format!(
                "| {} | {} | {} → {} | {} | {} | {} | {} | {} |\n",
                e.target,
                num(r.get("connections"), 0),
                mib("server_rss_base_kib"),
                mib("server_rss_kib"),
                num(r.get("server_rss_per_connection_kib"), 1),
                num(r.get("redis_rss_per_connection_kib"), 2),
                num(r.get("server_cpu_cores"), 3),
                num(r.get("server_cpu_us_per_connection_second"), 2),
                num(r.pointer("/setup/per_second"), 0),
            ));
        }
        out.push('\n');
    }
    for workload in ["fanout", "durable"] {
        let entries = targets(workload);
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "| {workload} | rate (msg/s) | acked / s | delivery p50 / p99 / p99.9 (ms) | ack p50 / p99 / p99.9 (ms) | lost | server CPU (cores) | Redis CPU (cores) | within budget |\n|---|---|---|---|---|---|---|---|---|\n"
        ));
        for e in entries {
            let Some(points) = e.result.get("points").and_then(Value::as_array) else {
                out.push_str(&format!(
                    "| {} | error: {} |||||||\n",
                    e.target,
                    e.result
                        .get("error")
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ));
                continue;
            };
            for p in points {
                let m = p.get("median").cloned().unwrap_or_default();
                let cpu = |role: &str| {
                    p.get("usage")
                        .and_then(Value::as_array)
                        .and_then(|u| {
                            u.iter()
                                .find(|x| x.get("role").and_then(Value::as_str) == Some(role))
                        })
                        .and_then(|x| x.get("cpu_cores"))
                        .cloned()
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} / {} / {} | {} / {} / {} | {} | {} | {} | {} |\n",
                    e.target,
                    num(p.get("rate"), 0),
                    num(m.get("acked_per_second"), 0),
                    num(m.pointer("/delivery/p50_ms"), 2),
                    num(m.pointer("/delivery/p99_ms"), 2),
                    num(m.pointer("/delivery/p999_ms"), 2),
                    num(m.pointer("/ack/p50_ms"), 2),
                    num(m.pointer("/ack/p99_ms"), 2),
                    num(m.pointer("/ack/p999_ms"), 2),
                    num(m.get("lost"), 0),
                    num(cpu("server").as_ref(), 2),
                    num(cpu("redis").as_ref(), 2),
                    if p.get("within_budget").and_then(Value::as_bool) == Some(true) {
                        "yes"
                    } else {
                        "**no**"
                    },
                ));
            }
        }
        out.push('\n');
    }
    for e in targets("storm") {
        let r = &e.result;
        out.push_str(&format!(
            "storm ({}): {} clients, {} msg/s: all resumed in {} s (p50 {} ms, p99 {} ms); replayed {}, duplicates {}, gaps {}, failed {}\n\n",
            e.target,
            num(r.get("clients"), 0),
            num(r.get("rate"), 0),
            num(r.get("all_resumed_secs"), 2),
            num(r.pointer("/resume/p50_ms"), 0),
            num(r.pointer("/resume/p99_ms"), 0),
            num(r.get("replayed"), 0),
            num(r.get("duplicates"), 0),
            num(r.get("gaps"), 0),
            num(r.get("failed"), 0),
        ));
    }
    for e in targets("signal") {
        let r = &e.result;
        out.push_str(&format!(
            "signal ({}): {} calls: {} signals/s; relay p50 {} / p99 {} / p99.9 {} ms; offer to answer p50 {} / p99 {} ms; lost {}, errors {}\n\n",
            e.target,
            num(r.pointer("/settings/calls"), 0),
            num(r.get("signals_per_second"), 0),
            num(r.pointer("/median/delivery/p50_ms"), 2),
            num(r.pointer("/median/delivery/p99_ms"), 2),
            num(r.pointer("/median/delivery/p999_ms"), 2),
            num(r.pointer("/median/ack/p50_ms"), 2),
            num(r.pointer("/median/ack/p99_ms"), 2),
            num(r.pointer("/median/lost"), 0),
            num(r.get("errors"), 0),
        ));
    }
    for e in targets("setup") {
        let r = &e.result;
        out.push_str(&format!(
            "setup ({}): {} connections held: {} / s (concurrency {}); p50 {} ms, p99 {} ms\n\n",
            e.target,
            num(r.get("connections"), 0),
            num(r.pointer("/median/per_second"), 0),
            num(r.pointer("/median/concurrency"), 0),
            num(r.pointer("/median/latency/p50_ms"), 1),
            num(r.pointer("/median/latency/p99_ms"), 1),
        ));
    }
    if !report.ratios.is_empty() {
        out.push_str("| ratio | metric | Triad | peer | Triad / peer | better |\n|---|---|---|---|---|---|\n");
        for r in &report.ratios {
            out.push_str(&format!(
                "| {} / {} | {} | {:.2} | {:.2} | **{:.2}** | {} |\n",
                r.triad_target, r.peer, r.metric, r.triad, r.peer_value, r.ratio, r.better
            ));
        }
    }
    out
}
