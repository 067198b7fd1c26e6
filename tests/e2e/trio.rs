//! A trio and its moderator chat through a real server process; a client drops and
//! resumes; a retried send is stored once; acknowledged messages survive SIGKILL.

use std::collections::BTreeMap;

use triad_client::{ClientEvent, RoomEvent, RoomId, new_client_msg_id};
use triad_protocol::EventBody;

use crate::harness::{Node, connect, room_events, wait_for};

fn trio() -> RoomId {
    RoomId::new("trio-1").unwrap()
}

fn text(event: &RoomEvent) -> Option<(u64, String)> {
    match &event.body {
        EventBody::Message { body, .. } => Some((event.seq, body.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn a_trio_and_its_moderator_chat_and_a_dropped_client_misses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path()).await;
    let (anna, mut anna_events) = connect(&node, "anna.jensen").await;
    let (marco, mut marco_events) = connect(&node, "marco.rossi").await;
    let (rhian, mut rhian_events) = connect(&node, "rhian.evans").await;
    let (sara, mut sara_events) = connect(&node, "sara.moderator").await;

    // The moderator enters; the members see it as the first event of the room.
    let info = sara.join(&trio()).await.unwrap();
    assert!(info.joined);
    for events in [&mut anna_events, &mut marco_events, &mut rhian_events] {
        let joined = room_events(events, "trio-1", 1).await;
        assert_eq!(
            (joined[0].seq, &joined[0].body),
            (1, &EventBody::ModeratorJoined)
        );
    }

    // Everyone speaks in turn.
    let speakers = [
        (&anna, "anna"),
        (&marco, "marco"),
        (&rhian, "rhian"),
        (&sara, "sara"),
    ];
    let mut expected = Vec::new();
    for round in 0..3 {
        for (client, name) in speakers {
            let body = format!("{name} says {round}");
            let ack = client.send(&trio(), &body).await.unwrap();
            expected.push((ack.seq, body));
        }
    }
    assert_eq!(
        expected.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (2..=13).collect::<Vec<_>>(),
        "acks carry contiguous sequence numbers"
    );
    for events in [&mut anna_events, &mut marco_events, &mut rhian_events] {
        let got: Vec<_> = room_events(events, "trio-1", 12)
            .await
            .iter()
            .filter_map(text)
            .collect();
        assert_eq!(
            got, expected,
            "every member sees every message once, in order"
        );
    }
    let got: Vec<_> = room_events(&mut sara_events, "trio-1", 12)
        .await
        .iter()
        .filter_map(text)
        .collect();
    assert_eq!(got, expected, "the moderator too");

    // Marco's connection drops mid-conversation; the others go on.
    marco.set_online(false);
    wait_for(&mut marco_events, |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    let mut missed = Vec::new();
    for (i, (client, name)) in [(&anna, "anna"), (&rhian, "rhian")]
        .into_iter()
        .cycle()
        .take(5)
        .enumerate()
    {
        let body = format!("{name} while marco is away {i}");
        missed.push((client.send(&trio(), &body).await.unwrap().seq, body));
    }
    marco.set_online(true);
    wait_for(&mut marco_events, |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    let got: Vec<_> = room_events(&mut marco_events, "trio-1", 5)
        .await
        .iter()
        .filter_map(text)
        .collect();
    assert_eq!(got, missed, "exactly the missed messages, in order");
    // And nothing twice: the next event is the next message.
    let next = anna.send(&trio(), "welcome back, Marco").await.unwrap();
    let after = room_events(&mut marco_events, "trio-1", 1).await;
    assert_eq!(
        text(&after[0]),
        Some((next.seq, "welcome back, Marco".to_string()))
    );

    // A send retried with the same id (its ack was lost) is stored once.
    let id = new_client_msg_id();
    let first = rhian
        .send_with_id(&trio(), id.clone(), "one copy only")
        .await
        .unwrap();
    let retry = rhian
        .send_with_id(&trio(), id, "one copy only")
        .await
        .unwrap();
    assert_eq!((retry.seq, retry.duplicate), (first.seq, true));
    let history = anna.history(&trio(), None, None, Some(200)).await.unwrap();
    let copies = history
        .events
        .iter()
        .filter(|e| text(e).is_some_and(|(_, b)| b == "one copy only"))
        .count();
    assert_eq!(copies, 1);
    let seqs: Vec<_> = history.events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=first.seq).collect::<Vec<_>>(),
        "history is contiguous"
    );
}

#[tokio::test]
async fn acknowledged_messages_survive_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path()).await;
    let mut acked: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut senders = Vec::new();
    for (person, room) in [
        ("anna.jensen", "trio-1"),
        ("marco.rossi", "trio-1"),
        ("lars.nielsen", "commons"),
    ] {
        let (client, _events) = connect(&node, person).await;
        senders.push(tokio::spawn(async move {
            let room = RoomId::new(room).unwrap();
            let mut acks = Vec::new();
            for i in 0..40 {
                let body = format!("{person} {i}");
                let ack = client.send(&room, &body).await.unwrap();
                acks.push(((room.to_string(), ack.seq), body));
            }
            acks
        }));
    }
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    // Killed right after the last ack: no graceful anything.
    node.kill().await;

    let node = Node::start(data.path()).await;
    let (reader, _events) = connect(&node, "anna.jensen").await;
    let mut stored = BTreeMap::new();
    for room in ["trio-1", "commons"] {
        let room_id = RoomId::new(room).unwrap();
        let mut after = 0;
        loop {
            let page = reader
                .history(&room_id, None, Some(after), Some(200))
                .await
                .unwrap();
            for event in &page.events {
                if let Some((seq, body)) = text(event) {
                    stored.insert((room.to_string(), seq), body);
                }
                after = event.seq;
            }
            if !page.has_more {
                break;
            }
        }
    }
    assert_eq!(acked.len(), 120);
    for (key, body) in &acked {
        assert_eq!(
            stored.get(key),
            Some(body),
            "acknowledged message {key:?} is missing"
        );
    }
    assert_eq!(stored.len(), acked.len(), "nothing unacknowledged appeared");
}
