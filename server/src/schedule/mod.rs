//! Coaching sessions: booking, moving and cancelling them with their rules ([`rules`]),
//! telling the members of the room, reminding them ([`reminders`]), the per-person
//! iCalendar feed ([`calendar`], written through [`ics`]), and who attended, from the call records ([`attendance`]).
//!
//! A room's sessions are one document ([`Collection::Coachings`], keyed by room), changed by
//! compare-and-set, so two bookings racing for the same hour cannot both land, whichever
//! nodes take them. Sessions are kept after they end: they feed calendars and cycle
//! reports. A cancelled one is kept until [`CANCELLED_KEPT_DAYS`] after it would have ended,
//! so calendar clients see the cancellation, then dropped the next time the room's
//! document is written.
//!
//! A room holds at most [`MAX_UPCOMING_COACHINGS_PER_ROOM`] sessions that have not ended,
//! cancelled ones included (so booking and cancelling cannot grow the document or the
//! feed); a move of an ended session into the future is checked against it too.

pub mod attendance;
pub mod calendar;
pub mod ics;
pub mod reminders;
pub mod rules;

use std::sync::Arc;

use triad_protocol::{
    CoachingChange, CoachingId, CoachingSession, CoachingStatus, ErrorCode, PersonId, PersonInfo,
    Role, RoomId, RoomKind, ServerFrame, ServerMessage, Timestamp,
};

use triad_protocol::limits::MAX_UPCOMING_COACHINGS_PER_ROOM;

/// Days a cancelled session is kept after it would have ended: long enough for calendar
/// clients, which poll feeds every few hours to days, to see the cancellation.
pub const CANCELLED_KEPT_DAYS: i64 = 30;

/// Whether the room's `sessions` leave no room for one more that has not ended at `now`
/// (`except`: the session being changed, not counted).
fn full(sessions: &[CoachingSession], now: Timestamp, except: Option<&CoachingId>) -> bool {
    let open = sessions
        .iter()
        .filter(|s| s.end() > now && Some(&s.id) != except)
        .count();
    open >= MAX_UPCOMING_COACHINGS_PER_ROOM
}

/// Drops the cancelled sessions that ended more than [`CANCELLED_KEPT_DAYS`] before `now`.
fn purge(sessions: &mut Vec<CoachingSession>, now: Timestamp) {
    let horizon = now - CANCELLED_KEPT_DAYS * 86_400_000;
    sessions.retain(|s| s.status != CoachingStatus::Cancelled || s.end() > horizon);
}

use crate::auth::{Access, access_to};
use crate::hub::Hub;
use crate::store::docs::{Docs, UpdateError};
use crate::store::{Collection, RoomRecord, SharedStore, StoreError, now_ms};

pub use rules::{Booking, Change};

/// Why a booking, move or cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The session would start in the past.
    #[error("the session would start in the past ({0})")]
    InPast(String),
    /// The room has another session at that time.
    #[error("the room already has \"{title}\" from {start} to {end} (UTC)")]
    Overlap {
        /// The other session's title.
        title: String,
        /// Its start, RFC 3339 UTC.
        start: String,
        /// Its end.
        end: String,
    },
    /// The time zone is not an IANA name.
    #[error("unknown time zone {0:?}; use an IANA name such as Europe/Rome")]
    UnknownTimeZone(String),
    /// No such session.
    #[error("no coaching session {0}")]
    NoCoaching(CoachingId),
    /// The session was cancelled.
    #[error("coaching session {0} was cancelled")]
    Cancelled(CoachingId),
    /// The room does not exist.
    #[error("no room {0}")]
    UnknownRoom(RoomId),
    /// The person may not book for that room.
    #[error("{0}")]
    Forbidden(String),
    /// A field is missing or out of its limits.
    #[error("{0}")]
    Invalid(String),
    /// The room holds as many upcoming sessions as it may.
    #[error(
        "{0} already has {MAX_UPCOMING_COACHINGS_PER_ROOM} sessions that have not ended (cancelled ones included), the most a room may hold"
    )]
    TooMany(RoomId),
    /// Sessions are not booked in this room (the staff room).
    #[error("coaching sessions are booked in a trio room or the commons, not in {0}")]
    NotBookable(RoomId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScheduleError {
    /// The protocol code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InPast(_) => ErrorCode::CoachingInPast,
            Self::Overlap { .. } => ErrorCode::CoachingOverlap,
            Self::UnknownTimeZone(_) => ErrorCode::UnknownTimeZone,
            Self::NoCoaching(_) => ErrorCode::NoCoaching,
            Self::Cancelled(_) => ErrorCode::CoachingCancelled,
            Self::UnknownRoom(_) => ErrorCode::UnknownRoom,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::TooMany(_) => ErrorCode::TooManyCoachings,
            Self::NotBookable(_) => ErrorCode::NotBookable,
            Self::Store(StoreError::UnknownRoom(_)) => ErrorCode::UnknownRoom,
            Self::Store(_) => ErrorCode::StoreUnavailable,
        }
    }
}

impl From<UpdateError<ScheduleError>> for ScheduleError {
    fn from(err: UpdateError<ScheduleError>) -> Self {
        match err {
            UpdateError::Refused(err) => err,
            UpdateError::Store(err) => Self::Store(err),
        }
    }
}

/// Who is told about a room's sessions: its members, its assigned moderators (joined or
/// not: they run the sessions) and, for the commons, everyone.
pub fn audience(room: &RoomRecord) -> Vec<PersonId> {
    let mut people = room.members.clone();
    for moderator in &room.moderators {
        if !people.contains(moderator) {
            people.push(moderator.clone());
        }
    }
    people
}

/// Whether `person` sees the sessions of `room`: the coordinator every room; others the
/// rooms they are in or assigned to.
pub fn sees(person: &PersonInfo, room: &RoomRecord) -> bool {
    person.role == Role::Coordinator || access_to(room, &person.id) != Access::None
}

/// Whether `person` may book, move and cancel sessions of `room`: the coordinator
/// in any room that takes sessions; a moderator in the trios assigned to them and in the commons; a head in their
/// own trio.
pub fn may_book(person: &PersonInfo, room: &RoomRecord) -> bool {
    match person.role {
        Role::Coordinator => room.kind != RoomKind::Staff,
        Role::Moderator => {
            room.kind == RoomKind::Commons
                || (room.kind == RoomKind::Trio && room.moderators.contains(&person.id))
        }
        Role::Head => room.kind == RoomKind::Trio && room.members.contains(&person.id),
    }
}

/// Coaching sessions: the rules, the store, and telling people.
pub struct Schedule {
    store: SharedStore,
    hub: Arc<Hub>,
}

impl Schedule {
    /// The schedule kept in `store`; changes are pushed through `hub`.
    pub fn new(store: SharedStore, hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(Self { store, hub })
    }

    fn docs(&self) -> Docs<'_, Vec<CoachingSession>> {
        Docs::new(self.store.as_ref(), Collection::Coachings)
    }

    /// The store the schedule keeps its sessions in.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    async fn room_for(&self, by: &PersonInfo, room: &RoomId) -> Result<RoomRecord, ScheduleError> {
        let record = self
            .store
            .room(room)
            .await?
            .ok_or_else(|| ScheduleError::UnknownRoom(room.clone()))?;
        if record.kind == RoomKind::Staff {
            return Err(ScheduleError::NotBookable(room.clone()));
        }
        if !may_book(by, &record) {
            let why = match (by.role, record.kind) {
                (Role::Head, RoomKind::Trio) => format!("{room} is not your trio"),
                (Role::Moderator, _) => format!("you are not a moderator of {room}"),
                _ => format!("sessions of {room} are booked by its moderators"),
            };
            return Err(ScheduleError::Forbidden(why));
        }
        Ok(record)
    }

    /// The room of session `id`, if `by` may change its sessions. A session of a room `by`
    /// does not see is `NoCoaching`, as for reading it: its existence is not revealed.
    async fn room_of(&self, by: &PersonInfo, id: &CoachingId) -> Result<RoomRecord, ScheduleError> {
        let current = self
            .find(id)
            .await?
            .ok_or_else(|| ScheduleError::NoCoaching(id.clone()))?;
        let seen = self
            .store
            .room(&current.room)
            .await?
            .is_some_and(|room| sees(by, &room));
        if !seen {
            return Err(ScheduleError::NoCoaching(id.clone()));
        }
        self.room_for(by, &current.room).await
    }

    /// Books a session; tells the room's people.
    pub async fn book(
        &self,
        by: &PersonInfo,
        booking: Booking,
    ) -> Result<CoachingSession, ScheduleError> {
        let now = now_ms();
        let plan = booking.check(now)?;
        let record = self.room_for(by, &booking.room).await?;
        let session = CoachingSession {
            id: CoachingId::new(format!("cs-{:016x}", rand::random::<u64>()))
                .map_err(|err| ScheduleError::Invalid(err.to_string()))?,
            room: booking.room.clone(),
            title: plan.title,
            agenda: plan.agenda,
            start: plan.start,
            duration_min: plan.duration_min,
            time_zone: plan.time_zone,
            status: CoachingStatus::Scheduled,
            sequence: 0,
            booked_by: by.id.clone(),
            updated_at: now,
        };
        let booked = session.clone();
        self.docs()
            .update(record.id.as_str(), move |sessions| {
                let mut sessions = sessions.unwrap_or_default();
                rules::check_free(&sessions, &booked, None)?;
                if full(&sessions, now, None) {
                    return Err(ScheduleError::TooMany(booked.room.clone()));
                }
                purge(&mut sessions, now);
                sessions.push(booked.clone());
                sessions.sort_by_key(|s| s.start);
                Ok((Some(sessions), ()))
            })
            .await?;
        tracing::info!(coaching = %session.id, room = %session.room, by = %by.id, "coaching session booked");
        self.announce(&record, CoachingChange::Booked, &session, None);
        Ok(session)
    }

    /// Moves a session or changes its title, agenda or duration; tells the room's people.
    pub async fn change(
        &self,
        by: &PersonInfo,
        id: &CoachingId,
        change: Change,
    ) -> Result<CoachingSession, ScheduleError> {
        let now = now_ms();
        let record = self.room_of(by, id).await?;
        let id_owned = id.clone();
        let (session, previous) = self
            .docs()
            .update(record.id.as_str(), move |sessions| {
                let mut sessions = sessions.unwrap_or_default();
                let at = sessions
                    .iter()
                    .position(|s| s.id == id_owned)
                    .ok_or_else(|| ScheduleError::NoCoaching(id_owned.clone()))?;
                let old = sessions[at].clone();
                if old.status == CoachingStatus::Cancelled {
                    return Err(ScheduleError::Cancelled(id_owned.clone()));
                }
                let new = change.apply(&old, now)?;
                rules::check_free(&sessions, &new, Some(&id_owned))?;
                if old.end() <= now && new.end() > now && full(&sessions, now, Some(&id_owned)) {
                    return Err(ScheduleError::TooMany(new.room.clone()));
                }
                sessions[at] = new.clone();
                purge(&mut sessions, now);
                sessions.sort_by_key(|s| s.start);
                Ok((Some(sessions), (new, old.start)))
            })
            .await?;
        tracing::info!(coaching = %session.id, by = %by.id, "coaching session changed");
        self.announce(&record, CoachingChange::Moved, &session, Some(previous));
        Ok(session)
    }

    /// Cancels a session (kept, marked cancelled); tells the room's people.
    pub async fn cancel(
        &self,
        by: &PersonInfo,
        id: &CoachingId,
    ) -> Result<CoachingSession, ScheduleError> {
        let now = now_ms();
        let record = self.room_of(by, id).await?;
        let id_owned = id.clone();
        let session = self
            .docs()
            .update(record.id.as_str(), move |sessions| {
                let mut sessions = sessions.unwrap_or_default();
                let session = sessions
                    .iter_mut()
                    .find(|s| s.id == id_owned)
                    .ok_or_else(|| ScheduleError::NoCoaching(id_owned.clone()))?;
                if session.status == CoachingStatus::Cancelled {
                    return Err(ScheduleError::Cancelled(id_owned.clone()));
                }
                session.status = CoachingStatus::Cancelled;
                session.sequence += 1;
                session.updated_at = now;
                let cancelled = session.clone();
                purge(&mut sessions, now);
                Ok((Some(sessions), cancelled))
            })
            .await?;
        tracing::info!(coaching = %session.id, by = %by.id, "coaching session cancelled");
        self.announce(&record, CoachingChange::Cancelled, &session, None);
        Ok(session)
    }

    /// One session.
    pub async fn find(&self, id: &CoachingId) -> Result<Option<CoachingSession>, StoreError> {
        Ok(self.all().await?.into_iter().find(|s| &s.id == id))
    }

    /// The sessions of one room, by start.
    pub async fn of_room(&self, room: &RoomId) -> Result<Vec<CoachingSession>, StoreError> {
        Ok(self.docs().get(room.as_str()).await?.unwrap_or_default())
    }

    /// Every session of every room, by start.
    pub async fn all(&self) -> Result<Vec<CoachingSession>, StoreError> {
        let mut all: Vec<CoachingSession> = self
            .docs()
            .all()
            .await?
            .into_iter()
            .flat_map(|(_, sessions)| sessions)
            .collect();
        all.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        Ok(all)
    }

    /// The sessions of `rooms` that have not ended at `now`, soonest first.
    pub async fn upcoming(
        &self,
        rooms: &[RoomId],
        now: Timestamp,
    ) -> Result<Vec<CoachingSession>, StoreError> {
        let mut found = Vec::new();
        for room in rooms {
            found.extend(
                self.of_room(room)
                    .await?
                    .into_iter()
                    .filter(|s| s.end() > now),
            );
        }
        found.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        Ok(found)
    }

    /// Pushes `coaching` to everyone the room's sessions concern, on every node.
    pub fn announce(
        &self,
        room: &RoomRecord,
        change: CoachingChange,
        session: &CoachingSession,
        previous_start: Option<Timestamp>,
    ) {
        let frame = ServerFrame::push(ServerMessage::Coaching {
            change,
            coaching: session.clone(),
            previous_start,
        });
        self.hub.to_people(&audience(room), &frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: usize, start: Timestamp, status: CoachingStatus) -> CoachingSession {
        CoachingSession {
            id: CoachingId::new(format!("cs-{n}")).unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            title: "Session".into(),
            agenda: String::new(),
            start,
            duration_min: 60,
            time_zone: "Europe/Rome".into(),
            status,
            sequence: 0,
            booked_by: PersonId::new("sara.moderator").unwrap(),
            updated_at: 0,
        }
    }

    #[test]
    fn sessions_not_ended_count_whatever_their_status_and_old_cancelled_ones_go() {
        let day = 86_400_000;
        let now = 1_000 * day;
        let mut sessions: Vec<CoachingSession> = (0..MAX_UPCOMING_COACHINGS_PER_ROOM)
            .map(|n| session(n, now + day, CoachingStatus::Cancelled))
            .collect();
        assert!(full(&sessions, now, None));
        // The session being changed is not counted against itself.
        let changed = sessions[0].id.clone();
        assert!(!full(&sessions, now, Some(&changed)));
        sessions.truncate(MAX_UPCOMING_COACHINGS_PER_ROOM - 1);
        assert!(!full(&sessions, now, None));

        let old = CANCELLED_KEPT_DAYS * day + day;
        let mut past = vec![
            session(1, now - old, CoachingStatus::Cancelled),
            session(2, now - old, CoachingStatus::Scheduled),
            session(3, now - 2 * day, CoachingStatus::Cancelled),
        ];
        purge(&mut past, now);
        let kept: Vec<&str> = past.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(kept, ["cs-2", "cs-3"]);
    }
}
