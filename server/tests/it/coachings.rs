//! Booking limits over HTTP: sessions per room that have not ended (cancelled ones
//! included), bookings per person, the staff
//! room taking none, and sessions of another trio answered as absent whatever is asked.

use chrono::{Days, Utc};
use triad_protocol::CoachingSession;
use triad_protocol::limits::MAX_UPCOMING_COACHINGS_PER_ROOM;

use crate::calendar::http;
use crate::harness::TestServer;

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
