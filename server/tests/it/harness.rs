//! Starts a server for a test and speaks the raw protocol to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use triad_protocol::{
    ClientFrame, ClientMsgId, PROTOCOL_VERSION, PersonId, Request, RoomId, ServerFrame,
    ServerMessage, Welcome,
};
use triad_server::auth::TokenMinter;
use triad_server::config::Config;
use triad_server::programme::{DEMO_ROSTER, Roster};
use triad_server::server::Server;
use triad_server::store::NoSink;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::redis::RedisStore;

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    pub config: Config,
    /// The server's hub: which sessions are in which room.
    pub hub: Arc<triad_server::hub::Hub>,
    /// The server's open sessions.
    pub sessions: tokio_util::task::TaskTracker,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: Arc<tempfile::TempDir>,
}

/// Test defaults: the demo programme, generous send and REST limits, no clock leeway, metrics
/// on a listener of their own.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.jwt.secret = Some(SECRET.into());
    config.jwt.leeway = Duration::ZERO;
    config.send_rate_per_second = 1000;
    config.send_burst = 1000;
    config.request_rate_per_second = 1000;
    config.request_burst = 1000;
    config.shutdown_timeout = Duration::from_secs(2);
    config.drain_delay = Duration::ZERO;
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    // Generous REST limits: the tests of those limits set their own.
    config.api_burst = 10_000;
    config.sign_in_burst = 10_000;
    config.coaching_changes_burst = 10_000;
    config
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with the demo programme and the test config, changed by `tune`.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tune(&mut config);
        {
            let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).unwrap();
            let roster = Roster::parse(DEMO_ROSTER).unwrap();
            triad_server::programme::admin::apply_roster(&store, None, &roster)
                .await
                .unwrap();
        }
        Self::run(config, Arc::new(dir)).await
    }

    /// Starts a server with the demo programme and the test config, after `seed` has
    /// written what the test needs straight into its store.
    pub async fn start_seeded(seed: impl AsyncFnOnce(&EmbeddedStore)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        {
            let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).unwrap();
            let roster = Roster::parse(DEMO_ROSTER).unwrap();
            triad_server::programme::admin::apply_roster(&store, None, &roster)
                .await
                .unwrap();
            seed(&store).await;
        }
        Self::run(config, Arc::new(dir)).await
    }

    /// Starts a server on the Redis at `url`, seeded with the demo programme, with the test
    /// config changed by `tune`.
    pub async fn start_on_redis(url: &str, tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.store = url.to_string();
        tune(&mut config);
        {
            let store = RedisStore::open(url, Arc::new(NoSink)).await.unwrap();
            let roster = Roster::parse(DEMO_ROSTER).unwrap();
            triad_server::programme::admin::apply_roster(&store, None, &roster)
                .await
                .unwrap();
        }
        Self::run(config, Arc::new(dir)).await
    }

    async fn run(config: Config, dir: Arc<tempfile::TempDir>) -> Self {
        let server = Server::bind(config.clone()).await.unwrap();
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let hub = server.hub();
        let sessions = server.sessions();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            config,
            hub,
            sessions,
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    /// Stops the server and starts it again on the same data (on a new port).
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        Self::run(config, self._dir.clone()).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// The text of `/metrics`, from the metrics listener.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.expect("the test config serves metrics");
        let (status, _, body) = crate::calendar::http(addr, "GET", "/metrics", None, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn token(&self, person: &str) -> String {
        self.token_for(person, Duration::from_secs(3600))
    }

    pub fn token_for(&self, person: &str, ttl: Duration) -> String {
        TokenMinter::hs256(SECRET.as_bytes(), &self.config.jwt)
            .mint(&PersonId::new(person).unwrap(), ttl)
            .unwrap()
    }

    /// A raw websocket offering the protocol, not yet signed in.
    pub async fn raw(&self) -> Raw {
        Raw::connect(&self.url(), None).await.unwrap()
    }

    /// A raw websocket signed in as `person`, past the welcome and the initial `live`s.
    pub async fn signed_in(&self, person: &str) -> (Raw, Welcome) {
        let mut raw = self.raw().await;
        let welcome = raw.hello(&self.token(person), vec![]).await;
        raw.skip_live(&welcome).await;
        (raw, welcome)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn room(id: &str) -> RoomId {
    RoomId::new(id).unwrap()
}

pub fn msg_id(id: &str) -> ClientMsgId {
    ClientMsgId(id.to_string())
}

/// A websocket speaking the raw protocol.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Frames read while waiting for an answer, handed out by `frame` first.
    pub pending: std::collections::VecDeque<ServerFrame>,
}

/// How a raw read ended.
#[derive(Debug)]
pub enum Next {
    Frame(Box<ServerFrame>),
    Closed(Option<u16>),
}

impl Raw {
    pub async fn connect(url: &str, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(PROTOCOL_VERSION),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(
            response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap()),
            Some(PROTOCOL_VERSION),
            "the server echoes the subprotocol"
        );
        Ok(Self {
            ws,
            next_id: 1,
            pending: Default::default(),
        })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Sends a request with a fresh id; returns the id.
    pub async fn request(&mut self, request: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let text = serde_json::to_string(&ClientFrame::new(id, request)).unwrap();
        self.send_text(&text).await;
        id
    }

    /// The next frame or close, within 10 s.
    pub async fn next(&mut self) -> Next {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("no frame from the server within 10 s");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Next::Frame(Box::new(serde_json::from_str(&text).unwrap_or_else(
                        |e| panic!("server sent a frame the protocol cannot parse: {e}: {text}"),
                    )));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Next::Closed(frame.map(|f: CloseFrame| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    pub async fn frame(&mut self) -> ServerFrame {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        match self.next().await {
            Next::Frame(frame) => *frame,
            Next::Closed(code) => panic!("connection closed ({code:?}) while a frame was expected"),
        }
    }

    /// Reads frames until the answer to request `id`; frames before it stay queued for
    /// `frame`.
    pub async fn answer(&mut self, id: u64) -> ServerMessage {
        if let Some(i) = self.pending.iter().position(|f| f.re == Some(id)) {
            return self.pending.remove(i).expect("present").message;
        }
        loop {
            let frame = match self.next().await {
                Next::Frame(frame) => *frame,
                Next::Closed(code) => panic!("connection closed ({code:?}) before the answer"),
            };
            if frame.re == Some(id) {
                return frame.message;
            }
            self.pending.push_back(frame);
        }
    }

    /// Sends a request and returns its answer.
    pub async fn call(&mut self, request: Request) -> ServerMessage {
        let id = self.request(request).await;
        self.answer(id).await
    }

    /// Reads until the server closes; returns the close code. Frames before it are skipped.
    pub async fn closed(&mut self) -> Option<u16> {
        self.pending.clear();
        loop {
            if let Next::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    pub async fn hello(
        &mut self,
        token: &str,
        resume: Vec<triad_protocol::ResumePoint>,
    ) -> Welcome {
        match self
            .call(Request::Hello {
                token: token.into(),
                resume,
            })
            .await
        {
            ServerMessage::Welcome(welcome) => welcome,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Reads the `live` frame of every joined room of the welcome (and the events before
    /// them); returns those events.
    pub async fn skip_live(&mut self, welcome: &Welcome) -> Vec<triad_protocol::RoomEvent> {
        let mut waiting: Vec<_> = welcome
            .rooms
            .iter()
            .filter(|r| r.joined)
            .map(|r| r.id.clone())
            .collect();
        let mut events = Vec::new();
        while !waiting.is_empty() {
            match self.frame().await.message {
                ServerMessage::Live(live) => waiting.retain(|r| r != &live.room),
                ServerMessage::Event { event } => events.push(event),
                _ => {}
            }
        }
        events
    }

    /// Reads until an event arrives, skipping presence and typing pushes.
    pub async fn next_event(&mut self) -> triad_protocol::RoomEvent {
        loop {
            if let ServerMessage::Event { event } = self.frame().await.message {
                return event;
            }
        }
    }

    pub async fn send(&mut self, room_id: &str, id: &str, body: &str) -> ServerMessage {
        self.call(Request::Send {
            room: room(room_id),
            client_msg_id: msg_id(id),
            body: body.into(),
        })
        .await
    }
}

/// Asserts an error answer with `code`.
#[track_caller]
pub fn assert_error(message: &ServerMessage, code: triad_protocol::ErrorCode) {
    match message {
        ServerMessage::Error { code: got, .. } => assert_eq!(*got, code, "{message:?}"),
        other => panic!("expected error {code}, got {other:?}"),
    }
}
