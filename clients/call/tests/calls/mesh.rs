//! Full-mesh calls on loopback: forming the mesh, a moderator joining, leaving, a dropped
//! connection that comes back within the grace period, one that does not, records, and
//! credential refresh.

use std::time::{Duration, Instant};

use triad_call::{AgentStatus, CallAgent};
use triad_protocol::{CallChangeKind, ErrorCode, PersonId};

use crate::harness::{PATIENCE, TestServer, person};

const TRIO: [&str; 3] = ["anna.jensen", "marco.rossi", "rhian.evans"];
const MODERATOR: &str = "sara.moderator";

fn people(names: &[&str]) -> Vec<PersonId> {
    let mut people: Vec<_> = names.iter().map(|n| person(n)).collect();
    people.sort();
    people
}

fn sorted(mut list: Vec<PersonId>) -> Vec<PersonId> {
    list.sort();
    list
}

/// Waits until every agent sees exactly `names` in the call, connected to each other with
/// data going both ways.
async fn wait_mesh(agents: &[&CallAgent], names: &[&str]) {
    let expected = people(names);
    for agent in agents {
        let what = format!("a full mesh of {names:?}");
        agent
            .wait_for(&what, PATIENCE, |s: &AgentStatus| {
                sorted(s.participants()) == expected
                    && s.peers.len() == names.len() - 1
                    && s.full_mesh(2)
            })
            .await
            .unwrap();
    }
}

async fn trio(server: &TestServer) -> Vec<CallAgent> {
    let mut agents = Vec::new();
    for name in TRIO {
        agents.push(server.agent(name, "trio-1").await);
    }
    agents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trio_and_its_moderator_form_a_full_mesh_and_leaving_is_seen() {
    let started = Instant::now();
    let server = TestServer::start_with(|_| {}).await;
    let agents = trio(&server).await;
    let refs: Vec<&CallAgent> = agents.iter().collect();
    wait_mesh(&refs, &TRIO).await;
    // The later joiner offers: Rhian to both, Marco to Anna.
    let rhian = agents[2].status();
    assert!(rhian.peers.values().all(|p| p.offerer));
    assert!(agents[0].status().peers.values().all(|p| !p.offerer));

    // A moderator who has not entered the room cannot join its call.
    let refused = CallAgent::start(server.settings(MODERATOR, "trio-1")).await;
    match refused {
        Err(triad_call::AgentError::Client(err)) => {
            assert_eq!(err.code(), Some(ErrorCode::JoinRequired), "{err}");
        }
        Err(other) => panic!("expected join_required, got {other}"),
        Ok(_) => panic!("a moderator joined a call of a room they had not entered"),
    }
    let mut settings = server.settings(MODERATOR, "trio-1");
    settings.join_room = true;
    let sara = CallAgent::start(settings).await.unwrap();
    let all = [TRIO[0], TRIO[1], TRIO[2], MODERATOR];
    let mut refs: Vec<&CallAgent> = agents.iter().collect();
    refs.push(&sara);
    wait_mesh(&refs, &all).await;
    // The members were told who joined.
    for agent in &agents {
        let seen = agent.status();
        assert!(seen.peers.contains_key(&person(MODERATOR)));
    }

    // Rhian leaves: the others see the call without her and close their connections.
    let mut agents = agents;
    let rhian = agents.pop().unwrap();
    rhian.leave().await;
    let rest = [TRIO[0], TRIO[1], MODERATOR];
    for agent in agents.iter().chain([&sara]) {
        agent
            .wait_for("the call without Rhian", PATIENCE, |s| {
                sorted(s.participants()) == people(&rest) && !s.peers.contains_key(&person(TRIO[2]))
            })
            .await
            .unwrap();
        let status = agent.status();
        assert_eq!(status.departures, [person(TRIO[2])]);
        let change = status.call.and_then(|c| c.change).unwrap();
        assert_eq!(change.kind, CallChangeKind::Left);
    }

    // Everyone leaves; the last one out ends the call, and the records show it.
    sara.leave().await;
    let last = agents.pop().unwrap();
    agents.pop().unwrap().leave().await;
    last.leave().await;
    let records = server.stop_and_read_calls("trio-1").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.started_by, person(TRIO[0]));
    let ended = record.ended_at.expect("the call ended");
    let attended: Vec<_> = record.attendance.iter().map(|a| a.person.clone()).collect();
    assert_eq!(sorted(attended), people(&all));
    for stretch in &record.attendance {
        let left = stretch.left_at.expect("everyone's time closed");
        assert!(
            stretch.joined_at >= record.started_at && left <= ended && stretch.joined_at <= left
        );
    }
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_that_comes_back_in_time_keeps_its_place() {
    let server = TestServer::start_with(|c| c.call_grace = Duration::from_secs(15)).await;
    let agents = trio(&server).await;
    let refs: Vec<&CallAgent> = agents.iter().collect();
    wait_mesh(&refs, &TRIO).await;
    let marco = &agents[1];
    let old_session = marco.status().session;
    let his: Vec<u64> = marco
        .status()
        .peers
        .values()
        .map(|p| p.round_trips)
        .collect();
    let before: Vec<u64> = [&agents[0], &agents[2]]
        .iter()
        .map(|a| a.status().peers[&person(TRIO[1])].round_trips)
        .collect();

    marco.client().drop_connection();
    let back = marco
        .wait_for("Marco back in the call", PATIENCE, |s| {
            s.rejoins == 1 && s.session != old_session
        })
        .await
        .unwrap();
    let new_session = back.session.clone();
    for (agent, before) in [&agents[0], &agents[2]].into_iter().zip(before) {
        let seen = agent
            .wait_for(
                "Marco at his new session, still exchanging data",
                PATIENCE,
                |s| {
                    s.call.as_ref().is_some_and(|c| {
                        c.participants
                            .iter()
                            .any(|p| p.session == new_session && p.connected)
                    }) && s.peers[&person(TRIO[1])].round_trips >= before + 3
                },
            )
            .await
            .unwrap();
        // Never seen leaving, same place (second), same connection.
        assert!(seen.departures.is_empty(), "{:?}", seen.departures);
        let call = seen.call.unwrap();
        assert_eq!(call.participants[1].person, person(TRIO[1]));
        assert_eq!(seen.peers.len(), 2);
    }
    // Marco's own connections went on through the reconnect.
    let most = his.into_iter().max().unwrap_or(0);
    let status = marco
        .wait_for("Marco still exchanging data", PATIENCE, |s| {
            s.full_mesh(most + 3)
        })
        .await
        .unwrap();
    assert!(status.departures.is_empty(), "{:?}", status.departures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_participant_who_does_not_come_back_is_removed() {
    let grace = Duration::from_millis(1500);
    let server = TestServer::start_with(|c| c.call_grace = grace).await;
    let anna = server.agent(TRIO[0], "trio-1").await;
    let marco = server.agent(TRIO[1], "trio-1").await;
    wait_mesh(&[&anna, &marco], &TRIO[..2]).await;

    let lost_at = Instant::now();
    marco.client().set_online(false);
    anna.wait_for("Marco reconnecting", PATIENCE, |s| {
        s.call.as_ref().is_some_and(|c| {
            c.participants
                .iter()
                .any(|p| p.person == person(TRIO[1]) && !p.connected)
        })
    })
    .await
    .unwrap();
    let status = anna
        .wait_for("Marco removed", PATIENCE, |s| {
            s.participants() == [person(TRIO[0])]
        })
        .await
        .unwrap();
    assert!(lost_at.elapsed() >= grace);
    assert_eq!(status.departures, [person(TRIO[1])]);
    let change = status.call.unwrap().change.unwrap();
    assert_eq!(change.kind, CallChangeKind::Removed);
    assert!(status.peers.is_empty());

    // Anna leaves: the call ends, for anyone who was watching the room.
    anna.leave().await;
    marco.abandon().await;
    let records = server.stop_and_read_calls("trio-1").await;
    let record = &records[0];
    let marco_time = record
        .attendance
        .iter()
        .find(|a| a.person == person(TRIO[1]))
        .unwrap();
    // His time ended when his connection was lost, not when the grace period ran out
    // (Anna left after his removal, so at least the grace period later).
    let left = marco_time.left_at.unwrap();
    let ended = record.ended_at.unwrap();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap();
    assert!(ended - left >= grace_ms, "left {left}, call ended {ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_are_refreshed_before_they_expire() {
    let server = TestServer::start_with(|c| {
        c.ice_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        c.turn_secret = Some("refresh-secret".into());
        c.turn_ttl = Duration::from_millis(1500);
    })
    .await;
    let anna = server.agent(TRIO[0], "trio-1").await;
    anna.wait_for("two refreshes", Duration::from_secs(10), |s| {
        s.ice_refreshes >= 2
    })
    .await
    .unwrap();
    // Asking works too, and gives credentials that expire later than the first ones.
    let call = anna.status().call.unwrap().id;
    let fresh = anna.client().ice_servers(&call).await.unwrap();
    let username = fresh.servers[0].username.clone().unwrap();
    let expiry: i64 = username.split(':').next().unwrap().parse().unwrap();
    assert_eq!(expiry, fresh.expires_at / 1000);
    assert!(username.ends_with(":anna.jensen"));
    anna.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_is_relayed_and_the_connection_goes_on() {
    let server = TestServer::start_with(|_| {}).await;
    let anna = server.agent(TRIO[0], "trio-1").await;
    let marco = server.agent(TRIO[1], "trio-1").await;
    wait_mesh(&[&anna, &marco], &TRIO[..2]).await;
    let before = anna.status().peers[&person(TRIO[1])].round_trips;
    // Marco joined later, so he offers: his restart offer goes through the server.
    marco.restart_ice().await.unwrap();
    for agent in [&anna, &marco] {
        agent
            .wait_for("data after the ICE restart", PATIENCE, |s| {
                s.full_mesh(before + 4)
            })
            .await
            .unwrap();
    }
    for agent in [&anna, &marco] {
        assert!(agent.status().peers.values().all(|p| p.error.is_none()));
    }
    anna.leave().await;
    marco.leave().await;
}
