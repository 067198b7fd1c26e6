//! triad-bench: Triad's benchmark suite. An open-loop load generator on tokio-tungstenite
//! that speaks Triad's protocol (through `triad-protocol`), Socket.IO's, and a bare
//! websocket ceiling's; it starts the servers it measures as child processes, reads their
//! CPU and memory from `/proc`, and writes JSON results and an SVG chart.
//!
//! This crate is a program; the library exists so its smoke test drives the same code.
//! Hence `anyhow` throughout.
//!
//! Modules:
//! - [`cli`]: the command line (`run`, `compare`, `ceiling`, `chart`, `table`).
//! - [`workload`]: the six workloads and the traffic engine they share.
//! - [`wire`]: the three protocols the generator speaks.
//! - [`conn`]: client websockets with small buffers, and their writer tasks.
//! - [`target`]: starting and stopping the servers under test (and Redis).
//! - [`ceiling`]: the bare websocket ceiling server.
//! - [`payload`]: the stamped ~100-byte message bodies.
//! - [`record`]: HDR histograms, phases (warm-up, runs) and the median run.
//! - [`procstat`]: CPU and memory of a process from `/proc/<pid>`.
//! - [`report`]: the JSON results document, ratios and the Markdown summary.
//! - [`chart`]: the fan-out latency chart (SVG).
//! - [`clock`]: the one clock every time is read on.

pub mod ceiling;
pub mod chart;
pub mod cli;
pub mod clock;
pub mod conn;
pub mod payload;
pub mod procstat;
pub mod record;
pub mod report;
pub mod target;
pub mod wire;
pub mod workload;
