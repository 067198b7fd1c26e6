//! Calls across nodes: two server processes on one real Redis, trio members connected to
//! different nodes sharing one call (state, signals, leaving, a welcome on a third
//! session), the node holding the call killed under it, a message not held up by a call
//! request waiting for a frozen node, and a real WebRTC connection between call agents on
//! different nodes.

use std::time::Duration;

use triad_call::{AgentSettings, AgentStatus, CallAgent, NetworkSettings};
use triad_client::{ClientEvent, Events, PresenceStatus, RoomId};
use triad_protocol::{CallChangeKind, CallEndReason, CallState, PersonId, Signal};
use triad_server::store::redis::testing::RedisProcess;

use crate::harness::{Node, connect, token, wait_for};

fn trio() -> RoomId {
    RoomId::new("trio-1").unwrap()
}

fn person(id: &str) -> PersonId {
    PersonId::new(id).unwrap()
}

async fn redis() -> RedisProcess {
    RedisProcess::start()
        .await
        .expect("redis-server starts (Debian: apt-get install redis-server)")
}

/// Two nodes on one Redis with the demo programme.
async fn two_nodes(redis: &RedisProcess) -> (Node, Node, [tempfile::TempDir; 2]) {
    Node::import_into(&redis.url).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Node::start_on(&redis.url, dirs[0].path()).await;
    let b = Node::start_on(&redis.url, dirs[1].path()).await;
    (a, b, dirs)
}

/// Waits until `person` is seen online in trio-1, so both nodes have heard of each other.
async fn online(events: &mut Events, who: &str) {
    wait_for(events, |e| {
        matches!(e, ClientEvent::Presence { room, person: p, status: PresenceStatus::Online }
            if room.as_str() == "trio-1" && p.as_str() == who)
    })
    .await;
}

/// Waits for a `call_state` that `wanted` accepts.
async fn call_state(events: &mut Events, wanted: impl Fn(&CallState) -> bool) -> CallState {
    match wait_for(
        events,
        |e| matches!(e, ClientEvent::CallState(s) if wanted(s)),
    )
    .await
    {
        ClientEvent::CallState(state) => state,
        _ => unreachable!(),
    }
}

fn people(state: &CallState) -> Vec<&str> {
    let mut people: Vec<&str> = state
        .participants
        .iter()
        .map(|p| p.person.as_str())
        .collect();
    people.sort_unstable();
    people
}

fn offer(sdp: &str) -> Signal {
    Signal::Offer {
        sdp: sdp.into(),
        ice_restart: false,
    }
}

#[tokio::test]
async fn heads_on_two_nodes_share_a_call_until_its_node_is_killed() {
    let redis = redis().await;
    let (a, b, _dirs) = two_nodes(&redis).await;
    let (anna, mut anna_events) = connect(&a, "anna.jensen").await;
    let (marco, mut marco_events) = connect(&b, "marco.rossi").await;
    online(&mut anna_events, "marco.rossi").await;

    // Anna starts the call on node A; Marco's start on node B joins it.
    let started = anna.call_start(&trio()).await.unwrap();
    let joined = marco.call_start(&trio()).await.unwrap();
    let call = started.call.id.clone();
    assert_eq!(joined.call.id, call, "one call per room across nodes");
    assert_eq!(people(&joined.call), ["anna.jensen", "marco.rossi"]);
    assert_ne!(
        joined.session, started.session,
        "session ids in a call never collide"
    );
    // Both see the call with both in it, Anna first (she offers to no one).
    let seen = call_state(&mut anna_events, |s| s.participants.len() == 2).await;
    assert_eq!(seen.participants[0].session, started.session);
    assert_eq!(seen.participants[1].session, joined.session);
    assert!(seen.participants.iter().all(|p| p.connected));
    call_state(&mut marco_events, |s| s.participants.len() == 2).await;

    // Signals go both ways between the nodes.
    marco
        .call_signal(&call, &started.session, offer("v=0\r\nfrom marco\r\n"))
        .await
        .unwrap();
    let from_marco = wait_for(&mut anna_events, |e| {
        matches!(e, ClientEvent::CallSignal { .. })
    })
    .await;
    let ClientEvent::CallSignal {
        from,
        person: sender,
        signal,
        ..
    } = from_marco
    else {
        unreachable!()
    };
    assert_eq!(
        (from, sender.as_str()),
        (joined.session.clone(), "marco.rossi")
    );
    assert_eq!(signal, offer("v=0\r\nfrom marco\r\n"));
    let answer = Signal::Answer {
        sdp: "v=0\r\nfrom anna\r\n".into(),
    };
    anna.call_signal(&call, &joined.session, answer.clone())
        .await
        .unwrap();
    let from_anna = wait_for(&mut marco_events, |e| {
        matches!(e, ClientEvent::CallSignal { .. })
    })
    .await;
    assert!(
        matches!(from_anna, ClientEvent::CallSignal { from, signal, .. }
            if from == started.session && signal == answer)
    );
    // Media flags and fresh ICE servers through the node holding the call.
    marco.call_media(&call, false, true).await.unwrap();
    call_state(&mut anna_events, |s| {
        s.change
            .as_ref()
            .is_some_and(|c| c.kind == CallChangeKind::Media)
            && s.participants.iter().any(|p| !p.mic)
    })
    .await;
    assert_eq!(marco.ice_servers(&call).await.unwrap().call, call);

    // Rhian, connecting to node B after the call started, finds it in her welcome.
    let (rhian, _rhian_events) = connect(&b, "rhian.evans").await;
    let welcome = rhian.welcome();
    let room = welcome.rooms.iter().find(|r| r.id == trio()).unwrap();
    let described = room.call.as_ref().expect("the call in the welcome");
    assert_eq!(described.id, call);

    // Marco leaves on node B: Anna on node A sees it; he comes back.
    marco.call_leave(&call).await.unwrap();
    let left = call_state(&mut anna_events, |s| {
        s.change
            .as_ref()
            .is_some_and(|c| c.kind == CallChangeKind::Left)
    })
    .await;
    assert_eq!(people(&left), ["anna.jensen"]);
    let again = marco.call_join(&call, false).await.unwrap();
    assert_eq!(people(&again.call), ["anna.jensen", "marco.rossi"]);

    // Node A, which holds the call, is killed: Marco learns the call ended.
    a.kill().await;
    let ended = wait_for(&mut marco_events, |e| {
        matches!(e, ClientEvent::CallEnded { .. })
    })
    .await;
    assert!(
        matches!(&ended, ClientEvent::CallEnded { call: c, reason: CallEndReason::ServerLost, ended_by: None, .. } if *c == call),
        "{ended:?}"
    );
    // The room is free again: a new call starts on node B.
    let restarted = marco.call_start(&trio()).await.unwrap();
    assert_ne!(restarted.call.id, call);
    assert_eq!(restarted.call.started_by, person("marco.rossi"));
    assert_eq!(people(&restarted.call), ["marco.rossi"]);
}

#[tokio::test]
async fn a_session_lost_on_one_node_gets_the_grace_period_on_the_other() {
    let redis = redis().await;
    let (a, b, _dirs) = two_nodes(&redis).await;
    let (anna, mut anna_events) = connect(&a, "anna.jensen").await;
    let (marco, _marco_events) = connect(&b, "marco.rossi").await;
    online(&mut anna_events, "marco.rossi").await;
    let started = anna.call_start(&trio()).await.unwrap();
    let call = started.call.id.clone();
    marco.call_join(&call, false).await.unwrap();

    // Marco's connection to node B drops: on node A he is reconnecting, not gone.
    marco.close().await;
    let lost = call_state(&mut anna_events, |s| {
        s.change
            .as_ref()
            .is_some_and(|c| c.kind == CallChangeKind::Reconnecting)
    })
    .await;
    assert_eq!(people(&lost), ["anna.jensen", "marco.rossi"]);
    assert!(!lost.participants[1].connected);

    // He comes back on node B and resumes his place.
    let (marco, _marco_events) = connect(&b, "marco.rossi").await;
    let resumed = marco.call_join(&call, true).await.unwrap();
    assert_eq!(resumed.call.participants[1].person, person("marco.rossi"));
    assert!(resumed.call.participants[1].connected);
    call_state(&mut anna_events, |s| {
        s.change
            .as_ref()
            .is_some_and(|c| c.kind == CallChangeKind::Rejoined)
    })
    .await;
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_agents_on_two_nodes_connect_with_webrtc() {
    let redis = redis().await;
    let (a, b, _dirs) = two_nodes(&redis).await;
    let settings = |node: &Node, who: &str| {
        let mut settings = AgentSettings::new(node.url(), token(who), trio());
        settings.network = NetworkSettings {
            relay_only: false,
            loopback: true,
        };
        settings
    };
    let anna = CallAgent::start(settings(&a, "anna.jensen")).await.unwrap();
    let marco = CallAgent::start(settings(&b, "marco.rossi")).await.unwrap();
    assert_eq!(marco.status().call.unwrap().participants.len(), 2);

    let patience = Duration::from_secs(30);
    for agent in [&anna, &marco] {
        agent
            .wait_for(
                "a peer connection across nodes",
                patience,
                |s: &AgentStatus| s.peers.len() == 1 && s.full_mesh(2),
            )
            .await
            .unwrap();
    }
    // The later joiner, on node B, made the offer.
    assert!(marco.status().peers.values().all(|p| p.offerer));
    marco.leave().await;
    anna.wait_for("Marco gone", patience, |s: &AgentStatus| s.peers.is_empty())
        .await
        .unwrap();
    anna.leave().await;
}

#[tokio::test]
async fn a_call_left_by_a_killed_node_does_not_hold_its_room() {
    let redis = redis().await;
    Node::import_into(&redis.url).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Node::start_on(&redis.url, dirs[0].path()).await;
    let (anna, _anna_events) = connect(&a, "anna.jensen").await;
    let old = anna.call_start(&trio()).await.unwrap().call.id;
    a.kill().await;

    // A node started afterwards never heard of the killed one; the room's call is free.
    let b = Node::start_on(&redis.url, dirs[1].path()).await;
    let (marco, _marco_events) = connect(&b, "marco.rossi").await;
    let started = marco.call_start(&trio()).await.unwrap();
    assert_ne!(started.call.id, old);
    assert_eq!(people(&started.call), ["marco.rossi"]);
    drop(b);
}

#[tokio::test]
async fn a_call_request_waiting_for_a_frozen_node_holds_up_no_message() {
    let redis = redis().await;
    let (a, b, _dirs) = two_nodes(&redis).await;
    let (anna, mut anna_events) = connect(&a, "anna.jensen").await;
    let (marco, mut marco_events) = connect(&b, "marco.rossi").await;
    online(&mut anna_events, "marco.rossi").await;
    // Node A holds the call, and node B knows it.
    anna.call_start(&trio()).await.unwrap();
    call_state(&mut marco_events, |s| s.participants.len() == 1).await;
    a.freeze().await;

    // Marco's start is forwarded to node A, which does not answer; his message, sent
    // after it, is stored and acknowledged first, while the start waits.
    let room = trio();
    let joining = marco.call_start(&room);
    tokio::pin!(joining);
    tokio::select! {
        biased;
        joined = &mut joining => panic!("the call request was answered first: {joined:?}"),
        ack = marco.send(&room, "sent while a call request waits") => {
            ack.unwrap();
        }
    }
    // It is answered once node A is taken for lost (a call of Marco's own, then).
    let _ = joining.await;
    a.thaw().await;
}
