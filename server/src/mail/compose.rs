//! The texts of e-mails: subjects and plain-text bodies of reminders and digests. Times are
//! written in the reader's own IANA zone, named, e.g. "Tuesday 1 December 2026, 16:00
//! (Europe/Rome)".

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use triad_protocol::{CoachingChange, CoachingSession, CoachingStatus, PersonInfo, Timestamp};

/// How much of a message a digest quotes, in characters.
pub const QUOTE_CHARS: usize = 200;

/// `at` as a wall time in the zone named `zone` (UTC if the name is unknown), with the
/// zone's name: "Tuesday 1 December 2026, 16:00 (Europe/Rome)".
pub fn local_time(at: Timestamp, zone: &str) -> String {
    let tz = zone.parse::<Tz>().unwrap_or(Tz::UTC);
    let Some(utc) = Utc.timestamp_millis_opt(at).single() else {
        return format!("{at} ms");
    };
    format!(
        "{} ({})",
        utc.with_timezone(&tz).format("%A %-d %B %Y, %H:%M"),
        tz.name()
    )
}

/// The first `max` characters of `text`, with "…" if cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The subject and body of a reminder of `session` for `person`.
pub fn reminder(
    person: &PersonInfo,
    session: &CoachingSession,
    room_title: &str,
    change: CoachingChange,
    public_url: &str,
) -> (String, String) {
    let title = &session.title;
    let (subject, headline) = match change {
        CoachingChange::Booked => (
            format!("Coaching session booked: {title}"),
            "A coaching session was booked",
        ),
        CoachingChange::Moved => (
            format!("Coaching session changed: {title}"),
            "A coaching session was changed; it is now",
        ),
        CoachingChange::Cancelled => (
            format!("Coaching session cancelled: {title}"),
            "A coaching session was cancelled",
        ),
        CoachingChange::ReminderDay => (
            format!("Tomorrow: {title}"),
            "A coaching session starts in a day",
        ),
        CoachingChange::ReminderSoon => (
            format!("In ten minutes: {title}"),
            "A coaching session starts in ten minutes",
        ),
        CoachingChange::Started => (
            format!("Starting now: {title}"),
            "A coaching session starts now; its call is open in the room",
        ),
    };
    let mut body = String::new();
    let _ = writeln!(body, "Hello {},", person.name);
    let _ = writeln!(body);
    let _ = writeln!(body, "{headline}:");
    let _ = writeln!(body);
    let _ = writeln!(body, "  {title}");
    let _ = writeln!(body, "  {}", local_time(session.start, &person.time_zone));
    let _ = writeln!(body, "  {} minutes, in {room_title}", session.duration_min);
    if session.status == CoachingStatus::Cancelled && change != CoachingChange::Cancelled {
        let _ = writeln!(body, "  (cancelled)");
    }
    if !session.agenda.is_empty() {
        let _ = writeln!(body);
        let _ = writeln!(body, "Agenda:");
        for line in session.agenda.lines() {
            let _ = writeln!(body, "  {line}");
        }
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "Open Triad: {public_url}/#room={}", session.room);
    let _ = writeln!(body);
    let _ = writeln!(
        body,
        "You get these e-mails because coaching reminders are on in your Triad preferences."
    );
    (subject, body)
}

/// A message quoted in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    /// Its author's name.
    pub author: String,
    /// Its text.
    pub body: String,
}

/// One room of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRoom {
    /// The room's title.
    pub title: String,
    /// Unread events in it.
    pub unread: u64,
    /// The newest unread messages, oldest first.
    pub latest: Vec<Quoted>,
}

/// The subject and body of a digest of unread messages for `person`.
pub fn digest(person: &PersonInfo, rooms: &[DigestRoom], public_url: &str) -> (String, String) {
    let total: u64 = rooms.iter().map(|room| room.unread).sum();
    let subject = if total == 1 {
        "1 unread message in Triad".to_owned()
    } else {
        format!("{total} unread messages in Triad")
    };
    let mut body = String::new();
    let _ = writeln!(body, "Hello {},", person.name);
    let _ = writeln!(body);
    let _ = writeln!(body, "While you were away:");
    for room in rooms {
        let _ = writeln!(body);
        let _ = writeln!(body, "{}: {} unread", room.title, room.unread);
        for message in &room.latest {
            let text = excerpt(message.body.trim(), QUOTE_CHARS).replace('\n', "\n    ");
            let _ = writeln!(body, "  {}: {text}", message.author);
        }
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "Open Triad: {public_url}/");
    let _ = writeln!(body);
    let _ = writeln!(
        body,
        "You get these e-mails because the digest of unread messages is on in your Triad preferences."
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_protocol::{CoachingId, PersonId, Role, RoomId};

    fn person(zone: &str) -> PersonInfo {
        PersonInfo {
            id: PersonId::new("rhian.evans").unwrap(),
            name: "Rhian Evans".into(),
            role: Role::Head,
            region: "west-wales".into(),
            school: "Ysgol Bro Teifi".into(),
            time_zone: zone.into(),
        }
    }

    #[test]
    fn times_are_shown_in_the_readers_zone() {
        // 2026-12-01 15:00 UTC.
        let at = 1_796_137_200_000;
        assert_eq!(
            local_time(at, "Europe/Rome"),
            "Tuesday 1 December 2026, 16:00 (Europe/Rome)"
        );
        assert_eq!(
            local_time(at, "Europe/London"),
            "Tuesday 1 December 2026, 15:00 (Europe/London)"
        );
        assert_eq!(
            local_time(at, "Atlantis/Nowhere"),
            "Tuesday 1 December 2026, 15:00 (UTC)"
        );
    }

    #[test]
    fn reminders_name_the_session_and_its_time() {
        let session = CoachingSession {
            id: CoachingId::new("cs-1").unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            title: "Cycle 1 coaching".into(),
            agenda: "Feedback\nNext visit".into(),
            start: 1_796_137_200_000,
            duration_min: 60,
            time_zone: "Europe/Rome".into(),
            status: CoachingStatus::Scheduled,
            sequence: 0,
            booked_by: PersonId::new("sara.moderator").unwrap(),
            updated_at: 0,
        };
        let (subject, body) = reminder(
            &person("Europe/London"),
            &session,
            "Trio 1",
            CoachingChange::ReminderDay,
            "https://triad.example.org",
        );
        assert_eq!(subject, "Tomorrow: Cycle 1 coaching");
        assert!(
            body.contains("Tuesday 1 December 2026, 15:00 (Europe/London)"),
            "{body}"
        );
        assert!(body.contains("  Feedback\n  Next visit\n"), "{body}");
        assert!(
            body.contains("https://triad.example.org/#room=trio-1"),
            "{body}"
        );
    }

    #[test]
    fn digests_quote_the_start_of_each_message() {
        let long = "x".repeat(300);
        let rooms = [DigestRoom {
            title: "Trio 1".into(),
            unread: 2,
            latest: vec![
                Quoted {
                    author: "Marco Rossi".into(),
                    body: "Ciao".into(),
                },
                Quoted {
                    author: "Anna Jensen".into(),
                    body: long,
                },
            ],
        }];
        let (subject, body) = digest(&person("Europe/London"), &rooms, "http://x");
        assert_eq!(subject, "2 unread messages in Triad");
        assert!(
            body.contains("Trio 1: 2 unread\n  Marco Rossi: Ciao\n"),
            "{body}"
        );
        assert!(
            body.contains(&format!("Anna Jensen: {}…\n", "x".repeat(200))),
            "{body}"
        );
    }
}
