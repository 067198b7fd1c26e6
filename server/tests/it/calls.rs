//! Calls over the raw protocol: who may join, who may signal whom, the signal limits, lost
//! connections (resumed or removed after the grace period), media flags and ending a call.

use std::time::{Duration, Instant};

use triad_protocol::{
    CallChangeKind, CallEndReason, CallId, CallState, ErrorCode, Request, ServerMessage, SessionId,
    Signal, limits,
};

use crate::harness::{Raw, TestServer, assert_error, room};

/// Starts (or joins) the call of `room_id`; returns the call and this session.
async fn start(raw: &mut Raw, room_id: &str) -> (CallState, SessionId) {
    match raw
        .call(Request::CallStart {
            room: room(room_id),
        })
        .await
    {
        ServerMessage::CallJoined { call, session, .. } => (call, session),
        other => panic!("expected call_joined, got {other:?}"),
    }
}

async fn join(raw: &mut Raw, call: &CallId, resume: bool) -> (CallState, SessionId) {
    let request = Request::CallJoin {
        call: call.clone(),
        resume,
    };
    match raw.call(request).await {
        ServerMessage::CallJoined { call, session, .. } => (call, session),
        other => panic!("expected call_joined, got {other:?}"),
    }
}

fn offer(sdp: &str) -> Signal {
    Signal::Offer {
        sdp: sdp.into(),
        ice_restart: false,
    }
}

fn candidate(n: u32) -> Signal {
    Signal::Candidate {
        candidate: format!(
            "candidate:{n} 1 udp 2130706431 127.0.0.1 {} typ host",
            40000 + n
        ),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

async fn signal(raw: &mut Raw, call: &CallId, to: &SessionId, signal: Signal) -> ServerMessage {
    let request = Request::CallSignal {
        call: call.clone(),
        to: to.clone(),
        signal,
    };
    raw.call(request).await
}

/// Reads frames up to the answer of a ping; returns the call signals among them.
async fn signals_until_pong(raw: &mut Raw) -> Vec<Signal> {
    let id = raw.request(Request::Ping).await;
    let mut signals = Vec::new();
    loop {
        let frame = raw.frame().await;
        if frame.re == Some(id) {
            return signals;
        }
        if let ServerMessage::CallSignal { signal, .. } = frame.message {
            signals.push(signal);
        }
    }
}

/// Reads frames until a call state that `done` accepts; returns it.
async fn state_where(raw: &mut Raw, done: impl Fn(&CallState) -> bool) -> CallState {
    loop {
        if let ServerMessage::CallState { call } = raw.frame().await.message
            && done(&call)
        {
            return call;
        }
    }
}

#[tokio::test]
async fn signals_reach_only_participants_of_the_same_call() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (mut rhian, rhian_welcome) = server.signed_in("rhian.evans").await;
    let (mut lars, lars_welcome) = server.signed_in("lars.nielsen").await;
    let (call, anna_session) = start(&mut anna, "trio-1").await;
    let (_, marco_session) = join(&mut marco, &call.id, false).await;
    let call = call.id;

    // Between participants of the call: relayed, with who sent it.
    let answer = signal(&mut anna, &call, &marco_session, offer("v=0\r\n")).await;
    assert_eq!(answer, ServerMessage::Ok);
    loop {
        if let ServerMessage::CallSignal {
            call: c,
            from,
            person,
            signal,
        } = marco.frame().await.message
        {
            assert_eq!(
                (c, from, person.as_str()),
                (call.clone(), anna_session.clone(), "anna.jensen")
            );
            assert_eq!(signal, offer("v=0\r\n"));
            break;
        }
    }

    // To a session outside the call, in the room or not, or to no session at all.
    for to in [
        rhian_welcome.session.clone(),
        lars_welcome.session.clone(),
        SessionId("s999999".into()),
    ] {
        let refused = signal(&mut anna, &call, &to, offer("v=0\r\n")).await;
        assert_error(&refused, ErrorCode::NotInCall);
    }
    let to_self = signal(&mut anna, &call, &anna_session, offer("v=0\r\n")).await;
    assert_error(&to_self, ErrorCode::InvalidRequest);
    // From sessions outside the call: a member of the room, a person of another room.
    let refused = signal(&mut rhian, &call, &anna_session, offer("v=0\r\n")).await;
    assert_error(&refused, ErrorCode::NotInCall);
    let refused = signal(&mut lars, &call, &anna_session, offer("v=0\r\n")).await;
    assert_error(&refused, ErrorCode::NotInCall);
    // A call that does not exist.
    let nowhere = CallId("c-nowhere".into());
    let refused = signal(&mut anna, &nowhere, &marco_session, offer("v=0\r\n")).await;
    assert_error(&refused, ErrorCode::NoCall);

    // None of those reached anyone.
    for raw in [&mut anna, &mut marco, &mut rhian, &mut lars] {
        assert_eq!(signals_until_pong(raw).await, []);
    }
}

#[tokio::test]
async fn joining_a_call_needs_the_room() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    let call = call.id;

    // A head of another trio.
    let (mut lars, _) = server.signed_in("lars.nielsen").await;
    let refused = lars
        .call(Request::CallJoin {
            call: call.clone(),
            resume: false,
        })
        .await;
    assert_error(&refused, ErrorCode::NotAMember);
    let refused = lars
        .call(Request::CallStart {
            room: room("trio-1"),
        })
        .await;
    assert_error(&refused, ErrorCode::NotAMember);

    // A moderator of the trio, before and after entering the room.
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    let join_call = Request::CallJoin {
        call: call.clone(),
        resume: false,
    };
    assert_error(&sara.call(join_call.clone()).await, ErrorCode::JoinRequired);
    assert!(matches!(
        sara.call(Request::Join {
            room: room("trio-1")
        })
        .await,
        ServerMessage::Joined { .. }
    ));
    assert!(matches!(
        sara.call(join_call).await,
        ServerMessage::CallJoined { .. }
    ));
    // The members are told that the moderator joined the call.
    let seen = state_where(&mut anna, |c| {
        c.change.as_ref().is_some_and(|change| {
            change.kind == CallChangeKind::Joined && change.person.as_str() == "sara.moderator"
        })
    })
    .await;
    assert_eq!(seen.participants.len(), 2);

    // One call per session.
    let elsewhere = anna
        .call(Request::CallStart {
            room: room("commons"),
        })
        .await;
    assert_error(&elsewhere, ErrorCode::AlreadyInCall);
}

#[tokio::test]
async fn oversized_signals_are_refused() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    let (_, marco_session) = join(&mut marco, &call.id, false).await;
    let call = call.id;

    let largest = format!("v=0\r\n{}", "a".repeat(limits::MAX_SDP_BYTES - 5));
    assert_eq!(largest.len(), limits::MAX_SDP_BYTES);
    let fits = signal(&mut anna, &call, &marco_session, offer(&largest)).await;
    assert_eq!(fits, ServerMessage::Ok);
    let over = format!("{largest}a");
    let refused = signal(&mut anna, &call, &marco_session, offer(&over)).await;
    assert_error(&refused, ErrorCode::SignalTooLarge);
    let answer = Signal::Answer { sdp: over };
    let refused = signal(&mut anna, &call, &marco_session, answer).await;
    assert_error(&refused, ErrorCode::SignalTooLarge);
    let long = Signal::Candidate {
        candidate: "c".repeat(limits::MAX_CANDIDATE_BYTES + 1),
        sdp_mid: None,
        sdp_mline_index: None,
    };
    let refused = signal(&mut anna, &call, &marco_session, long).await;
    assert_error(&refused, ErrorCode::SignalTooLarge);

    assert_eq!(signals_until_pong(&mut marco).await, [offer(&largest)]);
}

#[tokio::test]
async fn a_flood_of_candidates_is_rate_limited() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    let (_, marco_session) = join(&mut marco, &call.id, false).await;

    let started = Instant::now();
    let flood = 300u32;
    let mut ids = Vec::new();
    for n in 0..flood {
        let request = Request::CallSignal {
            call: call.id.clone(),
            to: marco_session.clone(),
            signal: candidate(n),
        };
        ids.push(anna.request(request).await);
    }
    let (mut relayed, mut limited) = (0u32, 0u32);
    for id in ids {
        match anna.answer(id).await {
            ServerMessage::Ok => relayed += 1,
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed =
        f64::from(limits::SIGNAL_BURST) + elapsed * f64::from(limits::SIGNAL_RATE_PER_SECOND) + 1.0;
    assert!(relayed >= limits::SIGNAL_BURST, "{relayed} relayed");
    assert!(
        f64::from(relayed) <= allowed,
        "{relayed} relayed in {elapsed:.2}s"
    );
    assert!(limited > 0);
    assert_eq!(relayed + limited, flood);
    // Exactly the relayed ones arrived.
    let arrived = signals_until_pong(&mut marco).await.len();
    assert_eq!(arrived, usize::try_from(relayed).unwrap());
}

#[tokio::test]
async fn a_lost_participant_who_resumes_keeps_its_place() {
    let server = TestServer::start_with(|c| c.call_grace = Duration::from_secs(10)).await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    let (joined, old_session) = join(&mut marco, &call.id, false).await;
    let joined_at = joined.participants[1].joined_at;

    drop(marco);
    let lost = state_where(&mut anna, |c| {
        c.change
            .as_ref()
            .is_some_and(|ch| ch.kind == CallChangeKind::Reconnecting)
    })
    .await;
    assert_eq!(lost.participants.len(), 2);
    assert!(!lost.participants[1].connected);
    assert_eq!(lost.participants[1].session, old_session);
    // Signals to a participant who is reconnecting are not delivered.
    let refused = signal(&mut anna, &call.id, &old_session, offer("v=0\r\n")).await;
    assert_error(&refused, ErrorCode::NotInCall);

    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (back, new_session) = join(&mut marco, &call.id, true).await;
    assert_ne!(new_session, old_session);
    assert_eq!(back.participants[1].session, new_session);
    assert_eq!(back.participants[1].joined_at, joined_at);
    let seen = state_where(&mut anna, |c| {
        c.change
            .as_ref()
            .is_some_and(|ch| ch.kind == CallChangeKind::Rejoined)
    })
    .await;
    assert_eq!(seen.participants, back.participants);
    let answer = signal(&mut anna, &call.id, &new_session, offer("v=0\r\n")).await;
    assert_eq!(answer, ServerMessage::Ok);
}

#[tokio::test]
async fn a_lost_participant_who_does_not_come_back_is_removed() {
    let grace = Duration::from_millis(300);
    let server = TestServer::start_with(|c| c.call_grace = grace).await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    join(&mut marco, &call.id, false).await;

    drop(marco);
    let lost_at = Instant::now();
    let removed = state_where(&mut anna, |c| {
        c.change
            .as_ref()
            .is_some_and(|ch| ch.kind == CallChangeKind::Removed)
    })
    .await;
    assert!(lost_at.elapsed() >= grace - Duration::from_millis(50));
    assert_eq!(removed.participants.len(), 1);
    assert_eq!(removed.participants[0].person.as_str(), "anna.jensen");
}

#[tokio::test]
async fn media_flags_and_ending_a_call() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    let (mut rhian, _) = server.signed_in("rhian.evans").await;
    let (call, _) = start(&mut anna, "trio-1").await;
    join(&mut marco, &call.id, false).await;
    let call = call.id;

    let media = Request::CallMedia {
        call: call.clone(),
        mic: false,
        camera: true,
    };
    assert_eq!(marco.call(media).await, ServerMessage::Ok);
    let seen = state_where(&mut anna, |c| {
        c.change
            .as_ref()
            .is_some_and(|ch| ch.kind == CallChangeKind::Media)
    })
    .await;
    assert!(!seen.participants[1].mic && seen.participants[1].camera);

    // Only whoever started it (or a moderator) ends a call.
    let end = Request::CallEnd { call: call.clone() };
    assert_error(&marco.call(end.clone()).await, ErrorCode::Forbidden);
    assert_eq!(anna.call(end).await, ServerMessage::Ok);
    // Everyone in the room is told, in the call or not.
    for raw in [&mut marco, &mut rhian] {
        loop {
            if let ServerMessage::CallEnded {
                call: c,
                reason,
                ended_by,
                ..
            } = raw.frame().await.message
            {
                assert_eq!(c, call);
                assert_eq!(reason, CallEndReason::Ended);
                assert_eq!(ended_by.unwrap().as_str(), "anna.jensen");
                break;
            }
        }
    }
    let gone = marco
        .call(Request::CallJoin {
            call: call.clone(),
            resume: false,
        })
        .await;
    assert_error(&gone, ErrorCode::NoCall);
    let gone = anna.call(Request::IceServers { call }).await;
    assert_error(&gone, ErrorCode::NoCall);
}

#[tokio::test]
async fn the_welcome_and_joined_carry_the_call_in_progress() {
    let server = TestServer::start().await;
    let (_, welcome) = server.signed_in("marco.rossi").await;
    let trio = |rooms: &[triad_protocol::RoomInfo]| {
        rooms
            .iter()
            .find(|r| r.id.as_str() == "trio-1")
            .cloned()
            .expect("trio-1 in the welcome")
    };
    assert_eq!(trio(&welcome.rooms).call, None, "no call yet");

    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (call, _) = start(&mut anna, "trio-1").await;

    // A page that opens now sees the call, as call_state shows it.
    let (_, welcome) = server.signed_in("rhian.evans").await;
    let seen = trio(&welcome.rooms).call.expect("the call in the welcome");
    assert_eq!(seen.id, call.id);
    assert_eq!(seen.participants, call.participants);
    assert_eq!(seen.change, None);

    // A moderator entering the room sees it in `joined`.
    let (mut sara, _) = server.signed_in("sara.moderator").await;
    match sara
        .call(Request::Join {
            room: room("trio-1"),
        })
        .await
    {
        ServerMessage::Joined { room, .. } => {
            assert_eq!(room.call.map(|c| c.id), Some(call.id.clone()));
        }
        other => panic!("expected joined, got {other:?}"),
    }

    // Once it ends, it is gone.
    assert_eq!(
        anna.call(Request::CallLeave {
            call: call.id.clone()
        })
        .await,
        ServerMessage::Ok
    );
    let (_, welcome) = server.signed_in("rhian.evans").await;
    assert_eq!(trio(&welcome.rooms).call, None, "no call after it ended");
}
