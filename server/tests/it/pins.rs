//! Pins over raw websockets: pinning a message tells everyone in the room, `pins` lists
//! them, unpinning tells them again; pins refer to chat messages only, and only people in
//! the room may pin.

use triad_protocol::{ErrorCode, Pin, Request, ServerMessage};

use crate::harness::{Raw, TestServer, assert_error, room};

/// Reads until a `pinned` push arrives, skipping events, presence and typing.
async fn next_pinned(raw: &mut Raw) -> (Pin, bool) {
    loop {
        if let ServerMessage::Pinned { pin, pinned } = raw.frame().await.message {
            return (pin, pinned);
        }
    }
}

async fn pins(raw: &mut Raw, room_id: &str) -> Vec<Pin> {
    match raw
        .call(Request::Pins {
            room: room(room_id),
        })
        .await
    {
        ServerMessage::Pins { room: listed, pins } => {
            assert_eq!(listed.as_str(), room_id);
            pins
        }
        other => panic!("expected pins, got {other:?}"),
    }
}

fn pin(room_id: &str, seq: u64) -> Request {
    Request::Pin {
        room: room(room_id),
        seq,
    }
}

fn unpin(room_id: &str, seq: u64) -> Request {
    Request::Unpin {
        room: room(room_id),
        seq,
    }
}

#[tokio::test]
async fn a_pinned_message_is_announced_listed_and_unpinned_by_any_member() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (mut rhian, _) = server.signed_in("rhian.evans").await;
    assert!(matches!(
        anna.send(
            "trio-1",
            "m1",
            "Exit tickets told us more than the test did"
        )
        .await,
        ServerMessage::Ack(_)
    ));
    assert!(matches!(
        marco.send("trio-1", "m2", "agreed").await,
        ServerMessage::Ack(_)
    ));

    assert_eq!(anna.call(pin("trio-1", 1)).await, ServerMessage::Ok);
    for raw in [&mut anna, &mut marco, &mut rhian] {
        let (pin, pinned) = next_pinned(raw).await;
        assert!(pinned);
        assert_eq!(
            (pin.room.as_str(), pin.seq, pin.pinned_by.as_str()),
            ("trio-1", 1, "anna.jensen")
        );
    }
    // Pinning again changes nothing and announces nothing.
    assert_eq!(marco.call(pin("trio-1", 1)).await, ServerMessage::Ok);
    let listed = pins(&mut rhian, "trio-1").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].seq, listed[0].pinned_by.as_str()),
        (1, "anna.jensen")
    );

    // Any member may unpin; the next push anyone sees is the unpin, not a second pin.
    assert_eq!(rhian.call(unpin("trio-1", 1)).await, ServerMessage::Ok);
    for raw in [&mut anna, &mut marco, &mut rhian] {
        let (pin, pinned) = next_pinned(raw).await;
        assert!(!pinned, "{pin:?}");
        assert_eq!(pin.seq, 1);
    }
    assert!(pins(&mut anna, "trio-1").await.is_empty());
    // Unpinning what is not pinned is fine, and quiet.
    assert_eq!(marco.call(unpin("trio-1", 1)).await, ServerMessage::Ok);

    // Pins come back in message order.
    assert_eq!(marco.call(pin("trio-1", 2)).await, ServerMessage::Ok);
    assert_eq!(anna.call(pin("trio-1", 1)).await, ServerMessage::Ok);
    let seqs: Vec<u64> = pins(&mut rhian, "trio-1")
        .await
        .iter()
        .map(|p| p.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[tokio::test]
async fn only_chat_messages_of_the_room_can_be_pinned() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    assert!(matches!(
        anna.send("trio-1", "m1", "hello").await,
        ServerMessage::Ack(_)
    ));
    for seq in [0, 2, 99] {
        let answer = anna.call(pin("trio-1", seq)).await;
        assert_error(&answer, ErrorCode::NoMessage);
    }
    // A moderator entering the room is an event, not a message.
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    assert!(matches!(
        sara.call(Request::Join {
            room: room("trio-1")
        })
        .await,
        ServerMessage::Joined { .. }
    ));
    assert_error(&anna.call(pin("trio-1", 2)).await, ErrorCode::NoMessage);
    assert!(pins(&mut anna, "trio-1").await.is_empty());
}

#[tokio::test]
async fn people_outside_the_room_cannot_pin_or_list_pins() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    assert!(matches!(
        anna.send("trio-1", "m1", "hello").await,
        ServerMessage::Ack(_)
    ));
    let (mut lars, _) = server.signed_in("lars.nielsen").await;
    assert_error(&lars.call(pin("trio-1", 1)).await, ErrorCode::NotAMember);
    assert_error(&lars.call(unpin("trio-1", 1)).await, ErrorCode::NotAMember);
    assert_error(
        &lars
            .call(Request::Pins {
                room: room("trio-1"),
            })
            .await,
        ErrorCode::NotAMember,
    );
    // An assigned moderator joins the room first.
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    assert_error(&sara.call(pin("trio-1", 1)).await, ErrorCode::JoinRequired);
    assert!(pins(&mut anna, "trio-1").await.is_empty());
}
