//! Booking limits over HTTP: sessions per room that have not ended (cancelled ones
//! included), bookings per person, the staff
//! room taking none, and sessions of another trio answered as absent whatever is asked.

use chrono::{Days, Utc};
use triad_protocol::limits::MAX_UPCOMING_COACHINGS_PER_ROOM;
use triad_protocol::{CoachingId, CoachingSession, CoachingStatus, PersonId, RoomId, Timestamp};
use triad_server::store::Collection;
use triad_server::store::docs::Docs;
use triad_server::store::embedded::EmbeddedStore;

use crate::calendar::http;
use crate::harness::TestServer;

const DAY: Timestamp = 86_400_000;

/// A session of trio-1 stored as it is, starting at `start`.
fn stored(id: &str, start: Timestamp, status: CoachingStatus) -> CoachingSession {
    CoachingSession {
        id: CoachingId::new(id).unwrap(),
        room: RoomId::new("trio-1").unwrap(),
        title: format!("Session {id}"),
        agenda: String::new(),
        start,
        duration_min: 60,
        time_zone: "Europe/London".into(),
        status,
        sequence: 0,
        booked_by: PersonId::new("sara.moderator").unwrap(),
        updated_at: 0,
    }
}

/// A booking of `room` on day `day` from now at `hour`:00 UTC.
fn booking(room: &str, day: u64, hour: u32) -> String {
    let date = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(day))
        .unwrap();
    serde_json::json!({
        "room": room,
        "title": format!("Session {day}-{hour}"),
        "start": format!("{date}T{hour:02}:00:00Z"),
        "duration_min": 30,
        "time_zone": "Europe/London",
    })
    .to_string()
}

async fn book(server: &TestServer, by: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    http(
        server.addr,
        "POST",
        "/api/coachings",
        Some(&server.token(by)),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_room_holds_a_bounded_number_of_upcoming_sessions() {
    let server = TestServer::start().await;
    for i in 0..MAX_UPCOMING_COACHINGS_PER_ROOM {
        let (status, _, body) = book(
            &server,
            "sara.moderator",
            &booking("trio-1", 1 + i as u64, 9),
        )
        .await;
        assert_eq!(status, 201, "booking {i}: {body}");
    }
    let (status, _, body) = book(&server, "sara.moderator", &booking("trio-1", 300, 9)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"code\":\"too_many_coachings\""), "{body}");
    // Another room is not affected.
    let (status, _, body) = book(&server, "sara.moderator", &booking("trio-2", 300, 9)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn cancelled_sessions_count_against_the_room_until_they_end() {
    let server = TestServer::start().await;
    let mut last = String::new();
    for i in 0..MAX_UPCOMING_COACHINGS_PER_ROOM {
        let (status, _, body) = book(
            &server,
            "sara.moderator",
            &booking("trio-1", 1 + i as u64, 9),
        )
        .await;
        assert_eq!(status, 201, "booking {i}: {body}");
        let session: CoachingSession = serde_json::from_str(&body).unwrap();
        last = session.id.as_str().to_owned();
    }
    let (status, _, body) = http(
        server.addr,
        "POST",
        &format!("/api/coachings/{last}/cancel"),
        Some(&server.token("sara.moderator")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Book, cancel, book again: the cancelled session still takes its place.
    let (status, _, body) = book(&server, "sara.moderator", &booking("trio-1", 300, 9)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"code\":\"too_many_coachings\""), "{body}");
}

#[tokio::test]
async fn an_ended_session_is_not_moved_into_a_full_room_and_old_cancelled_ones_are_dropped() {
    let now = Utc::now().timestamp_millis();
    let server = TestServer::start_seeded(async |store: &EmbeddedStore| {
        let mut sessions = vec![
            stored("cs-ended", now - 2 * DAY, CoachingStatus::Scheduled),
            stored("cs-long-gone", now - 60 * DAY, CoachingStatus::Cancelled),
        ];
        sessions.extend((0..MAX_UPCOMING_COACHINGS_PER_ROOM).map(|i| {
            let start = now + (i as Timestamp + 1) * DAY;
            stored(&format!("cs-{i}"), start, CoachingStatus::Scheduled)
        }));
        Docs::new(store, Collection::Coachings)
            .put("trio-1", &sessions)
            .await
            .unwrap();
    })
    .await;
    let sara = server.token("sara.moderator");
    let start = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(400))
        .unwrap();
    let (status, _, body) = http(
        server.addr,
        "PATCH",
        "/api/coachings/cs-ended",
        Some(&sara),
        Some(&format!(r#"{{"start": "{start}T09:00"}}"#)),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"code\":\"too_many_coachings\""), "{body}");
    // An upcoming one still moves; the write drops the cancelled session that ended two
    // months ago, and keeps the ended one.
    let (status, _, body) = http(
        server.addr,
        "PATCH",
        "/api/coachings/cs-0",
        Some(&sara),
        Some(&format!(r#"{{"start": "{start}T09:00"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(
        server.addr,
        "GET",
        "/api/coachings?room=trio-1",
        Some(&sara),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("cs-long-gone"), "{body}");
    assert!(body.contains("cs-ended"), "{body}");
}

#[tokio::test]
async fn bookings_are_rate_limited_per_person() {
    let server = TestServer::start_with(|config| {
        config.coaching_changes_burst = 3;
        config.coaching_changes_per_hour = 1;
    })
    .await;
    for hour in 9..12 {
        let (status, _, body) = book(&server, "anna.jensen", &booking("trio-1", 5, hour)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, headers, body) = book(&server, "anna.jensen", &booking("trio-1", 5, 14)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"code\":\"rate_limited\""), "{body}");
    let retry: u64 = headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| v.parse().unwrap())
        .expect("Retry-After");
    assert!(retry > 60, "{retry}");
    // Someone else books as before.
    let (status, _, body) = book(&server, "marco.rossi", &booking("trio-1", 5, 14)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_staff_room_takes_no_coaching_sessions() {
    let server = TestServer::start().await;
    for by in ["david.coordinator", "sara.moderator"] {
        let (status, _, body) = book(&server, by, &booking("staff", 3, 10)).await;
        assert_eq!(status, 422, "{by}: {body}");
        assert!(body.contains("\"code\":\"not_bookable\""), "{by}: {body}");
    }
}

#[tokio::test]
async fn another_trios_session_is_not_found_however_it_is_asked_for() {
    let server = TestServer::start().await;
    let (status, _, body) = book(&server, "anna.jensen", &booking("trio-1", 4, 10)).await;
    assert_eq!(status, 201, "{body}");
    let session: CoachingSession = serde_json::from_str(&body).unwrap();
    let lars = server.token("lars.nielsen"); // trio-2
    let path = format!("/api/coachings/{}", session.id);
    let answers = [
        http(server.addr, "GET", &path, Some(&lars), None).await,
        http(
            server.addr,
            "PATCH",
            &path,
            Some(&lars),
            Some(r#"{"title": "Mine now"}"#),
        )
        .await,
        http(
            server.addr,
            "POST",
            &format!("{path}/cancel"),
            Some(&lars),
            None,
        )
        .await,
    ];
    let missing = http(
        server.addr,
        "GET",
        "/api/coachings/cs-0000000000000000",
        Some(&lars),
        None,
    )
    .await;
    for (status, _, body) in answers.iter().chain([&missing]) {
        assert_eq!(*status, 404, "{body}");
        assert!(
            body.contains("\"code\":\"no_coaching\"") || body.contains("\"code\":\"not_found\""),
            "{body}"
        );
        assert!(!body.contains("trio-1"), "{body}");
    }
    let codes: Vec<String> = answers
        .iter()
        .chain([&missing])
        .map(|(_, _, body)| {
            serde_json::from_str::<serde_json::Value>(body).unwrap()["code"].to_string()
        })
        .collect();
    assert!(codes.windows(2).all(|w| w[0] == w[1]), "{codes:?}");
}
