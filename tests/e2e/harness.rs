//! Starts real server processes on free ports and connects clients to them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use triad_client::{Client, ClientConfig, ClientEvent, Events, RoomEvent};
use triad_protocol::PersonId;
use triad_server::auth::TokenMinter;
use triad_server::config::Config;

pub const SECRET: &str = "e2e-secret-0123456789abcdef0123456789";

/// The server program built for these tests.
pub fn program() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_triad-node"));
    command
        .env(
            "RUST_LOG",
            std::env::var("TRIAD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true);
    command
}

/// The demo roster shipped with the server.
pub fn demo_roster() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/demo-roster.toml")
}

/// A server process.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl Node {
    /// Imports the demo programme into `data` (if not done) and starts a server on it.
    pub async fn start(data: &Path) -> Self {
        if !data.join("triad.redb").exists() {
            let status = program()
                .args(["import", demo_roster().to_str().unwrap(), "--data-dir"])
                .arg(data)
                .args(["--jwt-secret", SECRET])
                .stdout(Stdio::null())
                .status()
                .await
                .unwrap();
            assert!(status.success(), "import failed");
        }
        let mut command = program();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args([
                "--jwt-secret",
                SECRET,
                "--send-rate-per-second",
                "1000",
                "--send-burst",
                "1000",
            ]);
        Self::spawn(command).await
    }

    /// Starts a server on a shared Redis store (the programme imported once by the caller).
    pub async fn start_on(redis_url: &str, data: &Path) -> Self {
        let mut command = program();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                redis_url,
                "--data-dir",
            ])
            .arg(data)
            .args([
                "--jwt-secret",
                SECRET,
                "--send-rate-per-second",
                "1000",
                "--send-burst",
                "1000",
            ])
            .args(["--heartbeat-ms", "300"]);
        Self::spawn(command).await
    }

    /// Imports the demo programme into a Redis store.
    pub async fn import_into(redis_url: &str) {
        let status = program()
            .args([
                "import",
                demo_roster().to_str().unwrap(),
                "--store",
                redis_url,
            ])
            .args(["--jwt-secret", SECRET])
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "import into Redis failed");
    }

    /// Spawns a server command and waits for its "listening on" line.
    pub async fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("triad-server listening on ") {
                    return addr.trim().parse().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server did not start within 30 s");
        Self {
            child,
            addr,
            stdout,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGSTOP: the node stops answering anything, its connections left open.
    pub async fn freeze(&self) {
        self.signal("-STOP").await;
    }

    /// SIGCONT: a frozen node goes on.
    pub async fn thaw(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the server did not exit within 20 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "the server exited with {exit}");
    }
}

pub fn token(person: &str) -> String {
    TokenMinter::hs256(SECRET.as_bytes(), &Config::default().jwt)
        .mint(&PersonId::new(person).unwrap(), Duration::from_secs(3600))
        .unwrap()
}

/// A client signed in as `person`.
pub async fn connect(node: &Node, person: &str) -> (Client, Events) {
    connect_to(&node.url(), person).await
}

/// A client signed in as `person` at a websocket URL.
pub async fn connect_to(url: &str, person: &str) -> (Client, Events) {
    let mut config = ClientConfig::new(url, token(person));
    config.backoff_max = Duration::from_millis(500);
    Client::connect(config).await.unwrap()
}

/// Reads events until `count` room events of `room` have arrived; returns them.
pub async fn room_events(events: &mut Events, room: &str, count: usize) -> Vec<RoomEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.len() < count {
            match events.next().await {
                Some(ClientEvent::Event(event)) if event.room.as_str() == room => seen.push(event),
                Some(ClientEvent::Closed { code, reason }) => {
                    panic!("client closed: {code:?} {reason}")
                }
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} events arrived in 20 s", seen.len()));
    seen
}

/// Reads events until `wanted` matches one.
pub async fn wait_for(events: &mut Events, wanted: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    wait_within(events, Duration::from_secs(20), wanted).await
}

/// Reads events until `wanted` matches one, for at most `limit`.
pub async fn wait_within(
    events: &mut Events,
    limit: Duration,
    wanted: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    tokio::time::timeout(limit, async {
        loop {
            match events.next().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the awaited event did not come within {limit:?}"))
}
