//! A programme too large to list in every welcome: the programme-wide room lists only who
//! is online (with the count of everyone), presence changes are not pushed there (they
//! still are in trio rooms), and `members` pages through everyone.

use triad_protocol::{PersonId, PersonInfo, Request, Role, ServerMessage, limits};
use triad_server::store::Store;

use crate::harness::{TestServer, room};

/// Adds `extra` heads to the commons of the demo programme.
async fn enlarge(store: &dyn Store, extra: usize) {
    let mut programme = store.programme().await.unwrap();
    let commons = programme
        .rooms
        .iter_mut()
        .find(|r| r.id.as_str() == "commons")
        .unwrap();
    for i in 0..extra {
        let id = PersonId::new(format!("visitor-{i:03}")).unwrap();
        commons.members.push(id.clone());
        programme.people.push(PersonInfo {
            id,
            name: format!("Visitor {i}"),
            role: Role::Head,
            region: "vejle".into(),
            school: "School".into(),
            time_zone: "Europe/Copenhagen".into(),
        });
    }
    store.apply_programme(&programme).await.unwrap();
}

#[tokio::test]
async fn a_large_commons_lists_who_is_online_and_pages_the_rest() {
    let extra = limits::MAX_LISTED_MEMBERS + 20;
    let server = TestServer::start_seeded(async |store| enlarge(store, extra).await).await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (_marco, welcome) = server.signed_in("marco.rossi").await;

    let commons = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "commons")
        .unwrap();
    let total = commons.member_count as usize;
    assert!(total > limits::MAX_LISTED_MEMBERS, "{total}");
    let listed: Vec<&str> = commons.members.iter().map(|m| m.person.as_str()).collect();
    assert!(
        listed.contains(&"anna.jensen") && listed.contains(&"marco.rossi"),
        "{listed:?}"
    );
    assert_eq!(
        listed.len(),
        2,
        "only the people online are listed: {listed:?}"
    );
    let trio = welcome
        .rooms
        .iter()
        .find(|r| r.id.as_str() == "trio-1")
        .unwrap();
    assert_eq!(trio.members.len(), 3, "a small room lists everyone");
    assert_eq!(trio.member_count, 3);

    // Marco coming online reached Anna in their trio, not in the commons.
    let mut seen = Vec::new();
    loop {
        let frame = anna.frame().await;
        if let ServerMessage::Presence { room, person, .. } = &frame.message {
            seen.push((room.to_string(), person.to_string()));
            if room.as_str() == "trio-1" {
                break;
            }
        }
    }
    assert!(matches!(
        anna.call(Request::Ping).await,
        ServerMessage::Pong
    ));
    while let Some(frame) = anna.pending.pop_front() {
        if let ServerMessage::Presence { room, person, .. } = frame.message {
            seen.push((room.to_string(), person.to_string()));
        }
    }
    assert!(
        seen.iter().all(|(room, _)| room != "commons"),
        "presence pushed in the large commons: {seen:?}"
    );

    // Everyone, a page at a time, in id order.
    let mut everyone: Vec<String> = Vec::new();
    let mut after = None;
    loop {
        let answer = anna
            .call(Request::Members {
                room: room("commons"),
                after: after.clone(),
                limit: Some(50),
            })
            .await;
        let ServerMessage::Members {
            members, has_more, ..
        } = answer
        else {
            panic!("expected members, got {answer:?}");
        };
        assert!(members.len() <= 50);
        after = members.last().map(|m| m.person.clone());
        everyone.extend(members.into_iter().map(|m| m.person.to_string()));
        if !has_more {
            break;
        }
    }
    assert_eq!(everyone.len(), total);
    let mut sorted = everyone.clone();
    sorted.sort();
    assert_eq!(everyone, sorted);

    let answer = anna
        .call(Request::Members {
            room: room("commons"),
            after: None,
            limit: Some(limits::MAX_PAGE_SIZE + 1),
        })
        .await;
    crate::harness::assert_error(&answer, triad_protocol::ErrorCode::PageTooLarge);
}
