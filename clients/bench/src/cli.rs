//! The command line:
//!
//! - `triad-bench run --workloads ... --targets ...`: chosen workloads on chosen targets;
//! - `triad-bench compare`: workloads 1 to 3 on Triad, the Socket.IO peer and the ceiling
//!   side by side (and Triad on Redis for durable messages), with ratios;
//! - `triad-bench ceiling --listen ADDR`: the bare websocket ceiling server;
//! - `triad-bench chart results.json`: the fan-out chart as SVG on stdout;
//! - `triad-bench table results.json`: the Markdown summary on stdout.
//!
//! A run writes its JSON results to `--out` and prints the Markdown summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::json;

use crate::report::{Entry, Machine, Report, markdown};
use crate::target::{Kind, Running, Setup, Spec, version_of};
use crate::workload::sweep::{Measure, SweepSettings};
use crate::workload::{Timing, idle, setup, signal, storm, sweep};

#[derive(Parser)]
#[command(
    name = "triad-bench",
    version,
    about = "Triad's benchmark suite: load generator, peer servers, results and charts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run chosen workloads against chosen targets.
    Run {
        /// Workloads, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "idle,fanout,durable,storm,signal,setup"
        )]
        workloads: Vec<Workload>,
        /// Targets, comma-separated: triad, triad-redis, socketio, ceiling; `kind@url` for
        /// a server already running (Triad: ws://host:port/ws, with --roster).
        #[arg(long, value_delimiter = ',', default_value = "triad")]
        targets: Vec<Spec>,
        #[command(flatten)]
        options: Options,
    },
    /// Workloads 1 to 3 on Triad, Socket.IO and the ceiling, side by side, with ratios.
    Compare {
        #[command(flatten)]
        options: Options,
    },
    /// Run the bare websocket ceiling server.
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
    },
    /// Print the fan-out chart (SVG) of one or more results files.
    Chart {
        /// The results files (their fan-out results are drawn together; a later file's
        /// result replaces an earlier one of the same target).
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
    /// Print the Markdown summary of one or more results files (merged as `chart` does,
    /// ratios computed again).
    Table {
        /// The results files.
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 1: memory and CPU per idle authenticated connection.
    Idle,
    /// 2: room fan-out latency over a ladder of rates.
    Fanout,
    /// 3: durable messages per second, with the ack latency.
    Durable,
    /// 4: reconnect storm with resume.
    Storm,
    /// 5: call signalling relay.
    Signal,
    /// 6: connection setup while connections are held.
    Setup,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Fanout => "fanout",
            Self::Durable => "durable",
            Self::Storm => "storm",
            Self::Signal => "signal",
            Self::Setup => "setup",
        }
    }

    fn triad_only(self) -> bool {
        matches!(self, Self::Storm | Self::Signal)
    }
}

/// Settings of every workload.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Options {
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Measured runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seconds to wait for outstanding deliveries after the last send.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Connections set up at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Idle connections held.
    #[arg(long, default_value_t = 18000)]
    pub idle_connections: usize,
    /// Sessions per person in the idle workload (1: every connection a different person).
    #[arg(long, default_value_t = 1)]
    pub idle_sessions_per_person: usize,
    /// Trio rooms (four connections each) for fan-out and durable messages.
    #[arg(long, default_value_t = 250)]
    pub rooms: usize,
    /// Fan-out rates to try, messages per second in total.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,4000,8000,12000,16000,24000,32000"
    )]
    pub fanout_rates: Vec<f64>,
    /// The fan-out p99 budget, ms.
    #[arg(long, default_value_t = 5.0)]
    pub p99_ms: f64,
    /// Durable message rates to try, messages per second in total.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,4000,8000,12000,16000,24000,32000"
    )]
    pub durable_rates: Vec<f64>,
    /// The durable ack p99 budget, ms.
    #[arg(long, default_value_t = 50.0)]
    pub durable_p99_ms: f64,
    /// Clients in the reconnect storm (a multiple of four).
    #[arg(long, default_value_t = 3000)]
    pub storm_clients: usize,
    /// Messages per second sent into the storm's rooms throughout.
    #[arg(long, default_value_t = 500.0)]
    pub storm_rate: f64,
    /// Calls (three participants each) in the signalling workload.
    #[arg(long, default_value_t = 200)]
    pub signal_calls: usize,
    /// Seconds between a pair's negotiation rounds.
    #[arg(long, default_value_t = 1.0)]
    pub signal_round: f64,
    /// ICE candidates per side per round.
    #[arg(long, default_value_t = 8)]
    pub signal_candidates: usize,
    /// Connections per round of the setup workload.
    #[arg(long, default_value_t = 4000)]
    pub setup_connections: usize,
    /// The triad-server binary [default: next to this program].
    #[arg(long)]
    pub triad_server: Option<PathBuf>,
    /// The Socket.IO peer's folder [default: clients/bench/peers/socketio].
    #[arg(long)]
    pub socketio_dir: Option<PathBuf>,
    /// HS256 secret for the servers' tokens.
    #[arg(
        long,
        default_value = "triad-bench-secret-0123456789abcdef0123456789abcdef"
    )]
    pub jwt_secret: String,
    /// The roster of an external Triad target.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Triad's per-session outbox capacity.
    #[arg(long, default_value_t = 4096)]
    pub outbox_capacity: usize,
    /// Where servers keep their data [default: the system's temporary folder].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Appended to the target names in the results (e.g. `-tmpfs` for a run whose
    /// --data-dir is on tmpfs).
    #[arg(long, default_value = "")]
    pub label_suffix: String,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/triad-bench/results.json")]
    pub out: PathBuf,
}

impl Options {
    fn timing(&self) -> Timing {
        Timing {
            warmup_secs: self.warmup,
            run_secs: self.duration,
            runs: self.runs,
            drain_secs: self.drain,
            concurrency: self.concurrency,
        }
    }

    fn setup(&self) -> anyhow::Result<Setup> {
        let triad_server = match &self.triad_server {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("program folder")?
                .join("triad-server"),
        };
        Ok(Setup {
            triad_server,
            socketio_dir: self.socketio_dir.clone().unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/socketio")
            }),
            secret: self.jwt_secret.clone(),
            roster: self.roster.clone(),
            outbox_capacity: self.outbox_capacity,
            data_root: self.data_dir.clone(),
        })
    }
}

/// Runs the command line.
pub fn main() -> ExitCode {
    if let Some(code) = raise_open_files() {
        return code;
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("triad-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Run {
            workloads,
            targets,
            options,
        } => runtime.block_on(run(&workloads, &targets, &options)),
        Command::Compare { options } => runtime.block_on(compare(&options)),
        Command::Ceiling { listen } => runtime.block_on(ceiling(listen)),
        Command::Chart { results } => {
            merge(&results).map(|r| print!("{}", crate::chart::fanout_svg(&r)))
        }
        Command::Table { results } => merge(&results).map(|mut r| {
            r.compute_ratios();
            print!("{}", markdown(&r));
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("triad-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Thousands of sockets need more open files than the usual soft limit: when the soft
/// limit is below the hard one, runs this program again under `sh -c 'ulimit -n <hard>'`
/// (no unsafe code for `setrlimit`). Returns the child's exit code if it did.
fn raise_open_files() -> Option<ExitCode> {
    const MARK: &str = "TRIAD_BENCH_NOFILE_RAISED";
    if std::env::var_os(MARK).is_some() {
        return None;
    }
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let soft: u64 = fields.next()?.parse().ok()?;
    let hard: u64 = fields.next()?.parse().ok()?;
    if soft >= hard {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(hard.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .status()
        .ok()?;
    Some(ExitCode::from(status.code().unwrap_or(1) as u8))
}

/// Reads results files into one report; a later file's result replaces an earlier one of
/// the same workload and target.
fn merge(files: &[PathBuf]) -> anyhow::Result<Report> {
    let mut reports = files.iter().map(|f| Report::read(f));
    let mut merged = reports.next().context("no results file")??;
    for report in reports {
        for entry in report?.results {
            merged
                .results
                .retain(|e| !(e.workload == entry.workload && e.target == entry.target));
            merged.results.push(entry);
        }
    }
    Ok(merged)
}

async fn ceiling(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("ceiling listening on {}", listener.local_addr()?);
    crate::ceiling::serve(listener).await;
    Ok(())
}

async fn compare(options: &Options) -> anyhow::Result<()> {
    let plan: Vec<(Workload, Vec<Spec>)> = vec![
        (Workload::Idle, specs(&["triad", "socketio", "ceiling"])),
        (Workload::Fanout, specs(&["triad", "socketio", "ceiling"])),
        (
            Workload::Durable,
            specs(&["triad", "triad-redis", "socketio", "ceiling"]),
        ),
    ];
    execute(&plan, options).await
}

fn specs(names: &[&str]) -> Vec<Spec> {
    names
        .iter()
        .map(|n| n.parse().expect("known target names"))
        .collect()
}

/// Runs `workloads` on `targets` and writes the results.
pub async fn run(
    workloads: &[Workload],
    targets: &[Spec],
    options: &Options,
) -> anyhow::Result<()> {
    let plan: Vec<(Workload, Vec<Spec>)> =
        workloads.iter().map(|w| (*w, targets.to_vec())).collect();
    execute(&plan, options).await
}

async fn execute(plan: &[(Workload, Vec<Spec>)], options: &Options) -> anyhow::Result<()> {
    let setup = options.setup()?;
    let mut report = Report {
        suite: "triad-bench".into(),
        bench_version: env!("CARGO_PKG_VERSION").into(),
        started_at_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        machine: Machine::this(),
        versions: versions(&setup, plan),
        settings: json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "options": options,
            "plan": plan.iter().map(|(w, t)| json!({
                "workload": w.name(),
                "targets": t.iter().map(|s| s.kind.name()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        results: Vec::new(),
        ratios: Vec::new(),
    };
    for (workload, targets) in plan {
        for spec in targets {
            if workload.triad_only() && !matches!(spec.kind, Kind::Triad | Kind::TriadRedis) {
                continue;
            }
            eprintln!("== {} on {}", workload.name(), spec.kind.name());
            let result = match one(*workload, spec, &setup, options).await {
                Ok(value) => value,
                Err(err) => {
                    eprintln!("  failed: {err:#}");
                    json!({ "error": format!("{err:#}") })
                }
            };
            report.results.push(Entry {
                workload: workload.name().into(),
                target: format!("{}{}", spec.kind.name(), options.label_suffix),
                result,
            });
            // Written after every step, so a long run that is stopped keeps what it has.
            report.compute_ratios();
            report.write(&options.out)?;
        }
    }
    eprintln!("results written to {}", options.out.display());
    print!("{}", markdown(&report));
    Ok(())
}

async fn one(
    workload: Workload,
    spec: &Spec,
    setup: &Setup,
    options: &Options,
) -> anyhow::Result<serde_json::Value> {
    let timing = options.timing();
    let trios = match workload {
        Workload::Idle => options
            .idle_connections
            .div_ceil(4 * options.idle_sessions_per_person.max(1)),
        Workload::Fanout | Workload::Durable => options.rooms,
        Workload::Storm => options.storm_clients / 4,
        Workload::Signal => options.signal_calls,
        Workload::Setup => options.setup_connections / 4,
    };
    let target = Running::start(spec, setup, trios.max(1)).await?;
    let persist = workload == Workload::Durable;
    let dialect = spec.kind.dialect(persist);
    let rooms = options.rooms.min(target.trios.len());
    let sweep_settings = |rates: &[f64], p99_ms: f64| SweepSettings {
        rooms,
        rates: rates.to_vec(),
        p99_ms,
        timing: timing.clone(),
    };
    let value = match workload {
        Workload::Idle => serde_json::to_value(
            idle::run(&target, dialect, options.idle_connections, &timing).await?,
        )?,
        Workload::Fanout => serde_json::to_value(
            sweep::run(
                &target,
                dialect,
                Measure::Fanout,
                &sweep_settings(&options.fanout_rates, options.p99_ms),
            )
            .await?,
        )?,
        Workload::Durable => serde_json::to_value(
            sweep::run(
                &target,
                dialect,
                Measure::Durable,
                &sweep_settings(&options.durable_rates, options.durable_p99_ms),
            )
            .await?,
        )?,
        Workload::Storm => serde_json::to_value(
            storm::run(&target, options.storm_clients, options.storm_rate, &timing).await?,
        )?,
        Workload::Signal => serde_json::to_value(
            signal::run(
                &target,
                &signal::SignalSettings {
                    calls: options.signal_calls.min(target.trios.len()),
                    round_secs: options.signal_round,
                    candidates: options.signal_candidates,
                    sdp_bytes: 2000,
                },
                &timing,
            )
            .await?,
        )?,
        Workload::Setup => serde_json::to_value(
            setup::run(&target, dialect, options.setup_connections, &timing).await?,
        )?,
    };
    target.stop().await;
    Ok(value)
}

/// Versions of every program a plan uses.
fn versions(
    setup: &Setup,
    plan: &[(Workload, Vec<Spec>)],
) -> std::collections::BTreeMap<String, String> {
    let mut v = std::collections::BTreeMap::new();
    v.insert("triad-bench".into(), env!("CARGO_PKG_VERSION").into());
    v.insert("tokio-tungstenite (generator)".into(), "0.29".into());
    let kinds: Vec<Kind> = plan
        .iter()
        .flat_map(|(_, t)| t.iter().map(|s| s.kind))
        .collect();
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::Triad | Kind::TriadRedis))
        && let Some(s) = version_of(&setup.triad_server, &["--version"])
    {
        v.insert("triad-server".into(), s);
    }
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::TriadRedis | Kind::Socketio))
        && let Some(s) = version_of(std::path::Path::new("redis-server"), &["--version"])
    {
        v.insert("redis-server".into(), s);
    }
    if kinds.contains(&Kind::Socketio) {
        if let Some(s) = version_of(std::path::Path::new("node"), &["--version"]) {
            v.insert("node".into(), s);
        }
        for package in [
            "socket.io",
            "@socket.io/redis-adapter",
            "redis",
            "jsonwebtoken",
        ] {
            let manifest = setup
                .socketio_dir
                .join("node_modules")
                .join(package)
                .join("package.json");
            let version = std::fs::read_to_string(manifest)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|j| j.get("version")?.as_str().map(String::from));
            if let Some(version) = version {
                v.insert(format!("npm {package}"), version);
            }
        }
    }
    v
}
