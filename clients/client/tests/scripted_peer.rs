//! The client's connection logic against a scripted websocket peer that speaks `triad.v1`
//! frame by frame: handshake, resume points, resent messages, de-duplication, gap filling,
//! refusals and close codes. Each test plays the server's side explicitly, so it can do what
//! a correct server never does (repeat events, skip some, drop mid-request). Tests against
//! the real server live in the workspace's `tests/` crate.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use triad_client::protocol::{
    self, ClientFrame, ErrorCode, EventBody, Limits, PersonId, PersonInfo, RequestId, ResumePoint,
    Role, RoomKind, ServerFrame, SessionId,
};
use triad_client::{
    Ack, Client, ClientConfig, ClientError, ClientEvent, ClientMsgId, Events, History, Live,
    RoomEvent, RoomId, RoomInfo, ServerMessage, Welcome,
};

const WAIT: Duration = Duration::from_secs(5);

/// A listening socket playing the server.
struct Peer {
    listener: TcpListener,
    url: String,
}

impl Peer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("address"));
        Self { listener, url }
    }

    fn config(&self, token: &str) -> ClientConfig {
        let mut config = ClientConfig::new(&self.url, token);
        config.backoff_initial = Duration::from_millis(10);
        config.backoff_max = Duration::from_millis(50);
        config.request_timeout = Duration::from_secs(3);
        config.send_timeout = Duration::from_secs(4);
        config
    }

    /// Accepts the next connection, checking the subprotocol offer and agreeing to it.
    #[allow(
        clippy::result_large_err,
        reason = "the callback's type is tungstenite's"
    )]
    async fn accept(&self) -> Conn {
        let (stream, _) = timeout(WAIT, self.listener.accept())
            .await
            .expect("a connection")
            .expect("accept");
        let check =
            |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
                let offered = request.headers().get("sec-websocket-protocol");
                assert_eq!(
                    offered.map(HeaderValue::as_bytes),
                    Some(protocol::PROTOCOL_VERSION.as_bytes())
                );
                response.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(protocol::PROTOCOL_VERSION),
                );
                Ok(response)
            };
        let ws = tokio_tungstenite::accept_hdr_async(stream, check)
            .await
            .expect("upgrade");
        Conn { ws }
    }
}

/// One accepted connection.
struct Conn {
    ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// The next request from the client, skipping pings.
    async fn recv(&mut self) -> ClientFrame {
        loop {
            let message = timeout(WAIT, self.ws.next())
                .await
                .expect("a frame")
                .expect("open")
                .expect("read");
            if let Message::Text(text) = message {
                let frame = protocol::decode_client(text.as_str()).expect("a valid frame");
                if frame.request != protocol::Request::Ping {
                    return frame;
                }
            }
        }
    }

    async fn send(&mut self, re: Option<RequestId>, message: ServerMessage) {
        let text = serde_json::to_string(&ServerFrame { re, message }).expect("encode");
        self.ws.send(Message::text(text)).await.expect("write");
    }

    /// Reads the `hello`: its id, token and resume points.
    async fn hello(&mut self) -> (RequestId, String, Vec<ResumePoint>) {
        let frame = self.recv().await;
        match frame.request {
            protocol::Request::Hello { token, resume } => {
                (frame.id.expect("hello has an id"), token, resume)
            }
            other => panic!("expected hello, got {other:?}"),
        }
    }

    /// Reads the `hello` and welcomes it with `rooms`; returns the resume points.
    async fn welcome(&mut self, rooms: Vec<RoomInfo>) -> Vec<ResumePoint> {
        let (id, _, resume) = self.hello().await;
        self.send(Some(id), ServerMessage::Welcome(welcome(rooms)))
            .await;
        resume
    }

    async fn push(&mut self, event: RoomEvent) {
        self.send(None, ServerMessage::Event { event }).await;
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.into(),
        };
        self.ws.close(Some(frame)).await.expect("close");
    }
}

fn room(name: &str) -> RoomId {
    RoomId::new(name).expect("valid room id")
}

fn info(name: &str, last_seq: u64) -> RoomInfo {
    RoomInfo {
        id: room(name),
        kind: RoomKind::Trio,
        title: "Trio 1".into(),
        epoch: 1,
        last_seq,
        read_seq: 0,
        unread: 0,
        last_ts: None,
        joined: true,
        members: Vec::new(),
        member_count: 0,
        call: None,
    }
}

fn welcome(rooms: Vec<RoomInfo>) -> Welcome {
    Welcome {
        protocol: protocol::PROTOCOL_VERSION.into(),
        session: SessionId("s".into()),
        person: PersonInfo {
            id: PersonId::new("anna").expect("valid person id"),
            name: "Anna".into(),
            role: Role::Head,
            region: "vejle".into(),
            school: "Skole".into(),
            time_zone: "Europe/Copenhagen".into(),
        },
        rooms,
        limits: Limits::default(),
        token_expires_at: 0,
    }
}

fn event(name: &str, seq: u64) -> RoomEvent {
    RoomEvent {
        room: room(name),
        seq,
        ts: 0,
        author: PersonId::new("bo").expect("valid person id"),
        body: EventBody::Message {
            client_msg_id: ClientMsgId(format!("m{seq}")),
            body: format!("#{seq}"),
        },
    }
}

fn ack(client_msg_id: &ClientMsgId, seq: u64) -> ServerMessage {
    ServerMessage::Ack(Ack {
        room: room("trio-1"),
        client_msg_id: client_msg_id.clone(),
        seq,
        ts: 0,
        duplicate: false,
    })
}

async fn next(events: &mut Events) -> ClientEvent {
    timeout(WAIT, events.next())
        .await
        .expect("an event")
        .expect("events open")
}

/// The next room event, skipping other events.
async fn next_room_event(events: &mut Events) -> RoomEvent {
    loop {
        if let ClientEvent::Event(event) = next(events).await {
            return event;
        }
    }
}

/// Connects a client to the peer; returns the client, its events (after `Connected`) and
/// the server side of the connection.
async fn connected(peer: &Peer, rooms: Vec<RoomInfo>) -> (Client, Events, Conn) {
    let config = peer.config("token-1");
    let (client, conn) = tokio::join!(Client::connect(config), async {
        let mut conn = peer.accept().await;
        conn.welcome(rooms).await;
        conn
    });
    let (client, mut events) = client.expect("connected");
    assert!(matches!(next(&mut events).await, ClientEvent::Connected(_)));
    (client, events, conn)
}

#[tokio::test]
async fn connect_returns_after_the_welcome() {
    let peer = Peer::start().await;
    let (client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 3)]).await;
    assert_eq!(client.welcome().rooms[0].last_seq, 3);

    // Events after the welcome's last_seq are delivered; older ones are not.
    conn.push(event("trio-1", 3)).await;
    conn.push(event("trio-1", 4)).await;
    conn.send(
        None,
        ServerMessage::Live(Live {
            room: room("trio-1"),
            epoch: 1,
            seq: 4,
        }),
    )
    .await;
    assert_eq!(next_room_event(&mut events).await.seq, 4);
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Live(Live { seq: 4, .. })
    ));

    client.close().await;
    loop {
        if let ClientEvent::Closed { code, .. } = next(&mut events).await {
            assert_eq!(code, Some(1000));
            break;
        }
    }
    assert!(timeout(WAIT, events.next()).await.expect("ends").is_none());
}

#[tokio::test]
async fn a_refused_token_fails_the_first_connect() {
    let peer = Peer::start().await;
    let server = async {
        let mut conn = peer.accept().await;
        let (id, token, _) = conn.hello().await;
        assert_eq!(token, "bad");
        conn.send(
            Some(id),
            ServerMessage::Error {
                code: ErrorCode::TokenInvalid,
                message: "no".into(),
                room: None,
            },
        )
        .await;
        conn.close(4001, "auth failed").await;
    };
    let (result, ()) = tokio::join!(Client::connect(peer.config("bad")), server);
    let err = result.expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::TokenInvalid));
}

#[tokio::test]
async fn a_send_is_resent_with_the_same_id_after_a_drop() {
    let peer = Peer::start().await;
    let (client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 5)]).await;
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(&room("trio-1"), "hello").await }
    });
    let first = conn.recv().await;
    let protocol::Request::Send {
        client_msg_id,
        body,
        ..
    } = first.request
    else {
        panic!("expected a send, got {first:?}");
    };
    assert_eq!(body, "hello");
    drop(conn);
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected { code: None, .. }
    ));

    let mut conn = peer.accept().await;
    let resume = conn.welcome(vec![info("trio-1", 6)]).await;
    assert_eq!(
        resume,
        vec![ResumePoint {
            room: room("trio-1"),
            epoch: 1,
            seq: 5
        }]
    );
    assert!(matches!(next(&mut events).await, ClientEvent::Connected(_)));
    let again = conn.recv().await;
    match &again.request {
        protocol::Request::Send {
            client_msg_id: id, ..
        } => assert_eq!(id, &client_msg_id),
        other => panic!("expected the send again, got {other:?}"),
    }
    conn.send(again.id, ack(&client_msg_id, 6)).await;
    let acked = sending.await.expect("task").expect("acknowledged");
    assert_eq!(acked.seq, 6);
    // The replayed event (the client's own message) comes once.
    conn.push(event("trio-1", 6)).await;
    conn.push(event("trio-1", 6)).await;
    conn.push(event("trio-1", 7)).await;
    assert_eq!(next_room_event(&mut events).await.seq, 6);
    assert_eq!(next_room_event(&mut events).await.seq, 7);
}

#[tokio::test]
async fn passing_refusals_are_retried_and_others_returned() {
    let peer = Peer::start().await;
    let (client, _events, mut conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(&room("trio-1"), "one").await }
    });
    let first = conn.recv().await;
    let refusal = ServerMessage::Error {
        code: ErrorCode::StoreUnavailable,
        message: "later".into(),
        room: None,
    };
    conn.send(first.id, refusal).await;
    let second = conn.recv().await;
    assert_ne!(second.id, first.id);
    assert_eq!(second.request, first.request);
    let protocol::Request::Send { client_msg_id, .. } = &second.request else {
        panic!("a send")
    };
    conn.send(second.id, ack(client_msg_id, 1)).await;
    assert_eq!(sending.await.expect("task").expect("acknowledged").seq, 1);

    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(&room("trio-1"), "two").await }
    });
    let frame = conn.recv().await;
    let refusal = ServerMessage::Error {
        code: ErrorCode::JoinRequired,
        message: "join".into(),
        room: None,
    };
    conn.send(frame.id, refusal).await;
    let err = sending.await.expect("task").expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::JoinRequired));
}

#[tokio::test]
async fn a_gap_is_filled_from_history_in_order() {
    let peer = Peer::start().await;
    let (_client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    conn.push(event("trio-1", 1)).await;
    conn.push(event("trio-1", 4)).await;
    conn.push(event("trio-1", 5)).await;
    let fetch = conn.recv().await;
    match &fetch.request {
        protocol::Request::History {
            room: r,
            after,
            before,
            ..
        } => {
            assert_eq!((r, *after, *before), (&room("trio-1"), Some(1), None));
        }
        other => panic!("expected a history request, got {other:?}"),
    }
    let page = History {
        room: room("trio-1"),
        epoch: 1,
        events: vec![event("trio-1", 2), event("trio-1", 3)],
        has_more: false,
    };
    conn.send(fetch.id, ServerMessage::History(page)).await;
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(next_room_event(&mut events).await.seq);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn requests_are_answered_and_fail_when_the_connection_drops() {
    let peer = Peer::start().await;
    let (client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    let asking = tokio::spawn({
        let client = client.clone();
        async move { client.history(&room("trio-1"), None, None, Some(20)).await }
    });
    let frame = conn.recv().await;
    let page = History {
        room: room("trio-1"),
        epoch: 1,
        events: vec![],
        has_more: false,
    };
    conn.send(frame.id, ServerMessage::History(page.clone()))
        .await;
    assert_eq!(asking.await.expect("task"), Ok(page));

    let asking = tokio::spawn({
        let client = client.clone();
        async move { client.read(&room("trio-1"), 1).await }
    });
    conn.recv().await;
    client.drop_connection();
    assert_eq!(asking.await.expect("task"), Err(ClientError::Disconnected));
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));
    let mut conn = peer.accept().await;
    conn.welcome(vec![info("trio-1", 0)]).await;
    assert!(matches!(next(&mut events).await, ClientEvent::Connected(_)));
}

#[tokio::test]
async fn offline_keeps_the_refreshed_token_for_the_next_hello() {
    let peer = Peer::start().await;
    let (client, mut events, conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    client.set_online(false);
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected { code: None, .. }
    ));
    drop(conn);
    assert_eq!(
        client.history(&room("trio-1"), None, None, None).await,
        Err(ClientError::Disconnected)
    );
    client
        .refresh("token-2".into())
        .await
        .expect("kept while offline");
    // A send made while offline waits for the connection.
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(&room("trio-1"), "written offline").await }
    });
    client.set_online(true);
    let mut conn = peer.accept().await;
    let (id, token, _) = conn.hello().await;
    assert_eq!(token, "token-2");
    conn.send(
        Some(id),
        ServerMessage::Welcome(welcome(vec![info("trio-1", 0)])),
    )
    .await;
    assert!(matches!(next(&mut events).await, ClientEvent::Connected(_)));
    let frame = conn.recv().await;
    let protocol::Request::Send {
        client_msg_id,
        body,
        ..
    } = &frame.request
    else {
        panic!("expected the send, got {frame:?}");
    };
    assert_eq!(body, "written offline");
    conn.send(frame.id, ack(client_msg_id, 1)).await;
    assert_eq!(sending.await.expect("task").expect("acknowledged").seq, 1);
}

#[tokio::test]
async fn live_waits_for_the_gap_before_it() {
    let peer = Peer::start().await;
    let (_client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 1)]).await;
    conn.push(event("trio-1", 3)).await;
    let live = Live {
        room: room("trio-1"),
        epoch: 1,
        seq: 3,
    };
    conn.send(None, ServerMessage::Live(live)).await;
    let fetch = conn.recv().await;
    assert!(matches!(
        fetch.request,
        protocol::Request::History { after: Some(1), .. }
    ));
    let page = History {
        room: room("trio-1"),
        epoch: 1,
        events: vec![event("trio-1", 2), event("trio-1", 3)],
        has_more: false,
    };
    conn.send(fetch.id, ServerMessage::History(page)).await;
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(match next(&mut events).await {
            ClientEvent::Event(event) => format!("event {}", event.seq),
            ClientEvent::Live(live) => format!("live {}", live.seq),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(order, ["event 2", "event 3", "live 3"]);
}

#[tokio::test]
async fn a_revoked_session_is_not_reconnected() {
    let peer = Peer::start().await;
    let (client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    conn.close(4009, "revoked").await;
    match next(&mut events).await {
        ClientEvent::Closed { code, .. } => assert_eq!(code, Some(4009)),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(
        client.send(&room("trio-1"), "late").await,
        Err(ClientError::Closed)
    );
}

#[tokio::test]
async fn a_slow_consumer_close_is_reconnected_with_resume() {
    let peer = Peer::start().await;
    let (_client, mut events, mut conn) = connected(&peer, vec![info("trio-1", 2)]).await;
    conn.push(event("trio-1", 3)).await;
    assert_eq!(next_room_event(&mut events).await.seq, 3);
    conn.close(4008, "slow consumer").await;
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected {
            code: Some(4008),
            ..
        }
    ));
    let mut conn = peer.accept().await;
    let resume = conn.welcome(vec![info("trio-1", 4)]).await;
    assert_eq!(
        resume,
        vec![ResumePoint {
            room: room("trio-1"),
            epoch: 1,
            seq: 3
        }]
    );
    assert!(matches!(next(&mut events).await, ClientEvent::Connected(_)));
    conn.push(event("trio-1", 4)).await;
    assert_eq!(next_room_event(&mut events).await.seq, 4);
}

#[tokio::test]
async fn a_request_over_the_frame_limit_is_refused_without_sending_it() {
    let peer = Peer::start().await;
    let (client, _events, mut conn) = connected(&peer, vec![info("trio-1", 0)]).await;
    // Escaped in JSON, this body outgrows the frame limit.
    let body = "\u{1}".repeat(protocol::limits::MAX_FRAME_BYTES / 6 + 1);
    let err = client
        .send(&room("trio-1"), &body)
        .await
        .expect_err("too large");
    assert!(matches!(err, ClientError::TooLarge { .. }), "{err:?}");
    // The connection is fine: the next send goes out.
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send(&room("trio-1"), "small").await }
    });
    let frame = conn.recv().await;
    let protocol::Request::Send { client_msg_id, .. } = &frame.request else {
        panic!("expected a send, got {frame:?}");
    };
    conn.send(frame.id, ack(client_msg_id, 1)).await;
    assert_eq!(sending.await.expect("task").expect("acknowledged").seq, 1);
}
