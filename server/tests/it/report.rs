//! Cycle reports over HTTP: a trio's sessions with attendance from call records, messages
//! per member and pinned key learning, as Markdown, HTML and CSV; who may read them.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Days, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triad_protocol::{
    CallId, CoachingId, CoachingSession, CoachingStatus, PersonId, Request, RoomId, ServerMessage,
    Timestamp,
};
use triad_server::programme::Cycle;
use triad_server::store::docs::Docs;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::{Attendance, CallRecord, Collection, Store};

use crate::harness::{TestServer, room};

const MIN: Timestamp = 60_000;

/// An HTTP answer: status, headers (lower case) and body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

async fn get(addr: SocketAddr, path: &str, token: &str) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("headers and body");
    Answer {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn person(id: &str) -> PersonId {
    PersonId::new(id).unwrap()
}

fn session(id: &str, start: Timestamp, status: CoachingStatus) -> CoachingSession {
    CoachingSession {
        id: CoachingId::new(id).unwrap(),
        room: room("trio-1"),
        title: format!("Session {id}"),
        agenda: String::new(),
        start,
        duration_min: 60,
        time_zone: "Europe/Rome".into(),
        status,
        sequence: 0,
        booked_by: person("sara.moderator"),
        updated_at: start - 7 * 24 * 60 * MIN,
    }
}

fn stretch(who: &str, joined: Timestamp, left: Timestamp) -> Attendance {
    Attendance {
        person: person(who),
        joined_at: joined,
        left_at: Some(left),
    }
}

/// A cycle around today, three coaching sessions of trio 1 (one held three hours ago, one
/// cancelled, one to come), the held one's call, and a call a week earlier that belongs to
/// no session.
async fn seed(store: &EmbeddedStore, held: Timestamp) {
    let today = Utc::now().date_naive();
    let cycle = Cycle {
        id: "cycle-1".into(),
        name: "Cycle 1: Vejle".into(),
        starts: today.checked_sub_days(Days::new(60)).unwrap(),
        ends: today.checked_add_days(Days::new(60)).unwrap(),
        host_region: "vejle".into(),
    };
    Docs::new(store, Collection::Cycles)
        .put("cycle-1", &cycle)
        .await
        .unwrap();
    let sessions = vec![
        session(
            "cs-cancelled",
            held - 2 * 24 * 60 * MIN,
            CoachingStatus::Cancelled,
        ),
        session("cs-held", held, CoachingStatus::Scheduled),
        session(
            "cs-later",
            held + 2 * 24 * 60 * MIN,
            CoachingStatus::Scheduled,
        ),
    ];
    Docs::new(store, Collection::Coachings)
        .put("trio-1", &sessions)
        .await
        .unwrap();
    store
        .record_call(&CallRecord {
            call: CallId("call-held".into()),
            room: room("trio-1"),
            started_by: person("sara.moderator"),
            started_at: held - 5 * MIN,
            ended_at: Some(held + 58 * MIN),
            attendance: vec![
                stretch("sara.moderator", held - 5 * MIN, held + 58 * MIN),
                stretch("anna.jensen", held - 5 * MIN, held + 58 * MIN),
                stretch("marco.rossi", held, held + 20 * MIN),
                stretch("marco.rossi", held + 25 * MIN, held + 50 * MIN),
            ],
        })
        .await
        .unwrap();
    store
        .record_call(&CallRecord {
            call: CallId("call-earlier".into()),
            room: room("trio-1"),
            started_by: person("rhian.evans"),
            started_at: held - 7 * 24 * 60 * MIN,
            ended_at: Some(held - 7 * 24 * 60 * MIN + 30 * MIN),
            attendance: vec![stretch(
                "rhian.evans",
                held - 7 * 24 * 60 * MIN,
                held - 7 * 24 * 60 * MIN + 30 * MIN,
            )],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cycle_report_shows_attendance_messages_and_key_learning_in_three_formats() {
    let held = Utc::now().timestamp_millis() - 3 * 60 * MIN;
    let server =
        TestServer::start_seeded(async |store: &EmbeddedStore| seed(store, held).await).await;

    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (mut marco, _) = server.signed_in("marco.rossi").await;
    for (i, text) in [
        "Thursday works",
        "See you then",
        "Notes are in the shared folder",
    ]
    .iter()
    .enumerate()
    {
        assert!(matches!(
            anna.send("trio-1", &format!("a{i}"), text).await,
            ServerMessage::Ack(_)
        ));
    }
    assert!(matches!(
        marco.send("trio-1", "m0", "Thanks!").await,
        ServerMessage::Ack(_)
    ));
    let key = "Exit tickets <b>told</b> us more than the test & the survey";
    let seq = match marco.send("trio-1", "m1", key).await {
        ServerMessage::Ack(ack) => ack.seq,
        other => panic!("expected ack, got {other:?}"),
    };
    let pinned = anna
        .call(Request::Pin {
            room: RoomId::new("trio-1").unwrap(),
            seq,
        })
        .await;
    assert_eq!(pinned, ServerMessage::Ok);

    let coordinator = server.token("david.coordinator");
    let md = get(server.addr, "/api/reports/trio-1/cycle-1", &coordinator).await;
    assert_eq!(md.status, 200, "{}", md.body);
    assert!(
        md.headers
            .contains("content-type: text/markdown; charset=utf-8"),
        "{}",
        md.headers
    );
    let body = &md.body;
    assert!(
        body.starts_with("# Trio 1: Assessment for learning\n"),
        "{body}"
    );
    assert!(body.contains("| Anna Jensen | Rosenvang Skole |"), "{body}");
    assert!(body.contains("Moderators: Sara Lind"), "{body}");
    let held = body
        .lines()
        .find(|line| line.contains("| held |"))
        .unwrap_or_else(|| panic!("no held session:\n{body}"));
    // Who attended, when each joined (times vary with the clock), and for how long,
    // clipped to the session's window.
    let attended: Vec<String> = held
        .split("| held | ")
        .nth(1)
        .unwrap()
        .split(" | ")
        .next()
        .unwrap()
        .split("), ")
        .map(|part| {
            let (name, rest) = part.split_once(" (joined ").unwrap();
            let minutes = rest.split(", ").nth(1).unwrap().trim_end_matches(')');
            format!("{name}: {minutes}")
        })
        .collect();
    assert_eq!(
        attended,
        [
            "Anna Jensen: 63 min",
            "Sara Lind: 63 min",
            "Marco Rossi: 45 min"
        ],
        "attendance of the held session:\n{held}"
    );
    assert!(held.ends_with("| Rhian Evans |"), "{held}");
    assert!(body.contains("| Session cs-cancelled |"), "{body}");
    assert!(body.contains("| cancelled |"), "{body}");
    assert!(body.contains("| upcoming |"), "{body}");
    assert!(body.contains("| Anna Jensen | head | 3 |"), "{body}");
    assert!(body.contains("| Marco Rossi | head | 2 |"), "{body}");
    assert!(body.contains("| Rhian Evans | head | 0 |"), "{body}");
    assert!(body.contains("| Sara Lind | moderator | 0 |"), "{body}");
    assert!(body.contains("**Marco Rossi**"), "{body}");
    assert!(
        body.contains("> Exit tickets \\<b\\>told\\</b\\> us more than the test \\& the survey"),
        "{body}"
    );

    let html = get(
        server.addr,
        "/api/reports/trio-1/cycle-1?format=html",
        &coordinator,
    )
    .await;
    assert_eq!(html.status, 200, "{}", html.body);
    assert!(
        html.headers
            .contains("content-type: text/html; charset=utf-8"),
        "{}",
        html.headers
    );
    let body = &html.body;
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(body.trim_end().ends_with("</html>"), "{body}");
    assert!(body.contains("<bdi>Anna Jensen</bdi> (joined "), "{body}");
    assert!(
        body.contains(" UTC, 63 min), <bdi>Sara Lind</bdi> (joined "),
        "{body}"
    );
    assert!(body.contains(" UTC, 45 min)"), "{body}");
    assert!(
        body.contains("<td dir=\"auto\">Anna Jensen</td><td>head</td><td class=\"n\">3</td>"),
        "{body}"
    );
    assert!(
        body.contains(
            "Exit tickets &lt;b&gt;told&lt;/b&gt; us more than the test &amp; the survey"
        ),
        "{body}"
    );
    assert!(!body.contains("<b>told</b>"), "{body}");

    let csv = get(
        server.addr,
        "/api/reports/trio-1/cycle-1?format=csv",
        &coordinator,
    )
    .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.headers
            .contains("content-type: text/csv; charset=utf-8"),
        "{}",
        csv.headers
    );
    let lines: Vec<&str> = csv.body.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "row,session,session_title,session_start_utc,person,name,role,minutes,messages,joined_utc"
    );
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    let minutes: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r[0] == "attendance")
        .map(|r| (r[1], r[4], r[7]))
        .collect();
    assert_eq!(
        minutes,
        vec![
            ("cs-held", "anna.jensen", "63"),
            ("cs-held", "marco.rossi", "45"),
            ("cs-held", "rhian.evans", "0"),
            ("cs-held", "sara.moderator", "63"),
        ],
        "{}",
        csv.body
    );
    let messages: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r[0] == "messages")
        .map(|r| (r[4], r[8]))
        .collect();
    assert_eq!(
        messages,
        vec![
            ("anna.jensen", "3"),
            ("marco.rossi", "2"),
            ("rhian.evans", "0"),
            ("sara.moderator", "0"),
        ],
        "{}",
        csv.body
    );

    // The trio's moderator may read it too.
    let sara = get(
        server.addr,
        "/api/reports/trio-1/cycle-1?format=csv",
        &server.token("sara.moderator"),
    )
    .await;
    assert_eq!(sara.status, 200, "{}", sara.body);
}

#[tokio::test]
async fn a_moderator_who_has_not_joined_the_trio_gets_no_pinned_text() {
    let held = Utc::now().timestamp_millis() - 3 * 60 * MIN;
    let server =
        TestServer::start_seeded(async |store: &EmbeddedStore| seed(store, held).await).await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let key = "Our exit tickets showed what the survey missed";
    let seq = match anna.send("trio-1", "a0", key).await {
        ServerMessage::Ack(ack) => ack.seq,
        other => panic!("expected ack, got {other:?}"),
    };
    assert_eq!(
        anna.call(Request::Pin {
            room: room("trio-1"),
            seq
        })
        .await,
        ServerMessage::Ok
    );
    let sara = server.token("sara.moderator");

    // Not joined: the counts and attendance stay, the pinned text does not.
    for format in ["md", "html"] {
        let report = get(
            server.addr,
            &format!("/api/reports/trio-1/cycle-1?format={format}"),
            &sara,
        )
        .await;
        assert_eq!(report.status, 200, "{}", report.body);
        assert!(!report.body.contains(key), "{format}: {}", report.body);
        assert!(
            report
                .body
                .contains("Join the trio's room to see its key learning"),
            "{format}: {}",
            report.body
        );
        assert!(report.body.contains("1 pinned message"), "{}", report.body);
        assert!(report.body.contains("Anna Jensen"), "{}", report.body);
    }
    let md = get(server.addr, "/api/reports/trio-1/cycle-1", &sara).await;
    assert!(
        md.body.contains("| Anna Jensen | head | 1 |"),
        "{}",
        md.body
    );

    // Once she has joined the room, she reads it, and the report quotes it.
    let (mut moderator, _) = server.signed_in("sara.moderator").await;
    assert!(matches!(
        moderator
            .call(Request::Join {
                room: room("trio-1")
            })
            .await,
        ServerMessage::Joined { .. } | ServerMessage::Ok
    ));
    let joined = get(server.addr, "/api/reports/trio-1/cycle-1", &sara).await;
    assert!(joined.body.contains(key), "{}", joined.body);
    // The coordinator always gets the whole report.
    let whole = get(
        server.addr,
        "/api/reports/trio-1/cycle-1",
        &server.token("david.coordinator"),
    )
    .await;
    assert!(whole.body.contains(key), "{}", whole.body);
}

#[tokio::test]
async fn reports_are_sandboxed_and_downloads_say_so() {
    let held = Utc::now().timestamp_millis() - 3 * 60 * MIN;
    let server =
        TestServer::start_seeded(async |store: &EmbeddedStore| seed(store, held).await).await;
    let coordinator = server.token("david.coordinator");
    for (format, disposition) in [
        (
            "html",
            "content-disposition: inline; filename=\"report-trio-1-cycle-1.html\"",
        ),
        (
            "md",
            "content-disposition: attachment; filename=\"report-trio-1-cycle-1.md\"",
        ),
        (
            "csv",
            "content-disposition: attachment; filename=\"report-trio-1-cycle-1.csv\"",
        ),
    ] {
        let report = get(
            server.addr,
            &format!("/api/reports/trio-1/cycle-1?format={format}"),
            &coordinator,
        )
        .await;
        assert_eq!(report.status, 200, "{}", report.body);
        let headers = &report.headers;
        assert!(headers.contains(disposition), "{format}: {headers}");
        assert!(
            headers.contains("x-content-type-options: nosniff"),
            "{format}: {headers}"
        );
        let policy = headers
            .lines()
            .find_map(|l| l.strip_prefix("content-security-policy: "))
            .unwrap_or_else(|| panic!("{format}: no policy in {headers}"));
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(policy.contains("style-src 'unsafe-inline'"), "{policy}");
        assert!(policy.contains("sandbox"), "{policy}");
        assert!(!policy.contains("script-src"), "{policy}");
    }
}

#[tokio::test]
async fn reports_are_for_the_coordinator_and_the_trios_moderators_only() {
    let held = Utc::now().timestamp_millis() - 3 * 60 * MIN;
    let server =
        TestServer::start_seeded(async |store: &EmbeddedStore| seed(store, held).await).await;
    let coordinator = server.token("david.coordinator");

    let head = get(
        server.addr,
        "/api/reports/trio-1/cycle-1",
        &server.token("anna.jensen"),
    )
    .await;
    assert_eq!(head.status, 403, "{}", head.body);
    assert!(
        head.body.contains("\"code\":\"forbidden\""),
        "{}",
        head.body
    );

    for path in [
        "/api/reports/trio-9/cycle-1",
        "/api/reports/trio-1/cycle-9",
        "/api/reports/commons/cycle-1",
        "/api/reports/Not%20A%20Room/cycle-1",
    ] {
        let missing = get(server.addr, path, &coordinator).await;
        assert_eq!(missing.status, 404, "{path}: {}", missing.body);
        assert!(
            missing.body.contains("\"code\":\"not_found\""),
            "{path}: {}",
            missing.body
        );
    }

    let bad = get(
        server.addr,
        "/api/reports/trio-1/cycle-1?format=pdf",
        &coordinator,
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("\"code\":\"invalid_request\""),
        "{}",
        bad.body
    );

    let nobody = get(server.addr, "/api/reports/trio-1/cycle-1", "not-a-token").await;
    assert_eq!(nobody.status, 401, "{}", nobody.body);
}
