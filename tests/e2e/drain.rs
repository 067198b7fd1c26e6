//! Graceful drain of one node: a send whose append is still in flight when the node is told
//! to stop is stored and answered before the session is closed with 1001.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use triad_protocol::{PROTOCOL_VERSION, ServerFrame, ServerMessage};
use triad_server::store::redis::testing::RedisProcess;

use crate::harness::{Node, SECRET, program, token};

/// Whether Redis answers a `PING` within 200 ms (it does not while it runs `DEBUG SLEEP`).
async fn redis_answers(client: &redis::Client) -> bool {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(200)));
    let Ok(mut conn) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

#[tokio::test]
async fn a_send_in_flight_at_sigterm_is_stored_and_acknowledged_before_the_close() {
    let redis = RedisProcess::start()
        .await
        .expect("redis-server starts (Debian: apt-get install redis-server)");
    Node::import_into(&redis.url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = program();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &redis.url,
            "--data-dir",
        ])
        .arg(dir.path())
        .args([
            "--jwt-secret",
            SECRET,
            "--drain-delay-ms",
            "300",
            "--shutdown-timeout-secs",
            "10",
        ])
        .stderr(Stdio::null());
    let node = Node::spawn(command).await;

    let mut request = node.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", PROTOCOL_VERSION.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = serde_json::json!({"type": "hello", "id": 1, "token": token("anna.jensen")});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    // Signed in and caught up: the session now waits for requests (entering it reads Redis).
    let (mut rooms, mut live) = (None, 0);
    while rooms != Some(live) {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("the connection closed before the welcome")
        };
        match serde_json::from_str::<ServerFrame>(&text).unwrap().message {
            ServerMessage::Welcome(welcome) => {
                rooms = Some(welcome.rooms.iter().filter(|r| r.joined).count());
            }
            ServerMessage::Live(_) => live += 1,
            _ => {}
        }
    }

    // Redis stalls for 2 s: an append started now is in flight until then.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async::<()>(&mut conn)
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis_answers(&client).await {
        assert!(
            Instant::now() < deadline,
            "Redis did not start its DEBUG SLEEP"
        );
    }

    let send = serde_json::json!({"type": "send", "id": 2, "room": "trio-1", "client_msg_id": "in-flight-1", "body": "sent as the node stops"});
    ws.send(Message::text(send.to_string())).await.unwrap();
    // The node reads the send during its drain delay at the latest, and the append waits
    // for Redis; SIGTERM now.
    let stopping = tokio::spawn(node.terminate());

    let mut acked = None;
    let close = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                Message::Text(text) => {
                    let frame: ServerFrame = serde_json::from_str(&text).unwrap();
                    if frame.re == Some(2) {
                        acked = Some(frame.message);
                    }
                }
                Message::Close(frame) => return frame,
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the session closes within the shutdown timeout");
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001, "{close:?}");
    match acked {
        Some(ServerMessage::Ack(ack)) => assert_eq!(ack.seq, 1),
        other => panic!("the send in flight was answered with {other:?} before the close"),
    }
    stopping.await.unwrap();
    sleeper.await.unwrap().expect("DEBUG SLEEP returns");

    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stored: u64 = redis::cmd("XLEN")
        .arg("triad:{room:trio-1}:events")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, 1, "the acknowledged message is stored");
}
