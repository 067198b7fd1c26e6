//! What the server answers when a request cannot be done: unknown rooms told apart from
//! rooms of others, empty history pages, frames that are not UTF-8, error messages that
//! show no internals and quote a client's input only in part, the token expiry the
//! welcome states, and a sign-in right after a revocation.

use std::time::Duration;

use base64::Engine;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use triad_protocol::{ErrorCode, PersonId, Request, ServerMessage, limits};

use crate::calendar::http;
use crate::harness::{SECRET, TestServer, assert_error, msg_id, room};

/// Every request about a room, for `room_id`.
fn requests_about(room_id: &str) -> Vec<Request> {
    let r = room(room_id);
    vec![
        Request::Send {
            room: r.clone(),
            client_msg_id: msg_id("m1"),
            body: "hello".into(),
        },
        Request::History {
            room: r.clone(),
            before: None,
            after: None,
            limit: None,
        },
        Request::Members {
            room: r.clone(),
            after: None,
            limit: None,
        },
        Request::Join { room: r.clone() },
        Request::Read {
            room: r.clone(),
            seq: 1,
        },
        Request::Typing {
            room: r.clone(),
            active: true,
        },
        Request::Coachings {
            room: Some(r.clone()),
        },
        Request::Pins { room: r.clone() },
        Request::CallStart { room: r },
    ]
}

#[tokio::test]
async fn a_room_that_does_not_exist_is_unknown_and_one_of_others_is_not_yours() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    for request in requests_about("no-such-room") {
        let name = request.type_name();
        let answer = anna.call(request).await;
        match &answer {
            ServerMessage::Error { code, room, .. } => {
                assert_eq!(*code, ErrorCode::UnknownRoom, "{name}: {answer:?}");
                assert_eq!(room.as_ref().map(|r| r.as_str()), Some("no-such-room"));
            }
            other => panic!("{name}: expected unknown_room, got {other:?}"),
        }
    }
    for request in requests_about("trio-2") {
        let name = request.type_name();
        let answer = anna.call(request).await;
        match &answer {
            ServerMessage::Error { code, .. } => {
                assert_eq!(*code, ErrorCode::NotAMember, "{name}: {answer:?}")
            }
            other => panic!("{name}: expected not_a_member, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_history_page_of_nothing_is_refused() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    anna.send("trio-1", "h1", "one").await;
    for (before, after) in [(None, None), (Some(2), None), (None, Some(0))] {
        let answer = anna
            .call(Request::History {
                room: room("trio-1"),
                before,
                after,
                limit: Some(0),
            })
            .await;
        assert_error(&answer, ErrorCode::PageTooLarge);
    }
}

/// A text frame whose payload is not UTF-8.
fn not_utf8() -> Message {
    Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    ))
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut before_hello = server.raw().await;
    before_hello.ws.send(not_utf8()).await.unwrap();
    assert_eq!(before_hello.closed().await, Some(1007));

    let (mut signed_in, _) = server.signed_in("anna.jensen").await;
    signed_in.ws.send(not_utf8()).await.unwrap();
    assert_eq!(signed_in.closed().await, Some(1007));
}

#[tokio::test]
async fn error_messages_show_no_internals_and_quote_input_only_in_part() {
    let server = TestServer::start().await;
    // A token that is not a JWT at all: the message says so in words.
    let mut raw = server.raw().await;
    let answer = raw
        .call(Request::Hello {
            token: "not-a-token".into(),
            resume: vec![],
        })
        .await;
    match &answer {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(*code, ErrorCode::TokenInvalid);
            for internal in ["InvalidToken", "Base64", "Json", "Error"] {
                assert!(!message.contains(internal), "{message}");
            }
        }
        other => panic!("expected token_invalid, got {other:?}"),
    }

    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let long = "y".repeat(100_000);
    let frames = [
        format!(r#"{{"id":1,"type":"history","room":"trio-1","limit":"{long}"}}"#),
        format!(r#"{{"id":2,"type":"send","room":"{long}","client_msg_id":"a","body":"b"}}"#),
        format!(r#"{{"id":3,"type":"presence","status":"{long}"}}"#),
        format!(r#"{{"id":4,"type":"{long}"}}"#),
    ];
    for (i, frame) in frames.iter().enumerate() {
        anna.send_text(frame).await;
        let id = u64::try_from(i + 1).unwrap();
        let ServerMessage::Error { message, .. } = anna.answer(id).await else {
            panic!("frame {id}: expected an error");
        };
        assert!(
            message.len() < 400,
            "frame {id}: a {}-byte message",
            message.len()
        );
        assert!(
            !message.contains(&"y".repeat(limits::MAX_ECHOED_CHARS + 1)),
            "frame {id}: {message}"
        );
    }
}

/// The `exp` claim of a JWT, in seconds.
fn exp_of(token: &str) -> i64 {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    claims["exp"].as_i64().unwrap()
}

#[tokio::test]
async fn the_welcome_states_the_token_expiry_without_the_leeway() {
    let server = TestServer::start_with(|c| c.jwt.leeway = Duration::from_secs(30)).await;
    let token = server.token("anna.jensen");
    let mut raw = server.raw().await;
    let welcome = raw.hello(&token, vec![]).await;
    assert_eq!(welcome.token_expires_at, exp_of(&token) * 1000);
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn a_token_issued_right_after_a_revocation_signs_in() {
    let server = TestServer::start().await;
    let coordinator = server.token("david.coordinator");
    let before = server.token("anna.jensen");
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/invitations",
        Some(&coordinator),
        Some(r#"{"person":"anna.jensen"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let code = json(&body)["code"].as_str().unwrap().to_string();
    // Early in a second, so the sign-in below falls in the same second as the revocation.
    while triad_server::store::now_ms() % 1000 >= 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/people/anna.jensen/revoke",
        Some(&coordinator),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // At once: within the second of the revocation.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["access_token"].as_str().unwrap().to_string();
    let mut raw = server.raw().await;
    let welcome = raw.hello(&token, vec![]).await;
    assert_eq!(welcome.person.id.as_str(), "anna.jensen");

    // A token issued before the revocation stays void.
    let mut old = server.raw().await;
    let answer = old
        .call(Request::Hello {
            token: before,
            resume: vec![],
        })
        .await;
    assert_error(&answer, ErrorCode::TokenRevoked);
    assert_eq!(old.closed().await, Some(4001));
}

#[tokio::test]
async fn a_token_minted_just_before_a_revocation_by_a_node_whose_clock_runs_ahead_is_void() {
    let server = TestServer::start_with(|c| c.jwt.leeway = Duration::from_secs(30)).await;
    let coordinator = server.token("david.coordinator");
    // Another node, its clock 10 s ahead (within the leeway), minted this token just
    // before the revocation.
    let now_secs = u64::try_from(triad_server::store::now_ms() / 1000).unwrap();
    let ahead = triad_server::auth::TokenMinter::hs256(SECRET.as_bytes(), &server.config.jwt)
        .mint_issued_after(
            &PersonId::new("anna.jensen").unwrap(),
            Duration::from_secs(3600),
            now_secs + 10,
        )
        .unwrap();
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/invitations",
        Some(&coordinator),
        Some(r#"{"person":"anna.jensen"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let code = json(&body)["code"].as_str().unwrap().to_string();
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/people/anna.jensen/revoke",
        Some(&coordinator),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mut old = server.raw().await;
    let answer = old
        .call(Request::Hello {
            token: ahead,
            resume: vec![],
        })
        .await;
    assert_error(&answer, ErrorCode::TokenRevoked);
    // Signing in again right away still works.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["access_token"].as_str().unwrap().to_string();
    let mut raw = server.raw().await;
    let welcome = raw.hello(&token, vec![]).await;
    assert_eq!(welcome.person.id.as_str(), "anna.jensen");
}
