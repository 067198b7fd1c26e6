//! Several server processes on one real Redis: trio members split across nodes, a node
//! killed under its clients, Redis stopped and restarted under sends, Redis answering slowly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use triad_client::{ClientEvent, Events, PresenceStatus, RoomId};
use triad_protocol::{ErrorCode, EventBody, PROTOCOL_VERSION, ServerMessage};
use triad_server::store::redis::testing::RedisProcess;

use crate::balancer::Balancer;
use crate::harness::{Node, connect, connect_to, room_events, token, wait_for};

fn trio() -> RoomId {
    RoomId::new("trio-1").unwrap()
}

async fn redis() -> RedisProcess {
    RedisProcess::start()
        .await
        .expect("redis-server starts (Debian: apt-get install redis-server)")
}

fn messages(events: &[triad_client::RoomEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Message { body, .. } => Some((e.seq, body.clone())),
            _ => None,
        })
        .collect()
}

async fn presence_of(events: &mut Events, person: &str, status: PresenceStatus) {
    wait_for(events, |e| {
        matches!(e, ClientEvent::Presence { room, person: p, status: s }
            if room.as_str() == "trio-1" && p.as_str() == person && *s == status)
    })
    .await;
}

/// An HTTP GET's status code.
async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line")
}

/// A raw websocket signed in as `person`, for seeing the exact answer to one request.
struct Raw(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Raw {
    async fn signed_in(node: &Node, person: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = node.url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", PROTOCOL_VERSION.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut raw = Self(ws);
        let hello = serde_json::json!({"type": "hello", "token": token(person)});
        assert!(matches!(
            raw.call(1, hello).await,
            ServerMessage::Welcome(_)
        ));
        raw
    }

    /// Sends a request with id `id` and returns its answer.
    async fn call(&mut self, id: u64, mut request: serde_json::Value) -> ServerMessage {
        request["id"] = id.into();
        self.0
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(20), self.0.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = next else {
                panic!("the connection closed or went silent before answering {id}")
            };
            let frame: triad_protocol::ServerFrame = serde_json::from_str(&text).unwrap();
            if frame.re == Some(id) {
                return frame.message;
            }
        }
    }
}

#[tokio::test]
async fn trio_members_on_two_nodes_chat_see_presence_and_typing() {
    let redis = redis().await;
    Node::import_into(&redis.url).await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::start_on(&redis.url, a_dir.path()).await;
    let b = Node::start_on(&redis.url, b_dir.path()).await;

    let (anna, mut anna_events) = connect(&a, "anna.jensen").await;
    let (marco, mut marco_events) = connect(&b, "marco.rossi").await;
    let (rhian, mut rhian_events) = connect(&a, "rhian.evans").await;

    // Anna on node A sees Marco, on node B, come online; and his typing.
    presence_of(&mut anna_events, "marco.rossi", PresenceStatus::Online).await;
    marco.typing(&trio(), true).await.unwrap();
    wait_for(&mut anna_events, |e| {
        matches!(e, ClientEvent::Typing { person, active: true, .. } if person.as_str() == "marco.rossi")
    })
    .await;

    // Messages from both nodes reach everyone, in one order.
    let mut sent = Vec::new();
    for (i, client) in [&anna, &marco, &rhian, &marco, &anna]
        .into_iter()
        .enumerate()
    {
        let body = format!("across nodes {i}");
        sent.push((client.send(&trio(), &body).await.unwrap().seq, body));
    }
    for events in [&mut anna_events, &mut marco_events, &mut rhian_events] {
        assert_eq!(messages(&room_events(events, "trio-1", 5).await), sent);
    }

    // The moderator, on a third connection (node B), joins; the members on A see it.
    let (sara, _sara_events) = connect(&b, "sara.moderator").await;
    sara.join(&trio()).await.unwrap();
    // The join (a stored event, through the store's feed) and her presence in the room
    // (through the bus) may come in either order.
    let (mut saw_join, mut saw_presence) = (false, false);
    while !(saw_join && saw_presence) {
        match wait_for(&mut anna_events, |e| {
            matches!(e, ClientEvent::Event(_) | ClientEvent::Presence { .. })
        })
        .await
        {
            ClientEvent::Event(event) => {
                assert_eq!(
                    (event.author.as_str(), &event.body),
                    ("sara.moderator", &EventBody::ModeratorJoined)
                );
                saw_join = true;
            }
            ClientEvent::Presence {
                room,
                person,
                status,
            } => {
                saw_presence |= room.as_str() == "trio-1"
                    && person.as_str() == "sara.moderator"
                    && status == PresenceStatus::Online;
            }
            _ => unreachable!(),
        }
    }
    let ack = sara
        .send(&trio(), "Hello from your moderator")
        .await
        .unwrap();
    let got = room_events(&mut rhian_events, "trio-1", 2).await;
    assert_eq!(
        messages(&got).last(),
        Some(&(ack.seq, "Hello from your moderator".to_string()))
    );

    // Marco leaves: Anna sees him go offline.
    marco.close().await;
    presence_of(&mut anna_events, "marco.rossi", PresenceStatus::Offline).await;
}

#[tokio::test]
async fn clients_of_a_killed_node_resume_on_the_other_with_nothing_lost_or_doubled() {
    let redis = redis().await;
    Node::import_into(&redis.url).await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::start_on(&redis.url, a_dir.path()).await;
    let b = Node::start_on(&redis.url, b_dir.path()).await;
    let balancer = Balancer::start(vec![a.addr, b.addr]).await;

    // Anna and Rhian come in through the balancer (to node A); Marco is on node B.
    let (anna, mut anna_events) = connect_to(&balancer.url(), "anna.jensen").await;
    let (rhian, mut rhian_events) = connect_to(&balancer.url(), "rhian.evans").await;
    let (marco, mut marco_events) = connect(&b, "marco.rossi").await;
    // Giulia is on node A with no way round it; Lars, in her trio, is on node B.
    let (_giulia, _giulia_events) = connect(&a, "giulia.bianchi").await;
    let (_lars, mut lars_events) = connect(&b, "lars.nielsen").await;

    let mut acked = Vec::new();
    for i in 0..10 {
        let client = if i % 2 == 0 { &anna } else { &marco };
        acked.push(
            client
                .send(&trio(), &format!("before {i}"))
                .await
                .unwrap()
                .seq,
        );
    }
    a.kill().await;
    // Both keep sending while their node is gone; the client library retries.
    for i in 0..10 {
        let client = if i % 2 == 0 { &rhian } else { &marco };
        acked.push(
            client
                .send(&trio(), &format!("after {i}"))
                .await
                .unwrap()
                .seq,
        );
    }
    let last = *acked.iter().max().unwrap();
    assert_eq!(acked.len(), 20);
    assert_eq!(
        acked.iter().collect::<BTreeSet<_>>().len(),
        20,
        "no send was stored twice"
    );

    // Everyone ends with the same, complete history, each event once.
    for events in [&mut anna_events, &mut rhian_events, &mut marco_events] {
        let seqs: Vec<u64> = room_events(events, "trio-1", last as usize)
            .await
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    }
    let history = anna
        .history(&trio(), None, Some(0), Some(200))
        .await
        .unwrap();
    assert_eq!(history.events.len() as u64, last);

    // Node A sends no more heartbeats: its people expire from the others' presence.
    wait_for(&mut lars_events, |e| {
        matches!(e, ClientEvent::Presence { room, person, status: PresenceStatus::Offline }
            if room.as_str() == "trio-2" && person.as_str() == "giulia.bianchi")
    })
    .await;
}

#[tokio::test]
async fn sends_fail_clearly_while_redis_is_down_and_land_once_when_it_returns() {
    let aof = tempfile::tempdir().unwrap();
    let mut redis = RedisProcess::start_with_aof(aof.path())
        .await
        .expect("redis-server starts");
    Node::import_into(&redis.url).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_on(&redis.url, dir.path()).await;
    let (anna, _anna_events) = connect(&node, "anna.jensen").await;
    let first = anna.send(&trio(), "before the outage").await.unwrap();

    // A raw connection, to see the exact answer to a send while Redis is down.
    let mut raw = Raw::signed_in(&node, "marco.rossi").await;

    redis.stop();
    // Readiness comes from a probe of the store every second: it turns at the next one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(node.addr, "/readyz").await != 503 {
        assert!(Instant::now() < deadline, "not ready without Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outage = tokio::spawn({
        let anna = anna.clone();
        async move {
            let mut acks = Vec::new();
            for i in 0..5 {
                acks.push(
                    anna.send(&trio(), &format!("during the outage {i}"))
                        .await
                        .unwrap(),
                );
            }
            acks
        }
    });
    let send = serde_json::json!({"type": "send", "room": "trio-1", "client_msg_id": "raw-1", "body": "lost?"});
    match raw.call(2, send).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::StoreUnavailable),
        other => panic!("a send without Redis was answered with {other:?}"),
    }
    let ping = serde_json::json!({"type": "ping"});
    assert_eq!(
        raw.call(3, ping).await,
        ServerMessage::Pong,
        "the connection stays open"
    );

    redis
        .restart()
        .await
        .expect("redis-server restarts with its AOF");
    let acks = tokio::time::timeout(Duration::from_secs(60), outage)
        .await
        .expect("sends land")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(node.addr, "/readyz").await != 200 {
        assert!(Instant::now() < deadline, "ready again after Redis returns");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = anna
        .history(&trio(), None, Some(0), Some(200))
        .await
        .unwrap();
    let stored: Vec<(u64, String)> = messages(&history.events);
    let mut expected = vec![(first.seq, "before the outage".to_string())];
    expected.extend(
        acks.iter()
            .enumerate()
            .map(|(i, a)| (a.seq, format!("during the outage {i}"))),
    );
    assert_eq!(
        stored, expected,
        "each message exactly once, nothing acknowledged missing"
    );
}

#[tokio::test]
async fn a_slow_redis_does_not_hold_up_typing_and_sends_time_out_clearly() {
    let redis = redis().await;
    Node::import_into(&redis.url).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_on(&redis.url, dir.path()).await;
    let (anna, _anna_events) = connect(&node, "anna.jensen").await;
    let (_marco, mut marco_events) = connect(&node, "marco.rossi").await;
    let mut raw = Raw::signed_in(&node, "rhian.evans").await;

    let client = redis::Client::open(redis.url.as_str()).unwrap();
    // No response timeout on this connection: DEBUG SLEEP answers only when it is over.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(6)
            .query_async::<()>(&mut conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Typing does not touch Redis on the way to sessions on the same node.
    let started = Instant::now();
    anna.typing(&trio(), true).await.unwrap();
    wait_for(&mut marco_events, |e| {
        matches!(e, ClientEvent::Typing { active: true, .. })
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "typing waited for Redis: {:?}",
        started.elapsed()
    );

    // A send times out with a clear, retryable error rather than hanging.
    let started = Instant::now();
    let send = serde_json::json!({"type": "send", "room": "trio-1", "client_msg_id": "slow-1", "body": "there?"});
    match raw.call(2, send).await {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::StoreUnavailable, "{message}");
            assert!(
                message.contains("timed out"),
                "the message says why: {message}"
            );
        }
        other => panic!("a send during a Redis stall was answered with {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the timeout came before Redis woke"
    );
    sleeper.await.unwrap().expect("DEBUG SLEEP returns");
    let ack = anna.send(&trio(), "after the pause").await.unwrap();
    assert!(ack.seq >= 1);
}
