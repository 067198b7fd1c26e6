//! Scheduled coaching sessions and the notes members pin as key learning.
//!
//! A coaching session belongs to one room (a trio, or the commons) and has a start in UTC
//! plus the IANA time zone it was booked in; every client shows it in the viewer's own zone.
//! Members are told when a session is booked, moved or cancelled, reminded a day and ten
//! minutes before, and told when it starts (its call is then open in the room). Each change
//! raises `sequence`, which calendar programs use to apply updates in order.

use serde::{Deserialize, Serialize};

use crate::ids::{CoachingId, PersonId, RoomId, Seq, Timestamp};

/// Whether a session will take place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CoachingStatus {
    /// Booked (possibly moved since).
    Scheduled,
    /// Cancelled; kept so calendars and reports show it.
    Cancelled,
}

/// A scheduled coaching session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CoachingSession {
    /// The session.
    pub id: CoachingId,
    /// The room it is for (a trio room or the commons).
    pub room: RoomId,
    /// Its title.
    pub title: String,
    /// What it is about (may be empty).
    pub agenda: String,
    /// When it starts, milliseconds since the Unix epoch (UTC).
    pub start: Timestamp,
    /// How long it lasts, in minutes.
    pub duration_min: u32,
    /// The IANA time zone it was booked in, e.g. `Europe/Rome`.
    pub time_zone: String,
    /// Scheduled or cancelled.
    pub status: CoachingStatus,
    /// 0 when booked, raised by each move or cancellation.
    pub sequence: u32,
    /// Who booked it.
    pub booked_by: PersonId,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl CoachingSession {
    /// When it ends, milliseconds since the Unix epoch.
    pub fn end(&self) -> Timestamp {
        self.start + i64::from(self.duration_min) * 60_000
    }
}

/// Why a session's members are told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CoachingChange {
    /// It was booked.
    Booked,
    /// Its time, duration, title or agenda changed.
    Moved,
    /// It was cancelled.
    Cancelled,
    /// It starts in a day.
    ReminderDay,
    /// It starts in ten minutes.
    ReminderSoon,
    /// It starts now: its call is open in the room.
    Started,
}

/// A message pinned as key learning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Pin {
    /// The room.
    pub room: RoomId,
    /// The pinned message.
    pub seq: Seq,
    /// Who pinned it.
    pub pinned_by: PersonId,
    /// When.
    pub pinned_at: Timestamp,
}
