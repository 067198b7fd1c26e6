//! Smoke run of the generator (not a benchmark): a Triad server with the demo programme and
//! the ceiling server, both in this process, and `triad-bench run --workloads fanout`
//! against them for about two seconds at a low rate. Every message must reach every other
//! member of its room exactly once, and the JSON results must have their fields.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use triad_server::config::Config;
use triad_server::programme::{DEMO_ROSTER, Roster};
use triad_server::server::Server;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::{NoSink, Store};

const SECRET: &str = "smoke-secret-0123456789abcdef0123456789abcdef";

async fn start_triad(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.jwt.secret = Some(SECRET.into());
    config.send_rate_per_second = 10_000;
    config.send_burst = 10_000;
    config.request_rate_per_second = 10_000;
    config.request_burst = 10_000;
    config.drain_delay = Duration::ZERO;
    config.shutdown_timeout = Duration::from_secs(2);
    std::fs::create_dir_all(dir).unwrap();
    {
        let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).unwrap();
        let roster = Roster::parse(DEMO_ROSTER).unwrap();
        store.apply_programme(&roster.programme).await.unwrap();
    }
    let server = Server::bind(config).await.unwrap();
    let url = format!("ws://{}/ws", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        // Either a stop or the sender dropped at the end of the test.
        stopped.await.ok();
    }));
    (url, stop)
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_to_every_other_member() {
    let dir = tempfile::tempdir().unwrap();
    let (triad, stop) = start_triad(&dir.path().join("triad")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ceiling = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(triad_bench::ceiling::serve(listener));

    let roster = dir.path().join("demo-roster.toml");
    std::fs::write(&roster, DEMO_ROSTER).unwrap();
    let out = dir.path().join("results.json");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_triad-bench"))
        .args(["run", "--workloads", "fanout", "--targets"])
        .arg(format!("triad@{triad},ceiling@{ceiling}"))
        .arg("--roster")
        .arg(&roster)
        .args([
            "--jwt-secret",
            SECRET,
            "--rooms",
            "2",
            "--fanout-rates",
            "40",
        ])
        .args(["--warmup", "0.5", "--duration", "0.75", "--runs", "2"])
        .args(["--drain", "5", "--out"])
        .arg(&out)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the smoke run finishes")
        .unwrap();
    assert!(
        output.status.success(),
        "triad-bench failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stop.send(()).ok();

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["suite"], "triad-bench");
    for field in [
        "bench_version",
        "started_at_unix_ms",
        "machine",
        "versions",
        "settings",
        "ratios",
    ] {
        assert!(report.get(field).is_some(), "{field} missing");
    }
    assert_eq!(f(&report, "/settings/options/rooms"), 2.0);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:#?}");
    for (entry, target) in results.iter().zip(["triad", "ceiling"]) {
        assert_eq!(entry["workload"], "fanout");
        assert_eq!(entry["target"], target);
        let result = &entry["result"];
        assert!(result.get("error").is_none(), "{target}: {result:#}");
        assert_eq!(f(result, "/connections"), 8.0);
        let point = &result["points"][0];
        assert_eq!(f(point, "/rate"), 40.0);
        for counter in ["duplicates", "gaps", "errors", "closed"] {
            assert_eq!(f(point, &format!("/{counter}")), 0.0, "{target}: {counter}");
        }
        let runs = point["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        for run in runs {
            let sent = f(run, "/sent");
            assert!(sent >= 20.0, "{target}: only {sent} sent");
            // Every message reaches the three other members of its room, exactly once.
            assert_eq!(f(run, "/expected_deliveries"), sent * 3.0);
            assert_eq!(f(run, "/delivered"), sent * 3.0, "{target}: {run:#}");
            assert_eq!(f(run, "/lost"), 0.0);
            assert_eq!(f(run, "/acked"), sent, "{target}: {run:#}");
            assert_eq!(f(run, "/delivery/count"), sent * 3.0);
            assert!(f(run, "/delivery/p50_ms") > 0.0);
            assert!(f(run, "/delivery/p99_ms") >= f(run, "/delivery/p50_ms"));
            assert!(f(run, "/ack/p999_ms") >= f(run, "/ack/p50_ms"));
        }
        for field in ["median", "usage", "max_send_lag_ms", "within_budget"] {
            assert!(point.get(field).is_some(), "{target}: {field} missing");
        }
        assert!(result.get("max_rate_within_budget").is_some());
        assert!(f(result, "/setup/per_second") > 0.0);
    }
}
