//! A store that is down or stalls, on a real `redis-server`: signing in is told to come back
//! later, every request is answered by the store deadline, requests that need no store are
//! answered while one waits for it, a send whose outcome was unknown is stored once when
//! retried, and readiness turns off at once. The stalls are `CLIENT PAUSE`s, so a test knows
//! an answer came during one when the pause is still on.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use triad_protocol::{ClientFrame, ErrorCode, Request, ServerMessage};
use triad_server::store::redis::testing::RedisProcess;

use crate::calendar::http;
use crate::harness::{Raw, TestServer, assert_error, msg_id, room};

/// Pauses every client of the Redis for `ms` milliseconds (`CLIENT PAUSE <ms> ALL`).
/// Resolves once the pause is in effect (Redis answered `+OK`); the handle finishes when
/// it is over: a `PING` sent next on the same connection is answered only then. So a
/// request answered while the handle has not finished was answered during the pause.
async fn pause(redis: &RedisProcess, ms: u32) -> JoinHandle<()> {
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    tcp.write_all(format!("CLIENT PAUSE {ms} ALL\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = [0_u8; 16];
    let read = tcp.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"+OK"), "CLIENT PAUSE answered");
    tcp.write_all(b"PING\r\n").await.unwrap();
    tokio::spawn(async move {
        let read = tcp.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"+PONG"), "PING answered");
    })
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
    // A first send loads the append script: one sent first during the pause would only
    // have asked Redis whether it knows it.
    let first = anna.send("trio-1", "before-1", "before the stall").await;
    assert!(matches!(first, ServerMessage::Ack(_)), "{first:?}");
    let stalled = pause(&redis, 3000).await;
    let answer = anna.send("trio-1", "stalled-1", "during the stall").await;
    assert_error(&answer, ErrorCode::StoreUnavailable);
    assert!(
        !stalled.is_finished(),
        "answered by the deadline, before the stall is over"
    );
    stalled.await.unwrap();
    // The outcome was unknown: the client retries with the same id, and learns that the
    // append that timed out had landed.
    let again = anna.send("trio-1", "stalled-1", "during the stall").await;
    match &again {
        ServerMessage::Ack(ack) => assert!(ack.duplicate, "the first append landed: {ack:?}"),
        other => panic!("expected an ack, got {other:?}"),
    }
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
    let stalled = pause(&redis, 2000).await;
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
    let stalled = pause(&redis, 2000).await;
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
    // Back once the store answers again (by the next probes; bounded).
    let mut tries = 0;
    loop {
        let (status, _, _) = http(server.addr, "GET", "/readyz", None, None).await;
        if status == 200 {
            break;
        }
        tries += 1;
        assert!(tries < 200, "/readyz did not turn 200 again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pipelined_sends_in_a_stall_are_all_answered_by_the_first_ones_deadline() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(300);
    })
    .await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let exceeded_before = deadlines_exceeded(&server).await;
    // Eight sends answered one deadline after another would take 2.4 s: longer than the
    // pause. Each one's deadline runs from when it was read, so all are answered at about
    // the first one's.
    let stalled = pause(&redis, 2000).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let id = anna
            .request(Request::Send {
                room: room("trio-1"),
                client_msg_id: msg_id(&format!("piped-{n}")),
                body: format!("pipelined {n}"),
            })
            .await;
        ids.push(id);
    }
    for id in ids {
        let answer = anna.answer(id).await;
        assert_error(&answer, ErrorCode::StoreUnavailable);
    }
    assert!(
        !stalled.is_finished(),
        "every send was answered during the pause"
    );
    stalled.await.unwrap();
    // Counted (tests in this process share the counter: it grew by at least these).
    assert!(deadlines_exceeded(&server).await >= exceeded_before + 8);
}

/// `triad_store_deadline_exceeded_total`, as `/metrics` says.
async fn deadlines_exceeded(server: &TestServer) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix("triad_store_deadline_exceeded_total "))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_join_cut_off_by_the_deadline_leaves_no_subscription_behind() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(300);
    })
    .await;
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    // Joining and leaving once loads the store's script for it.
    let joined = sara
        .call(Request::Join {
            room: room("trio-1"),
        })
        .await;
    assert!(matches!(joined, ServerMessage::Joined { .. }), "{joined:?}");
    let left = sara
        .call(Request::Leave {
            room: room("trio-1"),
        })
        .await;
    assert!(matches!(left, ServerMessage::Left { .. }), "{left:?}");
    assert_eq!(server.hub.local_sessions(&room("trio-1")), 0);
    // Pause Redis right after the join has recorded the moderator, so the join is cut off
    // by the deadline while it reads the room: a connection watching every command
    // (MONITOR) sees the record go by, and another one pauses every client at once.
    let mut monitor = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    monitor.write_all(b"MONITOR\r\n").await.unwrap();
    let mut ok = [0_u8; 5];
    monitor.read_exact(&mut ok).await.unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let mut pauser = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    let join = sara
        .request(Request::Join {
            room: room("trio-1"),
        })
        .await;
    let mut seen = Vec::new();
    loop {
        let mut chunk = [0_u8; 4096];
        let read = monitor.read(&mut chunk).await.unwrap();
        assert!(read > 0, "MONITOR ended");
        seen.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&seen).to_lowercase();
        if text.contains("evalsha") && text.contains("moderator_joined") {
            break;
        }
    }
    pauser
        .write_all(b"CLIENT PAUSE 1500 ALL\r\n")
        .await
        .unwrap();
    let answer = sara.answer(join).await;
    assert_error(&answer, ErrorCode::StoreUnavailable);
    sara.ws.close(None).await.unwrap();
    // Once the session has ended, no subscription of it is left in the room.
    server.sessions.close();
    server.sessions.wait().await;
    assert_eq!(server.hub.local_sessions(&room("trio-1")), 0);
}

#[tokio::test]
async fn a_session_reads_no_further_while_its_waiting_requests_fill_the_byte_bound() {
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store_deadline = Duration::from_millis(300);
    })
    .await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    // Each send's frame is about 96 KiB (a body of control characters, escaped): three of
    // them fill the 256 KiB of waiting frames, so the ping after them is read only once
    // the first send is answered.
    let stalled = pause(&redis, 2000).await;
    let body: String = "\u{1}".repeat(triad_protocol::limits::MAX_BODY_BYTES);
    let mut sends = Vec::new();
    for n in 0..3 {
        let id = anna
            .request(Request::Send {
                room: room("trio-1"),
                client_msg_id: msg_id(&format!("big-{n}")),
                body: body.clone(),
            })
            .await;
        sends.push(id);
    }
    let ping = anna.request(Request::Ping).await;
    let first = loop {
        let frame = anna.frame().await;
        if frame.re == Some(ping) || frame.re == Some(sends[0]) {
            break frame;
        }
    };
    assert_eq!(first.re, Some(sends[0]), "{first:?}");
    assert_error(&first.message, ErrorCode::StoreUnavailable);
    assert!(matches!(anna.answer(ping).await, ServerMessage::Pong));
    assert!(!stalled.is_finished(), "answered during the pause");
    stalled.await.unwrap();
}

#[tokio::test]
async fn typing_sent_right_after_a_join_waits_for_it() {
    // On Redis, a join takes a few round trips: the typing is read while it runs.
    let redis = redis().await;
    let server = TestServer::start_on_redis(&redis.url, |_| {}).await;
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    // Both frames go out in one write.
    let (join, typing) = (1001, 1002);
    for (id, request) in [
        (
            join,
            Request::Join {
                room: room("trio-1"),
            },
        ),
        (
            typing,
            Request::Typing {
                room: room("trio-1"),
                active: true,
            },
        ),
    ] {
        let text = serde_json::to_string(&ClientFrame::new(id, request)).unwrap();
        sara.ws.feed(Message::text(text)).await.unwrap();
    }
    sara.ws.flush().await.unwrap();
    assert!(matches!(
        sara.answer(join).await,
        ServerMessage::Joined { .. }
    ));
    let answer = sara.answer(typing).await;
    assert!(matches!(answer, ServerMessage::Ok), "{answer:?}");
}

/// A proxy in front of a real Redis that, once `slow` is set, holds each reply `delay`
/// before passing it on: a store that answers every call, slowly. Returns its URL.
async fn slow_proxy(
    redis: &RedisProcess,
    delay: Duration,
    slow: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> String {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = redis.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
            });
            let slow = slow.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0_u8; 64 * 1024];
                while let Ok(read) = upstream_read.read(&mut chunk).await {
                    if read == 0 {
                        break;
                    }
                    if slow.load(Ordering::Relaxed) {
                        tokio::time::sleep(delay).await;
                    }
                    if client_write.write_all(&chunk[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

#[tokio::test]
async fn signing_in_on_a_slow_store_is_bounded_by_one_deadline_for_all_its_calls() {
    let redis = redis().await;
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = slow_proxy(&redis, Duration::from_millis(150), slow.clone()).await;
    let server = TestServer::start_on_redis(&redis.url, |c| {
        c.store = proxy;
        c.store_deadline = Duration::from_millis(500);
    })
    .await;
    let (_anna, _) = server.signed_in("anna.jensen").await;
    // Every store call now takes 150 ms, well within the deadline; signing in takes
    // more than three of them, so more than the deadline in all.
    slow.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut raw = server.raw().await;
    let answer = raw
        .call(Request::Hello {
            token: server.token("marco.rossi"),
            resume: vec![],
        })
        .await;
    assert_error(&answer, ErrorCode::StoreUnavailable);
    assert_eq!(raw.closed().await, Some(1013), "try again later");
}
