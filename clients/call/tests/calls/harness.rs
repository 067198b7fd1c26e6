//! A server for a test (the demo programme in a temporary folder, a known token secret),
//! and agents in its calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use triad_call::{AgentSettings, CallAgent, NetworkSettings};
use triad_protocol::{PersonId, RoomId};
use triad_server::auth::TokenMinter;
use triad_server::config::Config;
use triad_server::programme::{DEMO_ROSTER, Roster};
use triad_server::server::Server;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::{CallRecord, NoSink, Store};

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// How long negotiations may take in a test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: Arc<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server with the demo programme, changed by `tune`.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.jwt.secret = Some(SECRET.into());
        config.jwt.leeway = Duration::ZERO;
        config.shutdown_timeout = Duration::from_secs(2);
        tune(&mut config);
        {
            let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).unwrap();
            let roster = Roster::parse(DEMO_ROSTER).unwrap();
            store.apply_programme(&roster.programme).await.unwrap();
        }
        let server = Server::bind(config.clone()).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async {
            // A dropped sender also stops the server.
            stopped.await.ok();
        }));
        Self {
            addr,
            config,
            stop: Some(stop),
            done: Some(done),
            _dir: Arc::new(dir),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn token(&self, person: &str) -> String {
        TokenMinter::hs256(SECRET.as_bytes(), &self.config.jwt)
            .mint(&PersonId::new(person).unwrap(), Duration::from_secs(3600))
            .unwrap()
    }

    /// Agent settings for `person` in `room`, on loopback.
    pub fn settings(&self, person: &str, room: &str) -> AgentSettings {
        let mut settings = AgentSettings::new(self.url(), self.token(person), room_id(room));
        settings.network = NetworkSettings {
            relay_only: false,
            loopback: true,
        };
        settings
    }

    /// An agent for `person` in the call of `room`.
    pub async fn agent(&self, person: &str, room: &str) -> CallAgent {
        CallAgent::start(self.settings(person, room))
            .await
            .unwrap_or_else(|e| panic!("{person} could not join the call of {room}: {e}"))
    }

    /// Stops the server, then reads the call records of `room` from its store (once the
    /// server has let go of the file).
    pub async fn stop_and_read_calls(mut self, room: &str) -> Vec<CallRecord> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .expect("the server stops")
                .expect("the server task ends well");
        }
        let path = self.config.store_path();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // The store is closed once the last task holding it (the record writer) ends.
            match EmbeddedStore::open(&path, Arc::new(NoSink)) {
                Ok(store) => return store.call_records(&room_id(room)).await.unwrap(),
                Err(err) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the store stayed locked: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

pub fn room_id(id: &str) -> RoomId {
    RoomId::new(id).unwrap()
}

pub fn person(id: &str) -> PersonId {
    PersonId::new(id).unwrap()
}
