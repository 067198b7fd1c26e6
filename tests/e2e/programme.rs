//! The programme from the coordinator's first sign-in to a cycle report: a roster of three
//! regions and ten trios applied through the API, invitations exchanged for tokens, a
//! moderator booking coaching sessions that heads in Copenhagen, Rome and London see at
//! their own local time, the calendar feed following a move and a cancellation, the
//! reminder, a call held with two of the three heads, the report's attendance, and a
//! revoked head disconnected at once.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chrono::{Days, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use triad_client::{Client, ClientConfig, ClientEvent, Events};
use triad_protocol::{CoachingChange, CoachingSession, RoomId};

use crate::api::{Response, call};
use crate::harness::{Node, SECRET, program, wait_for, wait_within};

const REGIONS: [(&str, &str, &str); 3] = [
    ("vejle", "Vejle, Denmark", "Europe/Copenhagen"),
    ("tuscany", "Tuscany, Italy", "Europe/Rome"),
    ("west-wales", "West Wales, UK", "Europe/London"),
];

/// A roster: the coordinator, three moderators, and `trios` trios of one head per region.
/// The current cycle spans today, whenever the test runs.
fn roster(trios: usize) -> String {
    let today = Utc::now().date_naive();
    let mut text = String::new();
    for (id, name, _) in REGIONS {
        writeln!(text, "[[regions]]\nid = \"{id}\"\nname = \"{name}\"\n").unwrap();
    }
    writeln!(
        text,
        "[[cycles]]\nid = \"cycle-1\"\nname = \"Cycle 1: Vejle\"\nstarts = \"{}\"\nends = \"{}\"\nhost_region = \"vejle\"\n",
        today - Days::new(60),
        today + Days::new(180)
    )
    .unwrap();
    text.push_str(
        "[[people]]\nid = \"cora\"\nname = \"Cora Hughes\"\nrole = \"coordinator\"\ntime_zone = \"Europe/London\"\nemail = \"cora@example.org\"\n\n",
    );
    for m in 1..=3 {
        writeln!(
            text,
            "[[people]]\nid = \"mod-{m}\"\nname = \"Moderator {m}\"\nrole = \"moderator\"\ntime_zone = \"Europe/Copenhagen\"\n"
        )
        .unwrap();
    }
    for t in 1..=trios {
        for (region, _, zone) in REGIONS {
            writeln!(
                text,
                "[[people]]\nid = \"{region}-{t}\"\nname = \"Head {region} {t}\"\nrole = \"head\"\nregion = \"{region}\"\nschool = \"School {region} {t}\"\ntime_zone = \"{zone}\"\n"
            )
            .unwrap();
        }
    }
    for t in 1..=trios {
        writeln!(
            text,
            "[[trios]]\nid = \"trio-{t}\"\nheads = [\"vejle-{t}\", \"tuscany-{t}\", \"west-wales-{t}\"]\nmoderators = [\"mod-{}\"]\n",
            (t - 1) % 3 + 1
        )
        .unwrap();
    }
    text
}

/// Runs an admin command of the server program on the stopped store; its stdout.
async fn admin(data: &std::path::Path, args: &[&str]) -> String {
    let output = program()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(["--jwt-secret", SECRET])
        .stderr(Stdio::inherit())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The invitation code of an invitation link.
fn code_of(link: &str) -> String {
    link.trim()
        .split_once("#invite=")
        .unwrap_or_else(|| panic!("not an invitation link: {link}"))
        .1
        .to_owned()
}

fn expect(response: &Response, status: u16, what: &str) -> Value {
    assert_eq!(response.status, status, "{what}: {}", response.body);
    response.json()
}

fn refused(response: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(
        (response.status, response.code().as_str()),
        (status, code),
        "{what}: {}",
        response.body
    );
}

/// Signs in with an invitation: the tokens.
async fn redeem(addr: SocketAddr, code: &str) -> Value {
    let body = json!({ "code": code }).to_string();
    let response = call(addr, "POST", "/api/auth/redeem", None, Some(&body)).await;
    expect(&response, 200, "redeem")
}

async fn connect(node: &Node, access_token: &str) -> (Client, Events) {
    let mut config = ClientConfig::new(node.url(), access_token.to_owned());
    config.backoff_max = Duration::from_millis(300);
    Client::connect(config).await.unwrap()
}

/// Waits for a `coaching` push of `change`; the session.
async fn coaching(events: &mut Events, change: CoachingChange) -> CoachingSession {
    // A session's start may be some seconds away.
    let event = wait_within(
        events,
        Duration::from_secs(60),
        |event| matches!(event, ClientEvent::Coaching { change: c, .. } if *c == change),
    )
    .await;
    match event {
        ClientEvent::Coaching { coaching, .. } => coaching,
        _ => unreachable!(),
    }
}

/// The wall-clock time of `ms` in `zone`, as people read it.
fn local(ms: i64, zone: &str) -> String {
    let tz: Tz = zone.parse().unwrap();
    tz.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The VEVENT of `uid` in an iCalendar feed, parsed by an independent parser: its
/// properties as (name, value, TZID parameter).
fn vevent(feed: &str, uid: &str) -> Vec<(String, String, Option<String>)> {
    let mut parser = ical::IcalParser::new(feed.as_bytes());
    let calendar = parser.next().expect("a calendar").expect("the feed parses");
    let event = calendar
        .events
        .into_iter()
        .find(|event| {
            event
                .properties
                .iter()
                .any(|p| p.name == "UID" && p.value.as_deref().is_some_and(|v| v.starts_with(uid)))
        })
        .unwrap_or_else(|| panic!("no event {uid} in the feed:\n{feed}"));
    event
        .properties
        .into_iter()
        .map(|p| {
            let tzid = p.params.as_ref().and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| name == "TZID")
                    .and_then(|(_, values)| values.first().cloned())
            });
            (p.name, p.value.unwrap_or_default(), tzid)
        })
        .collect()
}

fn property<'a>(
    event: &'a [(String, String, Option<String>)],
    name: &str,
) -> &'a (String, String, Option<String>) {
    event
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {event:?}"))
}

#[tokio::test]
async fn a_programme_from_roster_to_cycle_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    // The coordinator's first sign-in: a seed roster with just them, and a link.
    std::fs::write(
        data.join("seed.toml"),
        "[[people]]\nid = \"cora\"\nname = \"Cora Hughes\"\nrole = \"coordinator\"\ntime_zone = \"Europe/London\"\n",
    )
    .unwrap();
    admin(data, &["import", data.join("seed.toml").to_str().unwrap()]).await;
    let link = admin(data, &["invite", "--person", "cora"]).await;

    let mut command = program();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--jwt-secret", SECRET])
        .args([
            "--reminder-interval-ms",
            "250",
            "--invitation-ttl-secs",
            "2",
        ]);
    let node = Node::spawn(command).await;
    let addr = node.addr;

    let cora = redeem(addr, &code_of(&link)).await;
    let cora_token = cora["access_token"].as_str().unwrap().to_owned();
    let again = call(
        addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(&json!({ "code": code_of(&link) }).to_string()),
    )
    .await;
    refused(&again, 410, "invitation_used", "an invitation used twice");

    // A roster with a trio of two is refused whole, with the line.
    let broken = roster(2).replace(
        "heads = [\"vejle-2\", \"tuscany-2\", \"west-wales-2\"]",
        "heads = [\"vejle-2\", \"tuscany-2\"]",
    );
    let response = call(addr, "PUT", "/api/roster", Some(&cora_token), Some(&broken)).await;
    refused(&response, 422, "roster_invalid", "a trio of two");
    let problems = response.json()["problems"].clone();
    assert_eq!(problems.as_array().unwrap().len(), 1, "{problems}");
    assert_eq!(problems[0]["field"], "trios[1].heads");
    let line = problems[0]["line"].as_u64().unwrap() as usize;
    assert!(
        broken
            .lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("heads = "),
        "line {line} is not the heads line"
    );

    // The real roster: 3 regions, 10 trios, 34 people.
    let response = call(
        addr,
        "PUT",
        "/api/roster",
        Some(&cora_token),
        Some(&roster(10)),
    )
    .await;
    let summary = expect(&response, 200, "the roster");
    assert_eq!(
        (
            &summary["people"],
            &summary["trios"],
            &summary["regions"],
            &summary["cycles"]
        ),
        (&json!(34), &json!(10), &json!(3), &json!(1))
    );
    let programme = expect(
        &call(addr, "GET", "/api/programme", Some(&cora_token), None).await,
        200,
        "the programme",
    );
    let trios = programme["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|room| room["kind"] == "trio")
        .count();
    assert_eq!(trios, 10);

    // Invitations for trio-1's moderator and heads, exchanged for tokens.
    let mut tokens = std::collections::HashMap::new();
    for person in ["mod-1", "vejle-1", "tuscany-1", "west-wales-1"] {
        let body = json!({ "person": person, "ttl_hours": 24 }).to_string();
        let invited = expect(
            &call(
                addr,
                "POST",
                "/api/invitations",
                Some(&cora_token),
                Some(&body),
            )
            .await,
            201,
            "an invitation",
        );
        assert!(invited["url"].as_str().unwrap().contains("#invite="));
        let signed_in = redeem(addr, invited["code"].as_str().unwrap()).await;
        assert_eq!(signed_in["person"], person);
        tokens.insert(person, signed_in);
    }
    // Only the coordinator invites.
    let body = json!({ "person": "vejle-2" }).to_string();
    let head_token = tokens["vejle-1"]["access_token"].as_str().unwrap();
    let response = call(
        addr,
        "POST",
        "/api/invitations",
        Some(head_token),
        Some(&body),
    )
    .await;
    refused(&response, 403, "forbidden", "a head inviting");
    // An invitation used after it expired (the server's default lasts 2 s here).
    let late = expect(
        &call(
            addr,
            "POST",
            "/api/invitations",
            Some(&cora_token),
            Some(&body),
        )
        .await,
        201,
        "a short invitation",
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = call(
        addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(&json!({ "code": late["code"] }).to_string()),
    )
    .await;
    refused(
        &response,
        410,
        "invitation_expired",
        "an expired invitation",
    );

    // A refresh rotates the refresh token.
    let old_refresh = tokens["tuscany-1"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "refresh_token": old_refresh }).to_string();
    let refreshed = expect(
        &call(addr, "POST", "/api/auth/refresh", None, Some(&body)).await,
        200,
        "a refresh",
    );
    assert_ne!(refreshed["refresh_token"].as_str().unwrap(), old_refresh);
    let token = |person: &str| tokens[person]["access_token"].as_str().unwrap().to_owned();
    let moderator = token("mod-1");

    let (_mod_client, mut mod_events) = connect(&node, &moderator).await;
    let mut heads = Vec::new();
    for person in ["vejle-1", "tuscany-1", "west-wales-1"] {
        let (client, events) = connect(&node, &token(person)).await;
        let zone = client.welcome().person.time_zone.clone();
        heads.push((person, client, events, zone));
    }
    assert_eq!(
        heads.iter().map(|h| h.3.as_str()).collect::<Vec<_>>(),
        ["Europe/Copenhagen", "Europe/Rome", "Europe/London"]
    );

    // The moderator books a session ten days ahead at 16:00 Copenhagen time.
    let day = (Utc::now().date_naive() + Days::new(10)).to_string();
    let booking = json!({
        "room": "trio-1",
        "title": "Cycle 1 coaching: observation findings",
        "agenda": "What each school changed after the visit",
        "start": format!("{day}T16:00"),
        "duration_min": 60,
        "time_zone": "Europe/Copenhagen",
    });
    let booked = expect(
        &call(
            addr,
            "POST",
            "/api/coachings",
            Some(&moderator),
            Some(&booking.to_string()),
        )
        .await,
        201,
        "a booking",
    );
    let id = booked["id"].as_str().unwrap().to_owned();
    let expected = [
        ("Europe/Copenhagen", "16:00"),
        ("Europe/Rome", "16:00"),
        ("Europe/London", "15:00"),
    ];
    for ((person, _, events, zone), (want_zone, want)) in heads.iter_mut().zip(expected) {
        let session = coaching(events, CoachingChange::Booked).await;
        assert_eq!(session.id.as_str(), id);
        assert_eq!(zone, want_zone);
        assert_eq!(
            local(session.start, zone),
            format!("{day} {want}"),
            "{person} sees the session at their own local time"
        );
    }
    coaching(&mut mod_events, CoachingChange::Booked).await;

    // Bad bookings, each refused with its code.
    let mut bad = booking.clone();
    bad["start"] = json!(format!("{day}T16:30"));
    let response = call(
        addr,
        "POST",
        "/api/coachings",
        Some(&moderator),
        Some(&bad.to_string()),
    )
    .await;
    refused(&response, 409, "coaching_overlap", "an overlapping session");
    bad["start"] = json!("2020-01-01T10:00");
    let response = call(
        addr,
        "POST",
        "/api/coachings",
        Some(&moderator),
        Some(&bad.to_string()),
    )
    .await;
    refused(&response, 422, "coaching_in_past", "a session in the past");
    bad["start"] = json!(format!("{day}T09:00"));
    bad["time_zone"] = json!("Europe/Vejle");
    let response = call(
        addr,
        "POST",
        "/api/coachings",
        Some(&moderator),
        Some(&bad.to_string()),
    )
    .await;
    refused(&response, 422, "unknown_time_zone", "an unknown time zone");
    let mut other_trio = booking.clone();
    other_trio["room"] = json!("trio-2");
    let response = call(
        addr,
        "POST",
        "/api/coachings",
        Some(&token("vejle-1")),
        Some(&other_trio.to_string()),
    )
    .await;
    refused(
        &response,
        403,
        "forbidden",
        "a head booking for another trio",
    );

    // The calendar feed of a head in Rome: the session in its own zone.
    let feed_url = expect(
        &call(
            addr,
            "POST",
            "/api/me/calendar",
            Some(&token("tuscany-1")),
            None,
        )
        .await,
        201,
        "a calendar feed",
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let feed = |url: String| async move {
        let response = call(addr, "GET", &url, None, None).await;
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    };
    let event = vevent(&feed(feed_url.clone()).await, &id);
    assert_eq!(property(&event, "SEQUENCE").1, "0");
    let start = property(&event, "DTSTART");
    assert_eq!(start.2.as_deref(), Some("Europe/Copenhagen"));
    assert_eq!(start.1, format!("{}T160000", day.replace('-', "")));

    // Moved an hour later: everyone is told, and the feed shows the new time.
    let moved = expect(
        &call(
            addr,
            "PATCH",
            &format!("/api/coachings/{id}"),
            Some(&moderator),
            Some(&json!({ "start": format!("{day}T17:00") }).to_string()),
        )
        .await,
        200,
        "a move",
    );
    assert_eq!(moved["sequence"], 1);
    for (_, _, events, zone) in heads.iter_mut() {
        let session = coaching(events, CoachingChange::Moved).await;
        let want = if zone == "Europe/London" {
            "16:00"
        } else {
            "17:00"
        };
        assert_eq!(local(session.start, zone), format!("{day} {want}"));
    }
    let event = vevent(&feed(feed_url.clone()).await, &id);
    assert_eq!(property(&event, "SEQUENCE").1, "1");
    assert_eq!(
        property(&event, "DTSTART").1,
        format!("{}T170000", day.replace('-', ""))
    );

    // Cancelled: still in the feed, marked so calendar programs remove it.
    let response = call(
        addr,
        "POST",
        &format!("/api/coachings/{id}/cancel"),
        Some(&moderator),
        None,
    )
    .await;
    expect(&response, 200, "a cancellation");
    for (_, _, events, _) in heads.iter_mut() {
        coaching(events, CoachingChange::Cancelled).await;
    }
    let event = vevent(&feed(feed_url).await, &id);
    assert_eq!(property(&event, "SEQUENCE").1, "2");
    assert_eq!(property(&event, "STATUS").1, "CANCELLED");

    // A session starting in 15 s: the ten-minute reminder comes at once, then the start.
    let soon = Utc::now() + chrono::Duration::seconds(15);
    let booking = json!({
        "room": "trio-1",
        "title": "Check-in",
        "start": soon.to_rfc3339(),
        "duration_min": 30,
        "time_zone": "Europe/Rome",
    });
    let booked = expect(
        &call(
            addr,
            "POST",
            "/api/coachings",
            Some(&moderator),
            Some(&booking.to_string()),
        )
        .await,
        201,
        "a session soon",
    );
    let soon_id = booked["id"].as_str().unwrap().to_owned();
    for (_, _, events, _) in heads.iter_mut() {
        let reminded = coaching(events, CoachingChange::ReminderSoon).await;
        assert_eq!(reminded.id.as_str(), soon_id);
    }

    // Two of the three heads hold the call.
    let room = RoomId::new("trio-1").unwrap();
    let first = heads[0].1.call_start(&room).await.unwrap();
    let second = heads[1].1.call_join(&first.call.id, false).await.unwrap();
    assert_eq!(second.call.participants.len(), 2);
    for (_, _, events, _) in heads.iter_mut() {
        let started = coaching(events, CoachingChange::Started).await;
        assert_eq!(started.id.as_str(), soon_id);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    heads[1].1.call_leave(&first.call.id).await.unwrap();
    heads[0].1.call_leave(&first.call.id).await.unwrap();

    // The cycle report shows that attendance.
    let report = call(
        addr,
        "GET",
        "/api/reports/trio-1/cycle-1?format=csv",
        Some(&cora_token),
        None,
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.body);
    // Columns: row,session,session_title,session_start_utc,person,name,role,minutes,messages,joined_utc
    let minutes = |person: &str| -> u64 {
        report
            .body
            .lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|cells| cells[0] == "attendance" && cells[1] == soon_id && cells[4] == person)
            .unwrap_or_else(|| panic!("no attendance row for {person}:\n{}", report.body))[7]
            .parse()
            .unwrap()
    };
    assert!(minutes("vejle-1") >= 1, "{}", report.body);
    assert!(minutes("tuscany-1") >= 1, "{}", report.body);
    assert_eq!(minutes("west-wales-1"), 0, "{}", report.body);
    let joined = report
        .body
        .lines()
        .find(|line| line.starts_with("attendance,") && line.contains(",vejle-1,"))
        .and_then(|line| line.split(',').nth(9))
        .unwrap_or_default();
    assert!(
        joined.ends_with('Z'),
        "when Anna's colleague joined: {}",
        report.body
    );
    let markdown = call(
        addr,
        "GET",
        "/api/reports/trio-1/cycle-1?format=md",
        Some(&cora_token),
        None,
    )
    .await;
    assert_eq!(markdown.status, 200);
    assert!(markdown.body.contains("Check-in"), "{}", markdown.body);
    let response = call(
        addr,
        "GET",
        "/api/reports/trio-1/cycle-1",
        Some(&token("vejle-1")),
        None,
    )
    .await;
    refused(&response, 403, "forbidden", "a head reading the report");

    // Revoked: the head is disconnected at once, and their tokens and feed no longer work.
    let revoked_feed = expect(
        &call(
            addr,
            "POST",
            "/api/me/calendar",
            Some(&token("west-wales-1")),
            None,
        )
        .await,
        201,
        "a calendar feed",
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = call(
        addr,
        "POST",
        "/api/people/west-wales-1/revoke",
        Some(&cora_token),
        None,
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.body);
    let (_, _, events, _) = &mut heads[2];
    let closed = wait_for(events, |event| matches!(event, ClientEvent::Closed { .. })).await;
    assert!(
        matches!(
            closed,
            ClientEvent::Closed {
                code: Some(4009),
                ..
            }
        ),
        "{closed:?}"
    );
    let body = json!({ "refresh_token": tokens["west-wales-1"]["refresh_token"] }).to_string();
    let response = call(addr, "POST", "/api/auth/refresh", None, Some(&body)).await;
    refused(&response, 401, "token_revoked", "a revoked refresh token");
    let response = call(
        addr,
        "GET",
        "/api/coachings",
        Some(&token("west-wales-1")),
        None,
    )
    .await;
    refused(&response, 401, "token_revoked", "a revoked access token");
    let response = call(addr, "GET", &revoked_feed, None, None).await;
    assert_eq!(
        response.status, 404,
        "a revoked person's calendar feed: {}",
        response.body
    );
}
