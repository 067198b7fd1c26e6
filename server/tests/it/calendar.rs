//! The iCalendar feed over HTTP, read back with an independent parser (`ical`): local times
//! in the session's zone (checked against its `VTIMEZONE`), updates by UID and SEQUENCE,
//! cancellations, who sees what, and renewed keys voiding old URLs.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Days, NaiveDateTime, TimeZone, Utc};
use ical::parser::ical::component::{IcalCalendar, IcalEvent};
use ical::property::Property;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triad_protocol::CoachingSession;

use crate::harness::TestServer;

/// A minimal HTTP/1.1 exchange: returns the status, the headers (lower-case names) and the
/// body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "chunked answers are not read here"
    );
    (status, headers, body.to_owned())
}

/// Asks for a new feed key for `person`; returns the feed's path.
async fn new_feed(server: &TestServer, person: &str) -> String {
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/me/calendar",
        Some(&server.token(person)),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = answer["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("/calendar/") && url.ends_with(".ics"),
        "{url}"
    );
    url
}

/// Fetches and parses a feed; `None` for a 404.
async fn read_feed(server: &TestServer, url: &str) -> Option<IcalCalendar> {
    let (status, headers, body) = http(server.addr, "GET", url, None, None).await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("text/calendar; charset=utf-8"));
    let mut calendars = ical::IcalParser::new(body.as_bytes());
    let calendar = calendars
        .next()
        .expect("one calendar")
        .unwrap_or_else(|err| panic!("the feed does not parse: {err}\n{body}"));
    assert!(calendars.next().is_none());
    let value = |name: &str| prop(&calendar.properties, name).and_then(|p| p.value.clone());
    assert_eq!(value("VERSION").as_deref(), Some("2.0"));
    assert!(value("PRODID").is_some());
    assert!(value("X-WR-CALNAME").is_some_and(|n| n.starts_with("Triad")));
    Some(calendar)
}

fn prop<'a>(properties: &'a [Property], name: &str) -> Option<&'a Property> {
    properties.iter().find(|p| p.name == name)
}

fn value(event: &IcalEvent, name: &str) -> String {
    prop(&event.properties, name)
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| panic!("no {name} in {event:?}"))
}

fn param(property: &Property, name: &str) -> Option<String> {
    property
        .params
        .as_ref()?
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, values)| values.first().cloned())
}

fn event<'a>(calendar: &'a IcalCalendar, session: &CoachingSession) -> Option<&'a IcalEvent> {
    let uid = format!("{}@triad", session.id);
    calendar.events.iter().find(|e| value(e, "UID") == uid)
}

/// The local wall time and zone of an event's DTSTART.
fn start(event: &IcalEvent) -> (NaiveDateTime, String) {
    let property = prop(&event.properties, "DTSTART").expect("DTSTART");
    let tzid = param(property, "TZID").expect("DTSTART has a TZID");
    let local = NaiveDateTime::parse_from_str(property.value.as_deref().unwrap(), "%Y%m%dT%H%M%S")
        .expect("a local date-time");
    (local, tzid)
}

fn offset_secs(text: &str) -> i64 {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let digits = &text[1..];
    let h: i64 = digits[0..2].parse().unwrap();
    let m: i64 = digits[2..4].parse().unwrap();
    sign * (h * 3600 + m * 60)
}

/// The UTC instant of a local time, read from the calendar's own VTIMEZONE for `tzid`.
fn utc_by_vtimezone(calendar: &IcalCalendar, local: NaiveDateTime, tzid: &str) -> i64 {
    let zone = calendar
        .timezones
        .iter()
        .find(|z| prop(&z.properties, "TZID").and_then(|p| p.value.as_deref()) == Some(tzid))
        .unwrap_or_else(|| panic!("no VTIMEZONE for {tzid}"));
    let mut in_force = None;
    for transition in &zone.transitions {
        let get = |name: &str| {
            prop(&transition.properties, name)
                .and_then(|p| p.value.clone())
                .unwrap()
        };
        let onset = NaiveDateTime::parse_from_str(&get("DTSTART"), "%Y%m%dT%H%M%S").unwrap();
        if onset <= local {
            in_force = Some(offset_secs(&get("TZOFFSETTO")));
        }
    }
    let offset = in_force.expect("an observance in force");
    (local.and_utc().timestamp() - offset) * 1000
}

async fn book(server: &TestServer, by: &str, body: serde_json::Value) -> CoachingSession {
    let (status, _, answer) = http(
        server.addr,
        "POST",
        "/api/coachings",
        Some(&server.token(by)),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test]
async fn the_feed_follows_bookings_moves_and_cancellations() {
    let server = TestServer::start().await;
    let rhian = new_feed(&server, "rhian.evans").await; // trio-1, Europe/London
    let lars = new_feed(&server, "lars.nielsen").await; // trio-2
    let sara = new_feed(&server, "sara.moderator").await; // assigned to both trios
    let david = new_feed(&server, "david.coordinator").await;
    assert!(read_feed(&server, &rhian).await.unwrap().events.is_empty());

    // A session at 16:00 in Rome, ten days from now.
    let day = Utc::now()
        .with_timezone(&chrono_tz::Europe::Rome)
        .date_naive()
        .checked_add_days(Days::new(10))
        .unwrap();
    let session = book(
        &server,
        "sara.moderator",
        serde_json::json!({
            "room": "trio-1",
            "title": "Cycle 1: feedback, next steps",
            "agenda": "Visit notes\nPlans",
            "start": format!("{day}T16:00"),
            "duration_min": 60,
            "time_zone": "Europe/Rome",
        }),
    )
    .await;

    let feed = read_feed(&server, &rhian).await.unwrap();
    let found = event(&feed, &session).expect("the session is in a member's feed");
    let (local, tzid) = start(found);
    assert_eq!(tzid, "Europe/Rome");
    assert_eq!(local, day.and_hms_opt(16, 0, 0).unwrap());
    assert_eq!(utc_by_vtimezone(&feed, local, &tzid), session.start);
    let expected = chrono_tz::Europe::Rome
        .from_local_datetime(&local)
        .single()
        .unwrap();
    assert_eq!(expected.timestamp_millis(), session.start);
    let end = prop(&found.properties, "DTEND").unwrap();
    assert_eq!(param(end, "TZID").as_deref(), Some("Europe/Rome"));
    assert_eq!(
        end.value.as_deref(),
        Some(
            &*local
                .checked_add_signed(chrono::Duration::hours(1))
                .unwrap()
                .format("%Y%m%dT%H%M%S")
                .to_string()
        )
    );
    assert_eq!(value(found, "SEQUENCE"), "0");
    assert_eq!(value(found, "STATUS"), "CONFIRMED");
    assert_eq!(value(found, "SUMMARY"), "Cycle 1: feedback\\, next steps");
    assert!(prop(&found.properties, "DTSTAMP").is_some());
    assert!(value(found, "URL").ends_with("#room=trio-1"));

    // The moderator and the coordinator see it; a head of another trio does not.
    assert!(event(&read_feed(&server, &sara).await.unwrap(), &session).is_some());
    assert!(event(&read_feed(&server, &david).await.unwrap(), &session).is_some());
    assert!(event(&read_feed(&server, &lars).await.unwrap(), &session).is_none());

    // Moved to 17:30: same UID, higher SEQUENCE, the new time.
    let (status, _, answer) = http(
        server.addr,
        "PATCH",
        &format!("/api/coachings/{}", session.id),
        Some(&server.token("sara.moderator")),
        Some(&serde_json::json!({ "start": format!("{day}T17:30") }).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let moved: CoachingSession = serde_json::from_str(&answer).unwrap();
    let feed = read_feed(&server, &rhian).await.unwrap();
    assert_eq!(feed.events.len(), 1);
    let found = event(&feed, &session).unwrap();
    assert_eq!(value(found, "SEQUENCE"), "1");
    let (local, tzid) = start(found);
    assert_eq!(local, day.and_hms_opt(17, 30, 0).unwrap());
    assert_eq!(utc_by_vtimezone(&feed, local, &tzid), moved.start);

    // Cancelled: still there, marked so, with a higher SEQUENCE.
    let (status, _, answer) = http(
        server.addr,
        "POST",
        &format!("/api/coachings/{}/cancel", session.id),
        Some(&server.token("sara.moderator")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let feed = read_feed(&server, &rhian).await.unwrap();
    let found = event(&feed, &session).unwrap();
    assert_eq!(value(found, "STATUS"), "CANCELLED");
    assert_eq!(value(found, "SEQUENCE"), "2");
}

#[tokio::test]
async fn a_new_key_voids_the_old_url() {
    let server = TestServer::start().await;
    let first = new_feed(&server, "anna.jensen").await;
    assert!(read_feed(&server, &first).await.is_some());
    let second = new_feed(&server, "anna.jensen").await;
    assert_ne!(first, second);
    assert!(
        read_feed(&server, &first).await.is_none(),
        "the old URL is 404"
    );
    assert!(read_feed(&server, &second).await.is_some());
    // Unknown keys and other paths are 404 too.
    assert!(
        read_feed(&server, "/calendar/not-a-key.ics")
            .await
            .is_none()
    );
    let (status, _, _) = http(server.addr, "GET", "/calendar/whatever", None, None).await;
    assert_eq!(status, 404);
    // Creating a key needs a bearer token.
    let (status, _, _) = http(server.addr, "POST", "/api/me/calendar", None, None).await;
    assert_eq!(status, 401);
}

/// An iCalendar TEXT value unescaped.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[tokio::test]
async fn names_titles_and_agendas_cannot_break_out_of_their_lines() {
    let server = TestServer::start().await;
    let injected = "Rhian Evans\r\nEND:VCALENDAR\nBEGIN:VEVENT\nUID:evil@example\nSUMMARY:Injected\nEND:VEVENT";
    let (status, _, body) = http(
        server.addr,
        "PUT",
        "/api/people/rhian.evans",
        Some(&server.token("david.coordinator")),
        Some(
            &serde_json::json!({
                "name": injected,
                "role": "head",
                "region": "west-wales",
                "school": "Ysgol Bro Teifi",
                "time_zone": "Europe/London",
            })
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let feed = new_feed(&server, "rhian.evans").await;

    let day = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(12))
        .unwrap();
    let title = "Læring på tværs; første møde, \\ ærlige svar — ølstue-snak i Århus, ".to_owned()
        + "über alles";
    assert!(title.len() > 75 && title.len() <= 200);
    let session = book(
        &server,
        "sara.moderator",
        serde_json::json!({
            "room": "trio-1",
            "title": title,
            "agenda": "First\rSecond\r\nThird",
            "start": format!("{day}T10:00"),
            "duration_min": 60,
            "time_zone": "Europe/London",
        }),
    )
    .await;

    let (_, _, text) = http(server.addr, "GET", &feed, None, None).await;
    // No bare CR or LF inside a line, no line over 75 octets.
    assert!(text.ends_with("\r\n"), "{text}");
    for line in text.split("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
    let calendar = read_feed(&server, &feed).await.unwrap();
    assert_eq!(calendar.events.len(), 1, "{text}");
    assert!(!text.contains("evil@example\r\n"), "{text}");
    let name = prop(&calendar.properties, "NAME")
        .and_then(|p| p.value.clone())
        .unwrap();
    assert_eq!(
        unescape(&name),
        format!("Triad: {}", injected.replace("\r\n", "\n"))
    );
    let found = event(&calendar, &session).expect("the session");
    assert_eq!(unescape(&value(found, "SUMMARY")), title);
    assert_eq!(
        unescape(&value(found, "DESCRIPTION")),
        "First\nSecond\nThird"
    );
}
