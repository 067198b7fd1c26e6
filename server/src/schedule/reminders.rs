//! The reminder clock: every `interval` it looks at the scheduled sessions and, once per
//! session and per version of it (its `sequence`), tells the room's people
//!
//! - a day before (`reminder_day`, from 24 h up to an hour before the start; a session
//!   booked less than a day ahead gets none),
//! - ten minutes before (`reminder_soon`, within the last ten minutes),
//! - at the start (`started`: its call is open in the room), until its end,
//!
//! over the websocket, and by e-mail to those who want it ([`crate::mail::Mailer`]).
//! Each notice is claimed first with an insert-if-absent in the store
//! ([`Collection::Jobs`]), so with several nodes exactly one sends it, and a node that
//! restarts does not send it again. A moved session has a new `sequence`, so its reminders
//! come again for the new time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use triad_protocol::{CoachingChange, CoachingSession, CoachingStatus, Timestamp};

use super::{Schedule, audience};
use crate::mail::Mailer;
use crate::store::docs::Docs;
use crate::store::{Collection, StoreError, now_ms};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The notice due for `session` at `now`, if any.
pub fn due(session: &CoachingSession, now: Timestamp) -> Option<CoachingChange> {
    if session.status != CoachingStatus::Scheduled || now >= session.end() {
        return None;
    }
    let until = session.start - now;
    if until <= 0 {
        Some(CoachingChange::Started)
    } else if until <= 10 * MINUTE {
        Some(CoachingChange::ReminderSoon)
    } else if until <= 24 * HOUR && until > HOUR && session.start - session.updated_at > 24 * HOUR {
        Some(CoachingChange::ReminderDay)
    } else {
        None
    }
}

fn change_name(change: CoachingChange) -> &'static str {
    match change {
        CoachingChange::Booked => "booked",
        CoachingChange::Moved => "moved",
        CoachingChange::Cancelled => "cancelled",
        CoachingChange::ReminderDay => "reminder_day",
        CoachingChange::ReminderSoon => "reminder_soon",
        CoachingChange::Started => "started",
    }
}

/// Starts the clock; it stops at `stop` (await the handle before closing the store).
pub fn start(
    schedule: Arc<Schedule>,
    mailer: Arc<Mailer>,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if let Err(err) = tick(&schedule, &mailer, now_ms()).await {
                tracing::warn!(error = %err, "the reminder clock could not read the schedule");
            }
        }
    })
}

/// One look at the schedule at `now`: sends what is due and not yet sent.
pub async fn tick(schedule: &Schedule, mailer: &Mailer, now: Timestamp) -> Result<(), StoreError> {
    let store = schedule.store().clone();
    let jobs: Docs<'_, Timestamp> = Docs::new(store.as_ref(), Collection::Jobs);
    for session in schedule.all().await? {
        let Some(change) = due(&session, now) else {
            continue;
        };
        let key = format!(
            "coaching:{}:{}:{}",
            session.id,
            session.sequence,
            change_name(change)
        );
        if !jobs.insert_new(&key, &now).await? {
            continue;
        }
        let Some(room) = store.room(&session.room).await? else {
            continue;
        };
        tracing::info!(coaching = %session.id, change = change_name(change), "coaching notice");
        schedule.announce(&room, change, &session, None);
        for person in audience(&room) {
            let Some(info) = store.person(&person).await? else {
                continue;
            };
            if let Err(err) = mailer.reminder(&info, &session, &room.title, change).await {
                tracing::warn!(%person, error = %err, "a reminder e-mail was not sent");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_protocol::{CoachingId, PersonId, RoomId};

    fn session(start: Timestamp, booked_at: Timestamp) -> CoachingSession {
        CoachingSession {
            id: CoachingId::new("cs-1").unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            title: "Coaching".into(),
            agenda: String::new(),
            start,
            duration_min: 60,
            time_zone: "Europe/Rome".into(),
            status: CoachingStatus::Scheduled,
            sequence: 0,
            booked_by: PersonId::new("sara.lind").unwrap(),
            updated_at: booked_at,
        }
    }

    #[test]
    fn notices_fall_due_at_their_times() {
        let start = 100 * 24 * HOUR;
        let s = session(start, start - 7 * 24 * HOUR);
        assert_eq!(due(&s, start - 25 * HOUR), None);
        assert_eq!(
            due(&s, start - 23 * HOUR),
            Some(CoachingChange::ReminderDay)
        );
        assert_eq!(due(&s, start - 30 * MINUTE), None);
        assert_eq!(
            due(&s, start - 9 * MINUTE),
            Some(CoachingChange::ReminderSoon)
        );
        assert_eq!(due(&s, start), Some(CoachingChange::Started));
        assert_eq!(due(&s, start + 59 * MINUTE), Some(CoachingChange::Started));
        assert_eq!(due(&s, start + 60 * MINUTE), None);
    }

    #[test]
    fn a_session_booked_within_a_day_gets_no_day_reminder() {
        let start = 100 * 24 * HOUR;
        let s = session(start, start - 5 * HOUR);
        assert_eq!(due(&s, start - 4 * HOUR), None);
        assert_eq!(
            due(&s, start - 5 * MINUTE),
            Some(CoachingChange::ReminderSoon)
        );
    }

    #[test]
    fn cancelled_sessions_get_nothing() {
        let start = 100 * 24 * HOUR;
        let mut s = session(start, start - 7 * 24 * HOUR);
        s.status = CoachingStatus::Cancelled;
        assert_eq!(due(&s, start - 5 * MINUTE), None);
    }
}
