//! A store that is down or stalls, on a real `redis-server`: signing in is told to come back
//! later, every request is answered by the store deadline, requests that need no store are
//! answered while one waits for it, a send whose outcome was unknown is stored once when
//! retried, and readiness turns off at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use triad_protocol::{ErrorCode, Request, ServerMessage};
use triad_server::store::redis::testing::RedisProcess;

use crate::calendar::http;
use crate::harness::{Raw, TestServer, assert_error, msg_id, room};

/// Stalls the whole Redis for `secs` seconds (`DEBUG SLEEP`). Resolves once the command
/// is on its way; the handle finishes when the stall is over.
async fn stall(redis: &RedisProcess, secs: u32) -> JoinHandle<()> {
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    tcp.write_all(format!("DEBUG SLEEP {secs}\r\n").as_bytes())
        .await
        .unwrap();
    let handle = tokio::spawn(async move {
        let mut answer = [0_u8; 16];
        let read = tcp.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"+OK"), "DEBUG SLEEP answered");
    });
    // Redis takes the command up at once; this margin only keeps a request sent next from
    // overtaking it on the way in.
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle
}

async fn redis() -> RedisProcess {
    RedisProcess::start().await.expect("start redis-server")
}

#[tokio::test]
async fn signing_in_while_the_store_is_down_says_come_back_later() {
    let mut redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(500);
    })
    .await;
    let (_anna, _) = server.signed_in("anna.jensen").await;
    redis.stop();
    let mut raw = server.raw().await;
    let answer = raw
        .call(Request::Hello {
            token: server.token("marco.rossi"),
            resume: vec![],
        })
        .await;
    assert_error(&answer, ErrorCode::StoreUnavailable);
    let code = raw.closed().await.expect("a close code");
    assert_eq!(code, 1013, "try again later, not a refused token");
    assert!(triad_protocol::CloseCode(code).should_reconnect());
}

/// The events of `room` in history, by client message id.
async fn stored_ids(raw: &mut Raw, room_id: &str) -> Vec<String> {
    match raw
        .call(Request::History {
            room: room(room_id),
            before: None,
            after: None,
            limit: Some(200),
        })
        .await
    {
        ServerMessage::History(history) => history
            .events
            .into_iter()
            .filter_map(|e| e.body.client_msg_id().map(|id| id.0.clone()))
            .collect(),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn a_send_answered_store_unavailable_in_a_stall_is_stored_once_when_retried() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(500);
    })
    .await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let stalled = stall(&redis, 3).await;
    let answer = anna.send("trio-1", "stalled-1", "during the stall").await;
    assert_error(&answer, ErrorCode::StoreUnavailable);
    assert!(
        !stalled.is_finished(),
        "answered by the deadline, before the stall is over"
    );
    stalled.await.unwrap();
    // The outcome was unknown: the client retries with the same id.
    let again = anna.send("trio-1", "stalled-1", "during the stall").await;
    assert!(matches!(again, ServerMessage::Ack(_)), "{again:?}");
    let ids = stored_ids(&mut anna, "trio-1").await;
    assert_eq!(
        ids.iter().filter(|id| id.as_str() == "stalled-1").count(),
        1,
        "stored once: {ids:?}"
    );
}

#[tokio::test]
async fn typing_is_delivered_while_a_send_waits_for_a_stalled_store() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |_| {}).await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let stalled = stall(&redis, 2).await;
    let send = anna
        .request(Request::Send {
            room: room("trio-1"),
            client_msg_id: msg_id("slow-1"),
            body: "waiting for the store".into(),
        })
        .await;
    let typing = anna
        .request(Request::Typing {
            room: room("trio-1"),
            active: true,
        })
        .await;
    loop {
        if let ServerMessage::Typing { person, .. } = marco.frame().await.message {
            assert_eq!(person.as_str(), "anna.jensen");
            break;
        }
    }
    assert!(
        !stalled.is_finished(),
        "typing reached the peer during the stall"
    );
    // Anna's own answers: `ok` to typing first, then the send's.
    let first = loop {
        let frame = anna.frame().await;
        if frame.re == Some(typing) || frame.re == Some(send) {
            break frame;
        }
    };
    assert_eq!(first.re, Some(typing), "{first:?}");
    let answer = anna.answer(send).await;
    assert!(
        matches!(
            answer,
            ServerMessage::Ack(_)
                | ServerMessage::Error {
                    code: ErrorCode::StoreUnavailable,
                    ..
                }
        ),
        "{answer:?}"
    );
    stalled.await.unwrap();
}

#[tokio::test]
async fn readiness_turns_off_at_once_while_the_store_stalls() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(300);
        c.readiness_interval = Duration::from_millis(100);
    })
    .await;
    let (status, _, _) = http(server.addr, "GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    let stalled = stall(&redis, 2).await;
    loop {
        assert!(
            !stalled.is_finished(),
            "/readyz did not answer 503 during the stall"
        );
        let (status, _, _) = http(server.addr, "GET", "/readyz", None, None).await;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stalled.await.unwrap();
    // Back once the store answers again.
    loop {
        let (status, _, _) = http(server.addr, "GET", "/readyz", None, None).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
