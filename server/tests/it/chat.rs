//! Chat behaviour over raw websockets: fan-out in order, acks, de-duplication, resume,
//! history pages, typing, presence, read markers, moderators joining, slow consumers.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triad_protocol::{
    EventBody, PresenceStatus, Request, ResumePoint, RoomEvent, ServerMessage, limits,
};

use crate::harness::{Raw, TestServer, assert_error, room};

fn ack_seq(message: &ServerMessage) -> u64 {
    match message {
        ServerMessage::Ack(ack) => ack.seq,
        other => panic!("expected ack, got {other:?}"),
    }
}

fn body(event: &RoomEvent) -> &str {
    match &event.body {
        EventBody::Message { body, .. } => body,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn history(
    raw: &mut Raw,
    room_id: &str,
    before: Option<u64>,
    after: Option<u64>,
    limit: u32,
) -> (Vec<u64>, bool) {
    match raw
        .call(Request::History {
            room: room(room_id),
            before,
            after,
            limit: Some(limit),
        })
        .await
    {
        ServerMessage::History(h) => (h.events.iter().map(|e| e.seq).collect(), h.has_more),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trio_chats_and_everyone_sees_every_message_in_order() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (mut rhian, _) = server.signed_in("rhian.evans").await;

    let mut acked = Vec::new();
    for i in 0..4 {
        let sender = match i {
            1 => &mut marco,
            2 => &mut rhian,
            _ => &mut anna,
        };
        acked.push(ack_seq(
            &sender
                .send("trio-1", &format!("c{i}"), &format!("message {i}"))
                .await,
        ));
    }
    assert_eq!(
        acked,
        vec![1, 2, 3, 4],
        "sequence numbers are contiguous from 1"
    );
    for raw in [&mut anna, &mut marco, &mut rhian] {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let event = raw.next_event().await;
            seen.push((event.seq, body(&event).to_string()));
        }
        let expected: Vec<_> = (0..4)
            .map(|i| (i as u64 + 1, format!("message {i}")))
            .collect();
        assert_eq!(seen, expected);
    }
    // Trio 2 saw nothing of it.
    let (mut lars, welcome) = server.signed_in("lars.nielsen").await;
    assert!(welcome.rooms.iter().all(|r| r.id.as_str() != "trio-1"));
    assert_eq!(
        history(&mut lars, "trio-2", None, None, 50).await.0,
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn a_send_retried_after_a_lost_ack_is_stored_once() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    anna.request(Request::Send {
        room: room("trio-1"),
        client_msg_id: crate::harness::msg_id("retry-1"),
        body: "are we meeting on Thursday?".into(),
    })
    .await;
    // The connection drops before the ack is read.
    anna.ws.close(None).await.unwrap();
    drop(anna);

    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let first = anna
        .send("trio-1", "retry-1", "are we meeting on Thursday?")
        .await;
    match first {
        ServerMessage::Ack(ack) => assert_eq!((ack.seq, ack.duplicate), (1, true)),
        other => panic!("expected the original ack, got {other:?}"),
    }
    assert_eq!(
        history(&mut anna, "trio-1", None, None, 50).await.0,
        vec![1]
    );
    // The same id in another room is another message.
    assert_eq!(
        ack_seq(&anna.send("commons", "retry-1", "hello all").await),
        1
    );
}

#[tokio::test]
async fn a_client_that_reconnects_gets_exactly_what_it_missed() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, welcome) = server.signed_in("marco.rossi").await;
    let epoch = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap()
        .epoch;
    for i in 0..2 {
        anna.send("trio-1", &format!("a{i}"), &format!("before {i}"))
            .await;
    }
    let mut last = 0;
    while last < 2 {
        last = marco.next_event().await.seq;
    }
    drop(marco);
    for i in 0..3 {
        anna.send("trio-1", &format!("b{i}"), &format!("missed {i}"))
            .await;
    }
    let mut marco = server.raw().await;
    let resume = vec![ResumePoint {
        room: room("trio-1"),
        epoch,
        seq: last,
    }];
    let welcome = marco.hello(&server.token("marco.rossi"), resume).await;
    let replayed = marco.skip_live(&welcome).await;
    let got: Vec<_> = replayed
        .iter()
        .map(|e| (e.seq, body(e).to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "missed 0".into()),
            (4, "missed 1".into()),
            (5, "missed 2".into())
        ]
    );
    // Then live again.
    anna.send("trio-1", "c0", "after").await;
    assert_eq!(marco.next_event().await.seq, 6);

    // A resume point from another epoch is void: nothing is replayed.
    let mut stale = server.raw().await;
    let resume = vec![ResumePoint {
        room: room("trio-1"),
        epoch: epoch + 1,
        seq: 1,
    }];
    let welcome = stale.hello(&server.token("rhian.evans"), resume).await;
    assert!(stale.skip_live(&welcome).await.is_empty());
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    for i in 0..7 {
        anna.send("trio-1", &format!("h{i}"), &format!("note {i}"))
            .await;
    }
    assert_eq!(
        history(&mut anna, "trio-1", None, None, 3).await,
        (vec![5, 6, 7], true)
    );
    assert_eq!(
        history(&mut anna, "trio-1", Some(5), None, 3).await,
        (vec![2, 3, 4], true)
    );
    assert_eq!(
        history(&mut anna, "trio-1", Some(2), None, 3).await,
        (vec![1], false)
    );
    assert_eq!(
        history(&mut anna, "trio-1", None, Some(5), 3).await,
        (vec![6, 7], false)
    );
    assert_eq!(
        history(&mut anna, "trio-1", None, Some(0), 3).await,
        (vec![1, 2, 3], true)
    );
}

#[tokio::test]
async fn typing_and_presence_reach_the_others() {
    let server = TestServer::start().await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (mut anna, welcome) = server.signed_in("anna.jensen").await;
    let trio = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap();
    let marco_status = trio
        .members
        .iter()
        .find(|m| m.person.as_str() == "marco.rossi")
        .unwrap()
        .status;
    assert_eq!(
        marco_status,
        PresenceStatus::Online,
        "the welcome shows who is online"
    );

    // Marco sees Anna come online, in the trio and in the commons.
    let mut rooms = Vec::new();
    while rooms.len() < 2 {
        if let ServerMessage::Presence {
            room,
            person,
            status,
        } = marco.frame().await.message
        {
            assert_eq!(
                (person.as_str(), status),
                ("anna.jensen", PresenceStatus::Online)
            );
            rooms.push(room.to_string());
        }
    }
    rooms.sort();
    assert_eq!(rooms, vec!["commons", "trio-1"]);

    assert_eq!(
        anna.call(Request::Typing {
            room: room("trio-1"),
            active: true
        })
        .await,
        ServerMessage::Ok
    );
    loop {
        if let ServerMessage::Typing {
            room,
            person,
            active,
        } = marco.frame().await.message
        {
            assert_eq!(
                (room.as_str(), person.as_str(), active),
                ("trio-1", "anna.jensen", true)
            );
            break;
        }
    }

    // A second tab changes nothing; away only when every tab is away; offline when all close.
    let (mut tab, _) = server.signed_in("anna.jensen").await;
    assert_eq!(
        anna.call(Request::Presence {
            status: PresenceStatus::Away
        })
        .await,
        ServerMessage::Ok
    );
    assert_eq!(
        tab.call(Request::Presence {
            status: PresenceStatus::Away
        })
        .await,
        ServerMessage::Ok
    );
    drop(anna);
    drop(tab);
    let mut statuses = Vec::new();
    while statuses.last() != Some(&PresenceStatus::Offline) {
        if let ServerMessage::Presence {
            room,
            person,
            status,
        } = marco.frame().await.message
            && room.as_str() == "trio-1"
            && person.as_str() == "anna.jensen"
        {
            statuses.push(status);
        }
    }
    assert_eq!(
        statuses,
        vec![PresenceStatus::Away, PresenceStatus::Offline]
    );
    assert_error(
        &marco
            .call(Request::Presence {
                status: PresenceStatus::Offline,
            })
            .await,
        triad_protocol::ErrorCode::InvalidRequest,
    );
}

#[tokio::test]
async fn read_markers_give_unread_counts_and_follow_across_tabs() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    for i in 0..3 {
        anna.send("trio-1", &format!("r{i}"), &format!("point {i}"))
            .await;
    }
    let (mut marco, welcome) = server.signed_in("marco.rossi").await;
    let trio = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap();
    assert_eq!((trio.last_seq, trio.read_seq, trio.unread), (3, 0, 3));
    let anna_view = server.signed_in("anna.jensen").await.1;
    let own = anna_view
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap();
    assert_eq!(own.unread, 0, "your own messages are read");

    let (mut tab, _) = server.signed_in("marco.rossi").await;
    let answer = marco
        .call(Request::Read {
            room: room("trio-1"),
            seq: 2,
        })
        .await;
    assert_eq!(
        answer,
        ServerMessage::Read {
            room: room("trio-1"),
            seq: 2,
            unread: 1
        }
    );
    loop {
        if let ServerMessage::Read { seq, unread, .. } = tab.frame().await.message {
            assert_eq!((seq, unread), (2, 1), "the other tab follows");
            break;
        }
    }
    // Markers never move back, nor past the end.
    let back = marco
        .call(Request::Read {
            room: room("trio-1"),
            seq: 1,
        })
        .await;
    assert_eq!(
        back,
        ServerMessage::Read {
            room: room("trio-1"),
            seq: 2,
            unread: 1
        }
    );
    let past = marco
        .call(Request::Read {
            room: room("trio-1"),
            seq: 99,
        })
        .await;
    assert_eq!(
        past,
        ServerMessage::Read {
            room: room("trio-1"),
            seq: 3,
            unread: 0
        }
    );
}

#[tokio::test]
async fn a_moderator_joining_is_announced_in_history() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    let joined = sara
        .call(Request::Join {
            room: room("trio-1"),
        })
        .await;
    let info = match joined {
        ServerMessage::Joined { room } => room,
        other => panic!("expected joined, got {other:?}"),
    };
    assert!(info.joined);
    assert!(
        info.members
            .iter()
            .any(|m| m.person.as_str() == "sara.moderator")
    );
    let event = anna.next_event().await;
    assert_eq!((event.seq, event.author.as_str()), (1, "sara.moderator"));
    assert_eq!(event.body, EventBody::ModeratorJoined);

    assert_eq!(
        ack_seq(&sara.send("trio-1", "s1", "Welcome, everyone").await),
        2
    );
    assert_eq!(body(&anna.next_event().await), "Welcome, everyone");
    assert_eq!(ack_seq(&anna.send("trio-1", "a1", "Thank you!").await), 3);
    assert_eq!(
        body(&sara.next_event().await),
        "Welcome, everyone",
        "senders see their own events"
    );
    assert_eq!(body(&sara.next_event().await), "Thank you!");

    // Joined stays joined across reconnects.
    let (_, welcome) = server.signed_in("sara.moderator").await;
    assert!(
        welcome
            .rooms
            .iter()
            .find(|r| r.id.as_str() == "trio-1")
            .unwrap()
            .joined
    );

    assert_eq!(
        sara.call(Request::Leave {
            room: room("trio-1")
        })
        .await,
        ServerMessage::Left {
            room: room("trio-1")
        }
    );
    loop {
        let event = anna.next_event().await;
        if event.body == EventBody::ModeratorLeft {
            assert_eq!(event.seq, 4);
            break;
        }
    }
    assert_error(
        &sara.send("trio-1", "s2", "still here?").await,
        triad_protocol::ErrorCode::JoinRequired,
    );
}

#[tokio::test]
async fn a_session_that_stops_reading_is_closed_and_others_are_not_held_up() {
    let server = TestServer::start_with(|c| c.outbox_capacity = 8).await;
    let (mut lurker, _) = server.signed_in("rhian.evans").await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let body = "x".repeat(limits::MAX_BODY_BYTES);
    // Rhian's client reads nothing while a few megabytes are sent.
    for i in 0..400 {
        ack_seq(&anna.send("trio-1", &format!("f{i}"), &body).await);
        let event = marco.next_event().await;
        assert_eq!(
            event.seq,
            i + 1,
            "a reading member gets every event in order"
        );
    }
    assert_eq!(
        lurker.closed().await,
        Some(4008),
        "the slow session is closed with 4008"
    );

    // It resumes from history like any reconnect.
    let mut again = server.raw().await;
    let welcome = again.hello(&server.token("rhian.evans"), vec![]).await;
    assert_eq!(
        welcome
            .rooms
            .iter()
            .find(|r| r.id.as_str() == "trio-1")
            .unwrap()
            .last_seq,
        400
    );
    let _ = lurker
        .ws
        .send(tokio_tungstenite::tungstenite::Message::text("{}"))
        .await;
}

#[tokio::test]
async fn history_survives_a_restart() {
    let server = TestServer::start().await;
    let (mut anna, welcome) = server.signed_in("anna.jensen").await;
    let epoch = welcome.rooms[0].epoch;
    for i in 0..5 {
        anna.send("commons", &format!("p{i}"), &format!("persisted {i}"))
            .await;
    }
    drop(anna);
    let server = server.restart().await;
    let (mut anna, welcome) = server.signed_in("anna.jensen").await;
    let commons = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "commons")
        .unwrap();
    assert_eq!(commons.last_seq, 5);
    assert_eq!(welcome.rooms[0].epoch, epoch, "the epoch is kept");
    assert_eq!(
        history(&mut anna, "commons", None, None, 10).await.0,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        ack_seq(&anna.send("commons", "p0", "persisted 0").await),
        1,
        "dedup survives too"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz", "/"] {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    }
}
