//! Bad input: each case gets its own error code (or close code), stores nothing, and the
//! connection survives where the protocol allows it.

use std::time::Duration;

use base64::Engine;
use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use triad_protocol::{ErrorCode, Request, ServerMessage, limits};

use crate::harness::{Next, Raw, SECRET, TestServer, assert_error, room};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(person: &str) -> serde_json::Value {
    json!({ "sub": person, "iss": "triad", "aud": "triad", "exp": now() + 3600, "nbf": now() - 5, "iat": now() })
}

fn sign(claims: &serde_json::Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unsigned(claims: &serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64.encode(claims.to_string()))
}

async fn history_len(raw: &mut Raw, room_id: &str) -> usize {
    match raw
        .call(Request::History {
            room: room(room_id),
            before: None,
            after: None,
            limit: Some(200),
        })
        .await
    {
        ServerMessage::History(history) => history.events.len(),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_frames_get_codes_and_the_connection_survives() {
    let server = TestServer::start().await;
    let (mut raw, _) = server.signed_in("anna.jensen").await;

    raw.send_text("{not json").await;
    assert_error(&raw.frame().await.message, ErrorCode::BadJson);

    raw.send_text(r#"{"id":5,"type":"shout","room":"trio-1"}"#)
        .await;
    let frame = raw.frame().await;
    assert_eq!(
        frame.re,
        Some(5),
        "the request id is echoed even for an unknown type"
    );
    assert_error(&frame.message, ErrorCode::UnknownType);

    raw.send_text(r#"{"id":6,"type":"send","room":"trio-1"}"#)
        .await;
    let frame = raw.frame().await;
    assert_eq!(frame.re, Some(6));
    assert_error(&frame.message, ErrorCode::InvalidRequest);

    raw.send_text(r#"{"id":7,"type":"send","room":"Trio One","client_msg_id":"a","body":"x"}"#)
        .await;
    assert_error(&raw.frame().await.message, ErrorCode::InvalidRequest);

    raw.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_error(&raw.frame().await.message, ErrorCode::BinaryFrame);

    assert_eq!(
        raw.call(Request::Ping).await,
        ServerMessage::Pong,
        "still connected"
    );
    assert_eq!(
        history_len(&mut raw, "trio-1").await,
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn requests_before_hello_are_refused_then_hello_works() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let answer = raw.call(Request::Ping).await;
    assert_error(&answer, ErrorCode::NotAuthenticated);
    let answer = raw
        .call(Request::Send {
            room: room("trio-1"),
            client_msg_id: crate::harness::msg_id("x"),
            body: "hi".into(),
        })
        .await;
    assert_error(&answer, ErrorCode::NotAuthenticated);
    let welcome = raw.hello(&server.token("anna.jensen"), vec![]).await;
    assert_eq!(welcome.person.id.as_str(), "anna.jensen");
    assert!(
        welcome.rooms.iter().all(|r| r.last_seq == 0),
        "nothing was stored"
    );
}

#[tokio::test]
async fn no_hello_in_time_closes_the_connection() {
    let server = TestServer::start_with(|c| c.hello_timeout = Duration::from_millis(300)).await;
    let mut raw = server.raw().await;
    assert_eq!(raw.closed().await, Some(4000));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_code() {
    let server = TestServer::start().await;
    let mut expired = claims("anna.jensen");
    expired["exp"] = json!(now() - 120);
    let mut exp_string = claims("anna.jensen");
    exp_string["exp"] = json!((now() + 3600).to_string());
    let mut wrong_aud = claims("anna.jensen");
    wrong_aud["aud"] = json!("another-service");
    let mut wrong_iss = claims("anna.jensen");
    wrong_iss["iss"] = json!("someone-else");
    let mut not_yet = claims("anna.jensen");
    not_yet["nbf"] = json!(now() + 600);
    let mut no_exp = claims("anna.jensen");
    no_exp.as_object_mut().unwrap().remove("exp");
    let good = claims("anna.jensen");

    let cases = [
        (
            "expired",
            sign(&expired, Algorithm::HS256, SECRET),
            ErrorCode::TokenExpired,
        ),
        (
            "exp is a string",
            sign(&exp_string, Algorithm::HS256, SECRET),
            ErrorCode::TokenInvalid,
        ),
        (
            "no exp",
            sign(&no_exp, Algorithm::HS256, SECRET),
            ErrorCode::TokenInvalid,
        ),
        (
            "another key",
            sign(
                &good,
                Algorithm::HS256,
                "another-secret-0123456789abcdef0123",
            ),
            ErrorCode::TokenInvalid,
        ),
        (
            "another algorithm",
            sign(&good, Algorithm::HS512, SECRET),
            ErrorCode::TokenInvalid,
        ),
        ("alg none", unsigned(&good), ErrorCode::TokenInvalid),
        (
            "wrong audience",
            sign(&wrong_aud, Algorithm::HS256, SECRET),
            ErrorCode::TokenInvalid,
        ),
        (
            "wrong issuer",
            sign(&wrong_iss, Algorithm::HS256, SECRET),
            ErrorCode::TokenInvalid,
        ),
        (
            "not valid yet",
            sign(&not_yet, Algorithm::HS256, SECRET),
            ErrorCode::TokenInvalid,
        ),
        (
            "garbage",
            "not.a.token".to_string(),
            ErrorCode::TokenInvalid,
        ),
        (
            "unknown person",
            sign(&claims("nobody.here"), Algorithm::HS256, SECRET),
            ErrorCode::UnknownPerson,
        ),
    ];
    for (case, token, code) in cases {
        let mut raw = server.raw().await;
        let id = raw
            .request(Request::Hello {
                token,
                resume: vec![],
            })
            .await;
        let frame = raw.frame().await;
        assert_eq!(frame.re, Some(id), "{case}");
        match &frame.message {
            ServerMessage::Error { code: got, .. } => assert_eq!(*got, code, "{case}: {frame:?}"),
            other => panic!("{case}: expected an error, got {other:?}"),
        }
        assert_eq!(raw.closed().await, Some(4001), "{case}");
    }
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let (mut raw, _) = server.signed_in("anna.jensen").await;
    let huge = format!(
        r#"{{"type":"send","room":"trio-1","client_msg_id":"big","body":"{}"}}"#,
        "x".repeat(limits::MAX_FRAME_BYTES + 1)
    );
    // The server may close before the whole frame is written.
    let _ = raw.ws.send(Message::text(huge)).await;
    assert_eq!(raw.closed().await, Some(1009));
    let (mut other, _) = server.signed_in("marco.rossi").await;
    assert_eq!(
        history_len(&mut other, "trio-1").await,
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn message_bodies_and_ids_are_checked_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let (mut raw, _) = server.signed_in("anna.jensen").await;
    let long = "é".repeat(limits::MAX_BODY_BYTES / 2 + 1);
    assert_error(
        &raw.send("trio-1", "m1", &long).await,
        ErrorCode::BodyTooLong,
    );
    assert_error(
        &raw.send("trio-1", "m2", "   \n ").await,
        ErrorCode::EmptyBody,
    );
    assert_error(
        &raw.send("trio-1", "has space", "hello").await,
        ErrorCode::BadClientMsgId,
    );
    assert_error(
        &raw.send("trio-1", &"x".repeat(65), "hello").await,
        ErrorCode::BadClientMsgId,
    );
    assert_eq!(history_len(&mut raw, "trio-1").await, 0);
    // At the limit exactly is fine.
    let exact = "a".repeat(limits::MAX_BODY_BYTES);
    assert!(matches!(
        raw.send("trio-1", "m3", &exact).await,
        ServerMessage::Ack(_)
    ));
}

#[tokio::test]
async fn rooms_of_others_are_closed() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    assert_error(
        &anna.send("trio-2", "m1", "hello").await,
        ErrorCode::NotAMember,
    );
    assert_error(
        &anna.send("staff", "m2", "hello").await,
        ErrorCode::NotAMember,
    );
    assert_error(
        &anna.send("no-such-room", "m3", "hello").await,
        ErrorCode::UnknownRoom,
    );
    let history = anna
        .call(Request::History {
            room: room("trio-2"),
            before: None,
            after: None,
            limit: None,
        })
        .await;
    assert_error(&history, ErrorCode::NotAMember);
    assert_error(
        &anna
            .call(Request::Join {
                room: room("trio-2"),
            })
            .await,
        ErrorCode::NotAMember,
    );
    let (mut lars, _) = server.signed_in("lars.nielsen").await;
    assert_eq!(
        history_len(&mut lars, "trio-2").await,
        0,
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_moderator_must_join_a_trio_room_first() {
    let server = TestServer::start().await;
    let (mut sara, welcome) = server.signed_in("sara.moderator").await;
    let trio = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap();
    assert!(
        !trio.joined,
        "a moderator is not in a trio room until joining"
    );
    assert_error(
        &sara.send("trio-1", "m1", "hello").await,
        ErrorCode::JoinRequired,
    );
    let history = sara
        .call(Request::History {
            room: room("trio-1"),
            before: None,
            after: None,
            limit: None,
        })
        .await;
    assert_error(&history, ErrorCode::JoinRequired);
    assert_error(
        &sara
            .call(Request::Typing {
                room: room("trio-1"),
                active: true,
            })
            .await,
        ErrorCode::JoinRequired,
    );
    // Members cannot leave their own room.
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    assert_error(
        &anna
            .call(Request::Leave {
                room: room("trio-1"),
            })
            .await,
        ErrorCode::Forbidden,
    );
    assert_eq!(history_len(&mut anna, "trio-1").await, 0);
}

#[tokio::test]
async fn sending_faster_than_the_limit_is_refused() {
    let server = TestServer::start_with(|c| {
        c.send_rate_per_second = 1;
        c.send_burst = 3;
    })
    .await;
    let (mut raw, welcome) = server.signed_in("anna.jensen").await;
    assert_eq!(
        (
            welcome.limits.send_rate_per_second,
            welcome.limits.send_burst
        ),
        (1, 3)
    );
    for i in 0..3 {
        assert!(matches!(
            raw.send("trio-1", &format!("m{i}"), "hi").await,
            ServerMessage::Ack(_)
        ));
    }
    assert_error(
        &raw.send("trio-1", "m3", "hi").await,
        ErrorCode::RateLimited,
    );
    // The limit is per person: a second session shares it.
    let (mut tab, _) = server.signed_in("anna.jensen").await;
    assert_error(
        &tab.send("trio-1", "m4", "hi").await,
        ErrorCode::RateLimited,
    );
    assert_eq!(
        history_len(&mut raw, "trio-1").await,
        3,
        "refused sends store nothing"
    );
}

#[tokio::test]
async fn pages_over_the_limit_are_refused() {
    let server = TestServer::start().await;
    let (mut raw, _) = server.signed_in("anna.jensen").await;
    let limit = Some(limits::MAX_PAGE_SIZE + 1);
    let answer = raw
        .call(Request::History {
            room: room("trio-1"),
            before: None,
            after: None,
            limit,
        })
        .await;
    assert_error(&answer, ErrorCode::PageTooLarge);
    let both = raw
        .call(Request::History {
            room: room("trio-1"),
            before: Some(5),
            after: Some(1),
            limit: None,
        })
        .await;
    assert_error(&both, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn foreign_origins_and_other_subprotocols_are_refused_before_the_upgrade() {
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://school.example".into()]).await;
    let refused = Raw::connect(&server.url(), Some("https://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("expected HTTP 403, got {other}"),
        Ok(_) => panic!("a foreign origin was upgraded"),
    }
    assert!(
        Raw::connect(&server.url(), Some("https://school.example"))
            .await
            .is_ok()
    );
    let own = format!("http://{}", server.addr);
    assert!(
        Raw::connect(&server.url(), Some(&own)).await.is_ok(),
        "the server's own origin"
    );

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat.v9".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected HTTP 400, got {:?}", other.map(|_| ())),
    }
}

/// Sends one raw HTTP request and returns the response (head and body), lowercased.
async fn raw_http(server: &TestServer, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("the server answered")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_are_told_why() {
    let server = TestServer::start().await;
    let refused = [
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "http/1.1 400",
            "connection header must include `upgrade`",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "http/1.1 426",
            "sec-websocket-version: 13",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
            "http/1.1 400",
            "sec-websocket-key missing",
        ),
    ];
    for (request, status, says) in refused {
        let response = raw_http(&server, request).await;
        assert!(response.starts_with(status), "{request}: {response}");
        assert!(response.contains(says), "{request}: {response}");
    }

    // The RFC 6455 sample key gets the RFC's accept value, and an offer split over two
    // header lines is read whole.
    let accepted = raw_http(
        &server,
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: chat.v9\r\nSec-WebSocket-Protocol: triad.v1\r\n\r\n",
    )
    .await;
    assert!(accepted.starts_with("http/1.1 101"), "{accepted}");
    assert!(
        accepted.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{accepted}"
    );
    assert!(
        accepted.contains("sec-websocket-protocol: triad.v1"),
        "{accepted}"
    );
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let server =
        TestServer::start_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open");
    // A complete request on a new connection is still served.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    tcp.read_to_string(&mut buf).await.unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
}

#[tokio::test]
async fn a_token_that_expires_closes_the_session_unless_refreshed() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let welcome = raw
        .hello(
            &server.token_for("anna.jensen", Duration::from_secs(2)),
            vec![],
        )
        .await;
    raw.skip_live(&welcome).await;
    let mut expired_error = false;
    let code = loop {
        match raw.next().await {
            Next::Frame(frame) => {
                if let ServerMessage::Error {
                    code: ErrorCode::TokenExpired,
                    ..
                } = frame.message
                {
                    expired_error = true;
                }
            }
            Next::Closed(code) => break code,
        }
    };
    assert!(expired_error, "the client is told why");
    assert_eq!(code, Some(4003));

    let mut raw = server.raw().await;
    let welcome = raw
        .hello(
            &server.token_for("anna.jensen", Duration::from_secs(2)),
            vec![],
        )
        .await;
    raw.skip_live(&welcome).await;
    let answer = raw
        .call(Request::Refresh {
            token: server.token("anna.jensen"),
        })
        .await;
    assert_eq!(answer, ServerMessage::Ok);
    let other = raw
        .call(Request::Refresh {
            token: server.token("marco.rossi"),
        })
        .await;
    assert_error(&other, ErrorCode::Forbidden);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        raw.call(Request::Ping).await,
        ServerMessage::Pong,
        "the refreshed session lives on"
    );
}
