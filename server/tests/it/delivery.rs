//! The order and the end of what a session is sent: the welcome before anything else, and
//! the slow-consumer close frame reaching a client that reads again only later.

use std::time::Duration;

use futures_util::future::join_all;
use triad_protocol::{PresenceStatus, ServerMessage, limits};

use triad_server::gateway::session::CLOSE_DEADLINE;

use crate::harness::{Next, Raw, TestServer};

#[tokio::test]
async fn the_welcome_comes_before_any_presence_even_when_everyone_connects_at_once() {
    let server = TestServer::start().await;
    let people = [
        "anna.jensen",
        "marco.rossi",
        "rhian.evans",
        "lars.nielsen",
        "giulia.bianchi",
        "owen.price",
        "sara.moderator",
        "david.coordinator",
    ];
    for round in 0..5 {
        let connecting = people.iter().map(|person| {
            let server = &server;
            async move {
                let mut raw = server.raw().await;
                let token = server.token(person);
                let id = raw
                    .request(triad_protocol::Request::Hello {
                        token,
                        resume: vec![],
                    })
                    .await;
                let first = raw.frame().await;
                assert!(
                    matches!(first.message, ServerMessage::Welcome(_)) && first.re == Some(id),
                    "round {round}: {person}'s first frame is {first:?}"
                );
                raw
            }
        });
        // Everyone stays connected until the round is over, then leaves at once.
        drop(join_all(connecting).await);
    }
}

/// Fills Rhian's outbox while her client reads nothing, until the server closes her session
/// as too slow (her partners see her go offline). Returns her connection, unread.
async fn closed_as_too_slow(server: &TestServer) -> Raw {
    let (lurker, _) = server.signed_in("rhian.evans").await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let body = "x".repeat(limits::MAX_BODY_BYTES);
    let mut closed = false;
    for i in 0..2000 {
        let id = format!("f{i}");
        assert!(
            matches!(anna.send("trio-1", &id, &body).await, ServerMessage::Ack(_)),
            "sent"
        );
        loop {
            match marco.frame().await.message {
                ServerMessage::Event { event } if event.seq == i + 1 => break,
                ServerMessage::Presence { person, status, .. }
                    if person.as_str() == "rhian.evans" && status == PresenceStatus::Offline =>
                {
                    closed = true;
                }
                _ => {}
            }
        }
        if closed {
            break;
        }
    }
    assert!(closed, "the lurker was closed as too slow");
    lurker
}

#[tokio::test]
async fn a_slow_client_that_reads_again_later_still_gets_the_close_frame() {
    let server = TestServer::start_with(|c| c.outbox_capacity = 8).await;
    let mut lurker = closed_as_too_slow(&server).await;
    // She is away for a while, longer than the short close deadline, then reads
    // everything. The server runs on this test's runtime: its clock is moved on.
    tokio::time::pause();
    tokio::time::advance(CLOSE_DEADLINE * 3).await;
    tokio::time::resume();
    let code = loop {
        match lurker.next().await {
            Next::Frame(_) => continue,
            Next::Closed(code) => break code,
        }
    };
    assert_eq!(
        code,
        Some(4008),
        "the close frame arrives after what was on its way"
    );
}

#[tokio::test]
async fn a_session_waiting_out_its_slow_close_does_not_hold_up_the_shutdown() {
    let mut server = TestServer::start_with(|c| {
        c.outbox_capacity = 8;
        c.shutdown_timeout = Duration::from_secs(5);
    })
    .await;
    let _lurker = closed_as_too_slow(&server).await;
    server.shutdown().await;
    assert!(
        server.sessions.is_empty(),
        "every session closed within the shutdown, none left open at its end"
    );
}
