//! The rules of a booking: a known IANA time zone, a start in the future (given as a local
//! wall time in that zone, or as an instant with an offset), a duration and title within
//! the limits, and no overlap with another scheduled session of the same room.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use triad_protocol::limits::{
    MAX_COACHING_AGENDA_BYTES, MAX_COACHING_DAYS_AHEAD, MAX_COACHING_MINUTES,
    MAX_COACHING_TITLE_BYTES, MIN_COACHING_MINUTES,
};
use triad_protocol::{CoachingId, CoachingSession, CoachingStatus, RoomId, Timestamp};

use super::ScheduleError;

/// A request to book a session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Booking {
    /// The room (a trio or the commons).
    pub room: RoomId,
    /// The title.
    pub title: String,
    /// The agenda.
    #[serde(default)]
    pub agenda: String,
    /// The start: a local wall time in `time_zone` (`2026-12-01T16:00`), or an RFC 3339
    /// instant with an offset (`2026-12-01T15:00:00Z`).
    pub start: String,
    /// Minutes.
    pub duration_min: u32,
    /// The IANA time zone the session is booked in.
    pub time_zone: String,
}

/// A booking that passed the checks of its own fields.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The title, trimmed.
    pub title: String,
    /// The agenda, trimmed.
    pub agenda: String,
    /// The start, UTC milliseconds.
    pub start: Timestamp,
    /// Minutes.
    pub duration_min: u32,
    /// The IANA zone.
    pub time_zone: String,
}

/// A change to a booked session; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// A new title.
    #[serde(default)]
    pub title: Option<String>,
    /// A new agenda.
    #[serde(default)]
    pub agenda: Option<String>,
    /// A new start (local wall time in the time zone, or RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    /// A new duration.
    #[serde(default)]
    pub duration_min: Option<u32>,
    /// A new time zone (a local `start` is read in it).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Parses an IANA time zone name.
pub fn zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone(name.chars().take(64).collect()))
}

/// The instant of `start`: RFC 3339 with an offset, or a local wall time in `tz`.
pub fn instant(start: &str, tz: Tz) -> Result<Timestamp, ScheduleError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(start) {
        return Ok(at.timestamp_millis());
    }
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(start, format).ok())
        .ok_or_else(|| {
            ScheduleError::Invalid(format!(
                "start {start:?} is neither a local time like 2026-12-01T16:00 nor an RFC 3339 instant"
            ))
        })?;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => Ok(at.timestamp_millis()),
        chrono::LocalResult::Ambiguous(first, _) => Ok(first.timestamp_millis()),
        chrono::LocalResult::None => Err(ScheduleError::Invalid(format!(
            "{start} does not exist in {tz} (the clocks skip it); pick another time"
        ))),
    }
}

/// An instant as RFC 3339 UTC, for messages.
pub fn utc(at: Timestamp) -> String {
    Utc.timestamp_millis_opt(at).single().map_or_else(
        || at.to_string(),
        |at| at.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn check_title(title: &str) -> Result<String, ScheduleError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ScheduleError::Invalid("the title is empty".into()));
    }
    if title.len() > MAX_COACHING_TITLE_BYTES {
        return Err(ScheduleError::Invalid(format!(
            "the title is {} bytes; the limit is {MAX_COACHING_TITLE_BYTES}",
            title.len()
        )));
    }
    Ok(title.to_owned())
}

fn check_agenda(agenda: &str) -> Result<String, ScheduleError> {
    if agenda.len() > MAX_COACHING_AGENDA_BYTES {
        return Err(ScheduleError::Invalid(format!(
            "the agenda is {} bytes; the limit is {MAX_COACHING_AGENDA_BYTES}",
            agenda.len()
        )));
    }
    Ok(agenda.trim().to_owned())
}

fn check_duration(minutes: u32) -> Result<u32, ScheduleError> {
    if (MIN_COACHING_MINUTES..=MAX_COACHING_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(ScheduleError::Invalid(format!(
            "duration_min must be {MIN_COACHING_MINUTES} to {MAX_COACHING_MINUTES} minutes"
        )))
    }
}

fn check_start(start: Timestamp, now: Timestamp) -> Result<Timestamp, ScheduleError> {
    if start <= now {
        return Err(ScheduleError::InPast(format!(
            "{} UTC is not after now, {} UTC",
            utc(start),
            utc(now)
        )));
    }
    if start > now + MAX_COACHING_DAYS_AHEAD * 86_400_000 {
        return Err(ScheduleError::Invalid(format!(
            "sessions can be booked at most {MAX_COACHING_DAYS_AHEAD} days ahead"
        )));
    }
    Ok(start)
}

impl Booking {
    /// Checks the booking's own fields at `now`.
    pub fn check(&self, now: Timestamp) -> Result<Plan, ScheduleError> {
        let tz = zone(&self.time_zone)?;
        Ok(Plan {
            title: check_title(&self.title)?,
            agenda: check_agenda(&self.agenda)?,
            start: check_start(instant(&self.start, tz)?, now)?,
            duration_min: check_duration(self.duration_min)?,
            time_zone: tz.name().to_owned(),
        })
    }
}

impl Change {
    /// `session` with this change applied at `now`, its sequence raised.
    pub fn apply(
        &self,
        session: &CoachingSession,
        now: Timestamp,
    ) -> Result<CoachingSession, ScheduleError> {
        if self.title.is_none()
            && self.agenda.is_none()
            && self.start.is_none()
            && self.duration_min.is_none()
            && self.time_zone.is_none()
        {
            return Err(ScheduleError::Invalid("nothing to change".into()));
        }
        let mut next = session.clone();
        let tz = zone(self.time_zone.as_deref().unwrap_or(&session.time_zone))?;
        next.time_zone = tz.name().to_owned();
        if let Some(title) = &self.title {
            next.title = check_title(title)?;
        }
        if let Some(agenda) = &self.agenda {
            next.agenda = check_agenda(agenda)?;
        }
        if let Some(minutes) = self.duration_min {
            next.duration_min = check_duration(minutes)?;
        }
        if let Some(start) = &self.start {
            next.start = check_start(instant(start, tz)?, now)?;
        } else if next.end() <= now {
            return Err(ScheduleError::InPast("the session is over".into()));
        }
        next.sequence += 1;
        next.updated_at = now;
        Ok(next)
    }
}

/// Checks that `session` overlaps no other scheduled session among `sessions` (the one
/// with id `except`, being moved, aside).
pub fn check_free(
    sessions: &[CoachingSession],
    session: &CoachingSession,
    except: Option<&CoachingId>,
) -> Result<(), ScheduleError> {
    let clash = sessions.iter().find(|other| {
        Some(&other.id) != except
            && other.status == CoachingStatus::Scheduled
            && other.start < session.end()
            && session.start < other.end()
    });
    match clash {
        Some(other) => Err(ScheduleError::Overlap {
            title: other.title.clone(),
            start: utc(other.start),
            end: utc(other.end()),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_protocol::PersonId;

    fn booking(start: &str, tz: &str) -> Booking {
        Booking {
            room: RoomId::new("trio-1").unwrap(),
            title: "Cycle 1 coaching".into(),
            agenda: String::new(),
            start: start.into(),
            duration_min: 60,
            time_zone: tz.into(),
        }
    }

    const NOW: Timestamp = 1_795_000_000_000; // 2026-11-18

    #[test]
    fn local_wall_times_are_read_in_their_zone() {
        let plan = booking("2026-12-01T16:00", "Europe/Rome")
            .check(NOW)
            .unwrap();
        // 16:00 in Rome in winter is 15:00 UTC.
        assert_eq!(utc(plan.start), "2026-12-01 15:00");
        let plan = booking("2026-12-01T15:00:00Z", "Europe/London")
            .check(NOW)
            .unwrap();
        assert_eq!(utc(plan.start), "2026-12-01 15:00");
    }

    #[test]
    fn bad_bookings_are_refused_with_their_reason() {
        let err = booking("2026-12-01T16:00", "Europe/Atlantis")
            .check(NOW)
            .unwrap_err();
        assert!(matches!(err, ScheduleError::UnknownTimeZone(_)), "{err}");
        let err = booking("2020-01-01T16:00", "Europe/Rome")
            .check(NOW)
            .unwrap_err();
        assert!(matches!(err, ScheduleError::InPast(_)), "{err}");
        let err = booking("soon", "Europe/Rome").check(NOW).unwrap_err();
        assert!(matches!(err, ScheduleError::Invalid(_)), "{err}");
        // 02:30 on the last Sunday of March does not exist in Rome.
        let err = booking("2027-03-28T02:30", "Europe/Rome")
            .check(NOW)
            .unwrap_err();
        assert!(matches!(err, ScheduleError::Invalid(_)), "{err}");
        let mut long = booking("2026-12-01T16:00", "Europe/Rome");
        long.duration_min = 600;
        assert!(matches!(long.check(NOW), Err(ScheduleError::Invalid(_))));
    }

    fn session(id: &str, start: Timestamp, minutes: u32) -> CoachingSession {
        CoachingSession {
            id: CoachingId::new(id).unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            title: id.into(),
            agenda: String::new(),
            start,
            duration_min: minutes,
            time_zone: "Europe/Rome".into(),
            status: CoachingStatus::Scheduled,
            sequence: 0,
            booked_by: PersonId::new("sara.lind").unwrap(),
            updated_at: NOW,
        }
    }

    #[test]
    fn overlaps_are_found_and_back_to_back_is_fine() {
        let hour = 3_600_000;
        let booked = vec![session("cs-a", NOW + hour, 60)];
        let clash = session("cs-b", NOW + hour + 30 * 60_000, 60);
        assert!(matches!(
            check_free(&booked, &clash, None),
            Err(ScheduleError::Overlap { .. })
        ));
        let after = session("cs-c", NOW + 2 * hour, 60);
        assert!(check_free(&booked, &after, None).is_ok());
        // Moving a session over its own old time is not an overlap.
        let moved = session("cs-a", NOW + hour + 10 * 60_000, 60);
        assert!(check_free(&booked, &moved, Some(&moved.id)).is_ok());
        // A cancelled session frees its time.
        let mut cancelled = booked.clone();
        cancelled[0].status = CoachingStatus::Cancelled;
        assert!(check_free(&cancelled, &clash, None).is_ok());
    }
}
