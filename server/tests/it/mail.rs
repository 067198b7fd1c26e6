//! E-mail through a local SMTP sink: reminders in each reader's own time zone, and digests of
//! unread messages for people who are offline, once, and only while they want them.

use std::sync::Arc;
use std::time::Duration;

use triad_protocol::{
    CoachingChange, CoachingId, CoachingSession, CoachingStatus, PersonId, ServerMessage,
};
use triad_server::mail::Mailer;
use triad_server::programme::{DEMO_ROSTER, Preferences, Roster};
use triad_server::store::docs::Docs;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::{Collection, NoSink, SharedStore, Store};

use crate::calendar::http;
use crate::harness::TestServer;
use crate::smtp_sink::SmtpSink;

fn prefs(email: &str) -> Preferences {
    Preferences {
        email: Some(email.into()),
        email_reminders: true,
        email_digest: true,
    }
}

async fn write_prefs(store: &dyn Store, people: &[(&str, Preferences)]) {
    let docs: Docs<'_, Preferences> = Docs::new(store, Collection::Preferences);
    for (person, prefs) in people {
        docs.put(person, prefs).await.unwrap();
    }
}

/// Opens the store file once the stopped server's last background task has let go of it.
async fn open_when_released(path: &std::path::Path) -> EmbeddedStore {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match EmbeddedStore::open(path, Arc::new(NoSink)) {
            Ok(store) => return store,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("the store stays locked: {err}"),
        }
    }
}

#[tokio::test]
async fn reminders_show_the_readers_own_time() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(EmbeddedStore::open(&dir.path().join("triad.redb"), Arc::new(NoSink)).unwrap());
    store
        .apply_programme(&Roster::parse(DEMO_ROSTER).unwrap().programme)
        .await
        .unwrap();
    let mut quiet = prefs("anna@example.org");
    quiet.email_reminders = false;
    write_prefs(
        store.as_ref(),
        &[
            ("rhian.evans", prefs("rhian@example.org")),
            ("marco.rossi", prefs("marco@example.org")),
            ("anna.jensen", quiet),
        ],
    )
    .await;
    let mailer = Mailer::new(
        Some(&sink.url()),
        "Triad <triad@localhost>",
        "http://triad.test",
        store.clone(),
    )
    .unwrap();
    let session = CoachingSession {
        id: CoachingId::new("cs-mail").unwrap(),
        room: triad_protocol::RoomId::new("trio-1").unwrap(),
        title: "Cycle 1 coaching".into(),
        agenda: "Visit notes".into(),
        start: 1_796_137_200_000, // 2026-12-01 15:00 UTC
        duration_min: 60,
        time_zone: "Europe/Rome".into(),
        status: CoachingStatus::Scheduled,
        sequence: 0,
        booked_by: PersonId::new("sara.moderator").unwrap(),
        updated_at: 0,
    };
    for person in ["rhian.evans", "marco.rossi", "anna.jensen", "owen.price"] {
        let info = store
            .person(&PersonId::new(person).unwrap())
            .await
            .unwrap()
            .unwrap();
        mailer
            .reminder(&info, &session, "Trio 1", CoachingChange::ReminderDay)
            .await
            .unwrap();
    }
    let london = sink.wait_for("rhian@example.org", 1).await;
    let text = london[0].text();
    assert!(
        text.contains("Tuesday 1 December 2026, 15:00 (Europe/London)"),
        "{text}"
    );
    assert!(
        text.contains("Cycle 1 coaching") && text.contains("Visit notes"),
        "{text}"
    );
    assert_eq!(
        london[0].header("Subject").as_deref(),
        Some("Tomorrow: Cycle 1 coaching")
    );
    assert_eq!(
        london[0].header("From").as_deref(),
        Some("Triad <triad@localhost>")
    );
    let rome = sink.wait_for("marco@example.org", 1).await;
    let text = rome[0].text();
    assert!(
        text.contains("Tuesday 1 December 2026, 16:00 (Europe/Rome)"),
        "{text}"
    );
    // Anna turned reminders off; Owen has no address.
    assert_eq!(sink.mails().len(), 2, "{:?}", sink.mails());
}

#[tokio::test]
async fn offline_people_get_one_digest_of_their_unread_messages() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let mut server = TestServer::start_with(|config| {
        config.smtp_url = Some(url);
        config.digest_interval = Duration::from_millis(150);
    })
    .await;
    // The roster does not carry addresses: write them into the store while it is closed.
    server.shutdown().await;
    {
        let store = open_when_released(&server.config.store_path()).await;
        write_prefs(
            &store,
            &[
                ("marco.rossi", prefs("marco@example.org")),
                ("anna.jensen", prefs("anna@example.org")),
            ],
        )
        .await;
    }
    let server = server.restart().await;

    // Anna stays online; Rhian writes in their trio while Marco is online too, then Marco
    // goes offline.
    let (_anna, _) = server.signed_in("anna.jensen").await;
    let (marco, _) = server.signed_in("marco.rossi").await;
    let (mut rhian, _) = server.signed_in("rhian.evans").await;
    for (i, text) in ["Shall we meet on Tuesday?", "I have the visit notes."]
        .iter()
        .enumerate()
    {
        let answer = rhian.send("trio-1", &format!("m{i}"), text).await;
        assert!(matches!(answer, ServerMessage::Ack(_)), "{answer:?}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(sink.mails().is_empty(), "no digest while online");
    drop(marco);

    let digests = sink.wait_for("marco@example.org", 1).await;
    let text = digests[0].text();
    assert!(text.contains("Trio 1"), "{text}");
    assert!(text.contains(": 2 unread"), "{text}");
    assert!(
        text.contains("Rhian Evans: Shall we meet on Tuesday?"),
        "{text}"
    );
    assert!(
        text.contains("Rhian Evans: I have the visit notes."),
        "{text}"
    );
    assert_eq!(
        digests[0].header("Subject").as_deref(),
        Some("2 unread messages in Triad")
    );

    // Nothing new: no second digest.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.mails_to("marco@example.org").len(), 1);

    // Marco turns the digest off; new messages bring no more mail.
    let (status, _, body) = http(
        server.addr,
        "PUT",
        "/api/me/preferences",
        Some(&server.token("marco.rossi")),
        Some(r#"{"email_digest": false}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let now: Preferences = serde_json::from_str(&body).unwrap();
    assert!(!now.email_digest && now.email_reminders);
    assert_eq!(now.email.as_deref(), Some("marco@example.org"));
    let (status, _, body) = http(
        server.addr,
        "GET",
        "/api/me/preferences",
        Some(&server.token("marco.rossi")),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Preferences>(&body).unwrap(), now);
    let answer = rhian.send("trio-1", "m2", "Any news?").await;
    assert!(matches!(answer, ServerMessage::Ack(_)), "{answer:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.mails_to("marco@example.org").len(), 1);

    // The address cannot be changed here.
    let (status, _, _) = http(
        server.addr,
        "PUT",
        "/api/me/preferences",
        Some(&server.token("marco.rossi")),
        Some(r#"{"email": "other@example.org"}"#),
    )
    .await;
    assert_eq!(status, 422);

    // Anna was online all along.
    assert!(sink.mails_to("anna@example.org").is_empty());
}

#[tokio::test]
async fn bookings_and_cancellations_are_mailed_to_the_trio() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let mut server = TestServer::start_with(|config| config.smtp_url = Some(url)).await;
    server.shutdown().await;
    {
        let store = open_when_released(&server.config.store_path()).await;
        write_prefs(
            &store,
            &[
                ("anna.jensen", prefs("anna@example.org")),
                ("marco.rossi", prefs("marco@example.org")),
            ],
        )
        .await;
    }
    let server = server.restart().await;
    let moderator = server.token("sara.moderator");
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d");
    let booking = format!(
        r#"{{"room":"trio-1","title":"Visit follow-up","start":"{day}T10:00","duration_min":45,"time_zone":"Europe/Rome"}}"#
    );
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/coachings",
        Some(&moderator),
        Some(&booking),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = sink.wait_for("marco@example.org", 1).await;
    let subject = booked[0].header("Subject").unwrap_or_default();
    assert!(
        subject.contains("booked") && subject.contains("Visit follow-up"),
        "{subject}"
    );
    assert!(booked[0].text().contains("10:00"), "{}", booked[0].text());

    let path = format!("/api/coachings/{id}/cancel");
    let (status, _, body) = http(server.addr, "POST", &path, Some(&moderator), None).await;
    assert_eq!(status, 200, "{body}");
    let mails = sink.wait_for("anna@example.org", 2).await;
    let subject = mails[1].header("Subject").unwrap_or_default();
    assert!(subject.to_lowercase().contains("cancelled"), "{subject}");
}

#[tokio::test]
async fn a_burst_of_booking_changes_is_not_a_flood_of_mail() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(EmbeddedStore::open(&dir.path().join("triad.redb"), Arc::new(NoSink)).unwrap());
    store
        .apply_programme(&Roster::parse(DEMO_ROSTER).unwrap().programme)
        .await
        .unwrap();
    write_prefs(
        store.as_ref(),
        &[("marco.rossi", prefs("marco@example.org"))],
    )
    .await;
    let mailer = Mailer::new(
        Some(&sink.url()),
        "Triad <triad@localhost>",
        "http://triad.test",
        store.clone(),
    )
    .unwrap();
    let marco = store
        .person(&PersonId::new("marco.rossi").unwrap())
        .await
        .unwrap()
        .unwrap();
    let session = |i: u32| CoachingSession {
        id: CoachingId::new(format!("cs-burst-{i}")).unwrap(),
        room: triad_protocol::RoomId::new("trio-1").unwrap(),
        title: format!("Burst {i}"),
        agenda: String::new(),
        start: 1_796_137_200_000 + i64::from(i) * 3_600_000,
        duration_min: 30,
        time_zone: "Europe/Rome".into(),
        status: CoachingStatus::Scheduled,
        sequence: 0,
        booked_by: PersonId::new("sara.moderator").unwrap(),
        updated_at: 0,
    };
    // Ten bookings in a row: the first COACHING_MAILS_BURST are mailed, the rest not.
    for i in 0..10 {
        mailer
            .reminder(&marco, &session(i), "Trio 1", CoachingChange::Booked)
            .await
            .unwrap();
    }
    // A reminder is always sent.
    mailer
        .reminder(&marco, &session(0), "Trio 1", CoachingChange::ReminderDay)
        .await
        .unwrap();
    let burst = triad_protocol::limits::COACHING_MAILS_BURST as usize;
    let mails = sink.wait_for("marco@example.org", burst + 1).await;
    assert_eq!(
        mails.len(),
        burst + 1,
        "every mail was sent before the reminder"
    );
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert!(
        subjects[..burst].iter().all(|s| s.contains("booked")),
        "{subjects:?}"
    );
    assert!(!subjects[burst].contains("booked"), "{subjects:?}");
}
