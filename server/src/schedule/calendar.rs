//! The per-person iCalendar feed: a secret URL (`/calendar/<key>.ics`) that calendar
//! programs subscribe to, listing every coaching session of every room the person is in.
//!
//! A feed key is 32 random bytes, URL-safe base64; the store keeps only its SHA-256 in
//! [`Collection::CalendarKeys`] (hash to person), plus, under `person:<id>`, the hash of the
//! person's current key, so creating a new key voids the old one. Each session is one
//! `VEVENT` with a stable UID, its `SEQUENCE` and `STATUS` (cancelled sessions stay in the
//! feed, so subscribed calendars remove them), and its times as local wall times in the
//! session's own IANA zone, described by a `VTIMEZONE` built from the zone database. Every
//! line is written through [`super::ics`]: names, titles and agendas are escaped as TEXT,
//! and lines folded, per RFC 5545.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use sha2::{Digest, Sha256};
use triad_protocol::{CoachingSession, CoachingStatus, PersonId, PersonInfo, Timestamp};

use super::ics::Lines;
use crate::store::docs::{Docs, UpdateError};
use crate::store::{Collection, Store, StoreError};

/// The product identifier of the feeds.
pub const PRODID: &str = "-//Triad//Coaching sessions//EN";

/// The longest key looked up; real keys are 43 characters.
const MAX_KEY_CHARS: usize = 128;

/// The SHA-256 of a feed key, lowercase hex.
pub fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn current_key_doc(person: &PersonId) -> String {
    format!("person:{person}")
}

/// Creates a new feed key for `person`, voiding the previous one; returns the key (the
/// only time it is seen: the store keeps its hash).
pub async fn rotate_key(store: &dyn Store, person: &PersonId) -> Result<String, StoreError> {
    let key = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = key_hash(&key);
    let owners: Docs<'_, PersonId> = Docs::new(store, Collection::CalendarKeys);
    owners.put(&hash, person).await?;
    let current: Docs<'_, String> = Docs::new(store, Collection::CalendarKeys);
    let new_hash = hash.clone();
    let previous = current
        .update(&current_key_doc(person), move |previous| {
            Ok::<_, std::convert::Infallible>((Some(new_hash.clone()), previous))
        })
        .await
        .map_err(|err| match err {
            UpdateError::Store(err) => err,
            UpdateError::Refused(never) => match never {},
        })?;
    if let Some(previous) = previous.filter(|previous| previous != &hash) {
        owners.delete(&previous).await?;
    }
    Ok(key)
}

/// Voids `person`'s feed key, if they have one (their access was withdrawn).
pub async fn void_key(store: &dyn Store, person: &PersonId) -> Result<(), StoreError> {
    let current: Docs<'_, String> = Docs::new(store, Collection::CalendarKeys);
    if let Some(hash) = current.get(&current_key_doc(person)).await? {
        current.delete(&hash).await?;
        current.delete(&current_key_doc(person)).await?;
    }
    Ok(())
}

/// The person a feed key belongs to, if it is their current one.
pub async fn key_owner(store: &dyn Store, key: &str) -> Result<Option<PersonId>, StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return Ok(None);
    }
    let owners: Docs<'_, PersonId> = Docs::new(store, Collection::CalendarKeys);
    owners.get(&key_hash(key)).await
}

pub use super::sees;

/// A session with the title of its room, for the feed.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    /// The session.
    pub session: CoachingSession,
    /// Its room's title.
    pub room_title: String,
}

/// The feed of `person`: every session of every room they see, as iCalendar text. Links
/// point under `base_url` (e.g. `https://triad.example.org`).
pub async fn feed(
    store: &dyn Store,
    person: &PersonInfo,
    base_url: &str,
) -> Result<String, StoreError> {
    let programme = store.programme().await?;
    let sessions: Docs<'_, Vec<CoachingSession>> = Docs::new(store, Collection::Coachings);
    let mut entries = Vec::new();
    for room in programme.rooms.iter().filter(|room| sees(person, room)) {
        for session in sessions.get(room.id.as_str()).await?.unwrap_or_default() {
            entries.push(FeedEntry {
                session,
                room_title: room.title.clone(),
            });
        }
    }
    entries.sort_by(|a, b| (a.session.start, &a.session.id).cmp(&(b.session.start, &b.session.id)));
    Ok(render(
        &format!("Triad: {}", person.name),
        &entries,
        base_url,
    ))
}

fn utc(at: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(at).single().unwrap_or_default()
}

/// The wall time of `at` in `tz`.
fn local(at: Timestamp, tz: Tz) -> NaiveDateTime {
    utc(at).with_timezone(&tz).naive_local()
}

/// An instant as an iCalendar UTC date-time (`20261201T150000Z`).
fn utc_stamp(at: Timestamp) -> String {
    utc(at).format("%Y%m%dT%H%M%SZ").to_string()
}

/// Renders a calendar named `name` with one event per entry. Every value goes through
/// [`ics`](super::ics): escaped, cleaned of control characters, folded.
pub fn render(name: &str, entries: &[FeedEntry], base_url: &str) -> String {
    let base_url = base_url.trim_end_matches('/');
    let mut lines = Lines::new();
    lines
        .raw("BEGIN", &[], "VCALENDAR")
        .raw("VERSION", &[], "2.0")
        .text("PRODID", PRODID)
        .raw("CALSCALE", &[], "GREGORIAN")
        .raw("METHOD", &[], "PUBLISH")
        .text("NAME", name)
        .text("X-WR-CALNAME", name);
    // Each zone used, with the span of time its definition must cover; defined before the
    // events.
    let mut zones: BTreeMap<String, (Tz, Timestamp, Timestamp)> = BTreeMap::new();
    for FeedEntry { session, .. } in entries {
        let tz = session.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
        let span = zones
            .entry(tz.name().to_owned())
            .or_insert((tz, session.start, session.end()));
        span.1 = span.1.min(session.start);
        span.2 = span.2.max(session.end());
    }
    for (tz, from, to) in zones.values() {
        vtimezone(&mut lines, *tz, *from, *to);
    }
    for FeedEntry {
        session,
        room_title,
    } in entries
    {
        let tz = session.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
        let status = match session.status {
            CoachingStatus::Scheduled => "CONFIRMED",
            CoachingStatus::Cancelled => "CANCELLED",
        };
        let wall = |at: Timestamp| local(at, tz).format("%Y%m%dT%H%M%S").to_string();
        lines
            .raw("BEGIN", &[], "VEVENT")
            .text("UID", &format!("{}@triad", session.id))
            .raw("SEQUENCE", &[], &session.sequence.to_string())
            .raw("DTSTAMP", &[], &utc_stamp(session.updated_at))
            .raw("LAST-MODIFIED", &[], &utc_stamp(session.updated_at))
            .raw("DTSTART", &[("TZID", tz.name())], &wall(session.start))
            .raw("DTEND", &[("TZID", tz.name())], &wall(session.end()))
            .text("SUMMARY", &session.title)
            .text("LOCATION", &format!("Triad: {room_title}"))
            .raw("URL", &[], &format!("{base_url}/#room={}", session.room))
            .raw("STATUS", &[], status);
        if !session.agenda.is_empty() {
            lines.text("DESCRIPTION", &session.agenda);
        }
        lines.raw("END", &[], "VEVENT");
    }
    lines.raw("END", &[], "VCALENDAR");
    lines.finish()
}

/// The UTC offset in force in `tz` at `secs` (seconds since the epoch): total seconds,
/// whether it is daylight saving time, and its abbreviation.
fn offset_at(tz: Tz, secs: i64) -> (i32, bool, Option<String>) {
    let offset = *Utc
        .timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .with_timezone(&tz)
        .offset();
    (
        offset.fix().local_minus_utc(),
        !offset.dst_offset().is_zero(),
        offset.abbreviation().map(str::to_owned),
    )
}

/// `+HHMM` (or `+HHMMSS`) for an offset in seconds.
fn utc_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.unsigned_abs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// One observance of a zone: from `onset` (seconds since the epoch) the offset is `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observance {
    onset: i64,
    from: i32,
    to: i32,
    daylight: bool,
    name: Option<String>,
}

/// The observances of `tz` that cover `[from, to]` (seconds): the one in force at `from`,
/// then one per change of offset up to `to`.
fn observances(tz: Tz, from: i64, to: i64) -> Vec<Observance> {
    const DAY: i64 = 86_400;
    let (offset, daylight, name) = offset_at(tz, from);
    let mut found = vec![Observance {
        onset: from,
        from: offset,
        to: offset,
        daylight,
        name,
    }];
    let mut at = from;
    while at < to {
        let next = (at + DAY).min(to);
        let before = offset_at(tz, at);
        if offset_at(tz, next) != before {
            // The first second with the new offset lies in (at, next].
            let (mut low, mut high) = (at, next);
            while high - low > 1 {
                let mid = low + (high - low) / 2;
                if offset_at(tz, mid) == before {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            let (offset, daylight, name) = offset_at(tz, high);
            found.push(Observance {
                onset: high,
                from: before.0,
                to: offset,
                daylight,
                name,
            });
        }
        at = next;
    }
    found
}

/// Writes a `VTIMEZONE` for `tz` covering the instants `from..=to` (milliseconds), with a
/// day either side.
fn vtimezone(lines: &mut Lines, tz: Tz, from: Timestamp, to: Timestamp) {
    let from = from.div_euclid(1000) - 86_400;
    let to = to.div_euclid(1000) + 86_400;
    lines.raw("BEGIN", &[], "VTIMEZONE").text("TZID", tz.name());
    for observance in observances(tz, from, to) {
        let kind = if observance.daylight {
            "DAYLIGHT"
        } else {
            "STANDARD"
        };
        // The onset is given as a wall time in the offset in force before it.
        let onset = Utc
            .timestamp_opt(observance.onset + i64::from(observance.from), 0)
            .single()
            .unwrap_or_default()
            .naive_utc();
        lines
            .raw("BEGIN", &[], kind)
            .raw("DTSTART", &[], &onset.format("%Y%m%dT%H%M%S").to_string())
            .raw("TZOFFSETFROM", &[], &utc_offset(observance.from))
            .raw("TZOFFSETTO", &[], &utc_offset(observance.to));
        if let Some(name) = observance.name {
            lines.text("TZNAME", &name);
        }
        lines.raw("END", &[], kind);
    }
    lines.raw("END", &[], "VTIMEZONE");
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_protocol::{CoachingId, RoomId};

    fn session(id: &str, start: &str, zone: &str) -> FeedEntry {
        let start = DateTime::parse_from_rfc3339(start)
            .unwrap()
            .timestamp_millis();
        FeedEntry {
            session: CoachingSession {
                id: CoachingId::new(id).unwrap(),
                room: RoomId::new("trio-1").unwrap(),
                title: "Cycle 1, coaching; part one".into(),
                agenda: "Line one\nLine two".into(),
                start,
                duration_min: 90,
                time_zone: zone.into(),
                status: CoachingStatus::Scheduled,
                sequence: 2,
                booked_by: PersonId::new("sara.lind").unwrap(),
                updated_at: start - 86_400_000,
            },
            room_title: "Trio 1".into(),
        }
    }

    fn unfolded(text: &str) -> String {
        text.replace("\r\n ", "")
    }

    #[test]
    fn events_carry_local_times_in_their_zone() {
        let text = unfolded(&render(
            "Triad: Sara Lind",
            &[session("cs-1", "2026-12-01T15:00:00Z", "Europe/Rome")],
            "https://triad.example.org/",
        ));
        assert!(
            text.contains("DTSTART;TZID=Europe/Rome:20261201T160000\r\n"),
            "{text}"
        );
        assert!(
            text.contains("DTEND;TZID=Europe/Rome:20261201T173000\r\n"),
            "{text}"
        );
        assert!(text.contains("UID:cs-1@triad\r\n"), "{text}");
        assert!(text.contains("SEQUENCE:2\r\n"), "{text}");
        assert!(text.contains("STATUS:CONFIRMED\r\n"), "{text}");
        assert!(text.contains("DTSTAMP:20261130T150000Z\r\n"), "{text}");
        assert!(
            text.contains("SUMMARY:Cycle 1\\, coaching\\; part one\r\n"),
            "{text}"
        );
        assert!(
            text.contains("DESCRIPTION:Line one\\nLine two\r\n"),
            "{text}"
        );
        assert!(
            text.contains("URL:https://triad.example.org/#room=trio-1\r\n"),
            "{text}"
        );
        assert!(text.contains("X-WR-CALNAME:Triad: Sara Lind\r\n"), "{text}");
        assert!(text.contains(&format!("PRODID:{PRODID}\r\n")), "{text}");
        // The zone is defined once, before the events.
        assert_eq!(text.matches("BEGIN:VTIMEZONE").count(), 1);
        assert!(text.find("BEGIN:VTIMEZONE") < text.find("BEGIN:VEVENT"));
        assert!(
            text.contains("TZID:Europe/Rome\r\nBEGIN:STANDARD\r\n"),
            "{text}"
        );
        assert!(text.contains("TZOFFSETTO:+0100\r\n"), "{text}");
    }

    #[test]
    fn zone_definitions_follow_the_clock_changes() {
        // 1 March to 1 May 2027 in Rome: CET, then CEST from 28 March 01:00 UTC.
        let from = DateTime::parse_from_rfc3339("2027-03-01T00:00:00Z")
            .unwrap()
            .timestamp();
        let to = DateTime::parse_from_rfc3339("2027-05-01T00:00:00Z")
            .unwrap()
            .timestamp();
        let found = observances(chrono_tz::Europe::Rome, from, to);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(!found[0].daylight);
        assert_eq!((found[0].from, found[0].to), (3600, 3600));
        let change = &found[1];
        assert!(change.daylight);
        assert_eq!((change.from, change.to), (3600, 7200));
        assert_eq!(change.name.as_deref(), Some("CEST"));
        assert_eq!(
            change.onset,
            DateTime::parse_from_rfc3339("2027-03-28T01:00:00Z")
                .unwrap()
                .timestamp()
        );
        let mut lines = Lines::new();
        vtimezone(&mut lines, chrono_tz::Europe::Rome, from * 1000, to * 1000);
        let text = lines.finish();
        assert!(
            text.contains("BEGIN:DAYLIGHT\r\nDTSTART:20270328T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nEND:DAYLIGHT\r\n"),
            "{text}"
        );
        assert_eq!(utc_offset(-(3 * 3600 + 30 * 60)), "-0330");
        assert_eq!(utc_offset(19_800), "+0530");
    }

    #[test]
    fn cancelled_sessions_stay_marked_cancelled() {
        let mut entry = session("cs-2", "2026-12-01T15:00:00Z", "Europe/London");
        entry.session.status = CoachingStatus::Cancelled;
        let text = render("x", &[entry], "http://127.0.0.1:8080");
        assert!(text.contains("STATUS:CANCELLED\r\n"), "{text}");
        assert!(
            text.contains("DTSTART;TZID=Europe/London:20261201T150000\r\n"),
            "{text}"
        );
    }

    #[test]
    fn key_hashes_are_hex_sha256() {
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
