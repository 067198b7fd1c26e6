//! Project chores. `cargo xtask test` is the whole test run: formatting, lints, then every
//! test of the workspace. It checks that the programs the tests start are installed and
//! says how to install them when they are not. `cargo xtask cluster up|down` runs the local
//! cluster of [`xtask::cluster`] under `target/cluster/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let outcome = match task.as_str() {
        "test" => test(),
        "browser" => browser_tests(),
        "fmt" => run("cargo", &["fmt", "--all"]),
        "cluster" => match std::env::args().nth(2).as_deref() {
            Some("up") => cluster_up(),
            Some("down") => cluster_down(),
            _ => {
                eprintln!("usage: cargo xtask cluster up|down");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  test          formatting, lints and every test (what CI runs)\n  browser       the web client's type check and browser tests (part of test)\n  fmt           format the workspace\n  cluster up    start Redis, two nodes, nginx and coturn on loopback (target/cluster)\n  cluster down  stop them"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn cluster_up() -> anyhow::Result<()> {
    run("cargo", &["build", "--quiet", "-p", "triad-server"])?;
    let server = target_dir().join("debug/triad-server");
    let options = xtask::cluster::Options {
        root: root(),
        state: target_dir().join("cluster"),
        server: server.clone(),
        node_env: Vec::new(),
    };
    let cluster = xtask::cluster::Cluster::start(&options)?;
    println!("{}", cluster.summary(&server));
    println!("Stop it with: cargo xtask cluster down");
    cluster.detach()
}

fn cluster_down() -> anyhow::Result<()> {
    let state = target_dir().join("cluster");
    let stopped = xtask::cluster::down(&state)?;
    if stopped.is_empty() {
        println!("no cluster runs from {}", state.display());
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    let missing = xtask::programs::missing();
    if !missing.is_empty() {
        bail!(
            "the tests start programs that are not installed (.ci/run installs them all):\n  {}",
            missing.join("\n  ")
        );
    }
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    if has_nextest() {
        run(
            "cargo",
            &[
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ],
        )?;
    } else {
        run(
            "cargo",
            &["test", "--workspace", "--locked", "--no-fail-fast"],
        )?;
    }
    browser_tests()
}

/// The web client: its type check (`tsc` on `clients/web`) and its tests in headless
/// Chromium against the real server (`tests/browser`, node's test runner).
fn browser_tests() -> anyhow::Result<()> {
    node_version().context(
        "the web client's tests need Node.js 20 or newer, with npm (install both, then retry)",
    )?;
    // Every binary, with the features the whole workspace enables (as the tests were
    // built), so nothing is compiled a second time with other features.
    run("cargo", &["build", "--workspace", "--bins", "--locked"])?;
    let server = target_dir().join("debug/triad-server");
    let tests = root().join("tests/browser");
    let installed = tests.join("node_modules/.package-lock.json");
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    if modified(&installed) < modified(&tests.join("package-lock.json")) {
        run_in(
            &tests,
            &[("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")],
            "npm",
            &["ci", "--no-audit", "--no-fund"],
        )?;
    }
    run_in(
        &tests,
        &[],
        "npx",
        &["--no", "--", "tsc", "--noEmit", "-p", "../../clients/web"],
    )?;
    let server = server.to_string_lossy();
    // The call agent, for the calls between a browser and webrtc-rs (built above).
    let call = target_dir().join("debug/triad-call");
    let call = call.to_string_lossy();
    run_in(
        &tests,
        &[
            ("TRIAD_SERVER_BIN", server.as_ref()),
            ("TRIAD_CALL_BIN", call.as_ref()),
        ],
        "node",
        &["--test"],
    )
}

/// Node's major version, if node and npm are installed and node is recent enough.
fn node_version() -> anyhow::Result<u32> {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .context("node not found")?;
    let version = String::from_utf8_lossy(&output.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("unreadable node version {version:?}"))?;
    if major < 20 {
        bail!("node {} is too old", version.trim());
    }
    Command::new("npm")
        .arg("--version")
        .output()
        .context("npm not found")?;
    Ok(major)
}

/// Runs a program in a folder with extra environment variables.
fn run_in(dir: &Path, env: &[(&str, &str)], program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ (cd {}) {program} {}", dir.display(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}
