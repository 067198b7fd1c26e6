//! Who attended a coaching session, and for how long, from the call records of its room.
//!
//! A session's call is whatever call of its room people were in around the booked time: the
//! window runs from [`EARLY`] before the start to [`LATE`] after the end, so a call opened a
//! little early or running over still counts, and a call held on another day does not. Each
//! person's stretches in the room's calls are clipped to that window and merged (two devices
//! at once count once), then rounded to whole minutes; anyone who was there at all gets at
//! least one minute. A stretch still open counts until its call ended or, for a call still
//! going on, until now. A cancelled session has no attendance.

use std::collections::BTreeMap;

use triad_protocol::{CoachingSession, CoachingStatus, PersonId, Timestamp};

use crate::store::CallRecord;

/// How long before a session's start its call may open and still count, in milliseconds.
pub const EARLY: Timestamp = 15 * 60_000;

/// How long after a session's end its call may go on and still count, in milliseconds.
pub const LATE: Timestamp = 30 * 60_000;

/// One person's attendance of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attended {
    /// Who.
    pub person: PersonId,
    /// When they first joined the session's call (it may be before the window opened).
    pub first_joined: Timestamp,
    /// Their time in the call within the window, in whole minutes (at least 1).
    pub minutes: u32,
}

/// When a person first joined, and their time spans `[from, to)` within a window.
type Stretches = (Timestamp, Vec<(Timestamp, Timestamp)>);

/// The window `[from, to)` in which a session's call counts.
pub fn window(session: &CoachingSession) -> (Timestamp, Timestamp) {
    (
        session.start.saturating_sub(EARLY),
        session.end().saturating_add(LATE),
    )
}

/// Who attended `session` and for how long, from the call records of its room (records of
/// other rooms are ignored), ordered by who joined first.
pub fn attendance(
    session: &CoachingSession,
    records: &[CallRecord],
    now: Timestamp,
) -> Vec<Attended> {
    if session.status == CoachingStatus::Cancelled {
        return Vec::new();
    }
    let (from, to) = window(session);
    // Per person: when they first joined, and their stretches clipped to the window.
    let mut stretches: BTreeMap<&PersonId, Stretches> = BTreeMap::new();
    for record in records.iter().filter(|r| r.room == session.room) {
        let call_end = record.ended_at.unwrap_or(now).min(now);
        for stretch in &record.attendance {
            let left = stretch.left_at.unwrap_or(call_end).min(call_end);
            let (start, end) = (stretch.joined_at.max(from), left.min(to));
            if start >= end {
                continue;
            }
            let entry = stretches
                .entry(&stretch.person)
                .or_insert((stretch.joined_at, Vec::new()));
            entry.0 = entry.0.min(stretch.joined_at);
            entry.1.push((start, end));
        }
    }
    let mut attended: Vec<Attended> = stretches
        .into_iter()
        .map(|(person, (first_joined, spans))| Attended {
            person: person.clone(),
            first_joined,
            minutes: whole_minutes(merged_length(spans)),
        })
        .collect();
    attended.sort_by(|a, b| (a.first_joined, &a.person).cmp(&(b.first_joined, &b.person)));
    attended
}

/// The total length of the union of `spans`, in milliseconds.
fn merged_length(mut spans: Vec<(Timestamp, Timestamp)>) -> Timestamp {
    spans.sort_unstable();
    let mut total = 0;
    let mut current: Option<(Timestamp, Timestamp)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total
}

/// Milliseconds rounded to the nearest minute, at least 1 for any time at all.
fn whole_minutes(ms: Timestamp) -> u32 {
    if ms <= 0 {
        return 0;
    }
    let minutes = (ms + 30_000) / 60_000;
    u32::try_from(minutes.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use triad_protocol::{CallId, CoachingId, RoomId};

    use super::*;
    use crate::store::Attendance;

    const MIN: Timestamp = 60_000;
    /// 2025-03-04 14:00 UTC.
    const START: Timestamp = 1_741_096_800_000;

    fn person(id: &str) -> PersonId {
        PersonId::new(id).unwrap()
    }

    fn session(status: CoachingStatus) -> CoachingSession {
        CoachingSession {
            id: CoachingId::new("cs-1").unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            title: "Feedback that lands".into(),
            agenda: String::new(),
            start: START,
            duration_min: 60,
            time_zone: "Europe/Rome".into(),
            status,
            sequence: 0,
            booked_by: person("sara.moderator"),
            updated_at: START - 7 * 24 * 60 * MIN,
        }
    }

    fn stretch(who: &str, joined: Timestamp, left: Option<Timestamp>) -> Attendance {
        Attendance {
            person: person(who),
            joined_at: joined,
            left_at: left,
        }
    }

    fn call(
        room: &str,
        started: Timestamp,
        ended: Option<Timestamp>,
        who: Vec<Attendance>,
    ) -> CallRecord {
        CallRecord {
            call: CallId(format!("call-{started}")),
            room: RoomId::new(room).unwrap(),
            started_by: person("sara.moderator"),
            started_at: started,
            ended_at: ended,
            attendance: who,
        }
    }

    fn minutes(attended: &[Attended]) -> Vec<(&str, u32)> {
        attended
            .iter()
            .map(|a| (a.person.as_str(), a.minutes))
            .collect()
    }

    #[test]
    fn two_of_three_heads_attend() {
        let record = call(
            "trio-1",
            START - 5 * MIN,
            Some(START + 62 * MIN),
            vec![
                stretch("anna.jensen", START - 5 * MIN, Some(START + 62 * MIN)),
                stretch("marco.rossi", START + 2 * MIN, Some(START + 40 * MIN)),
            ],
        );
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[record],
            START + 120 * MIN,
        );
        assert_eq!(
            minutes(&attended),
            vec![("anna.jensen", 67), ("marco.rossi", 38)]
        );
        assert_eq!(attended[0].first_joined, START - 5 * MIN);
        assert!(attended.iter().all(|a| a.person.as_str() != "rhian.evans"));
    }

    #[test]
    fn a_person_who_left_and_came_back_has_their_stretches_summed() {
        let record = call(
            "trio-1",
            START,
            Some(START + 60 * MIN),
            vec![
                stretch("rhian.evans", START, Some(START + 20 * MIN)),
                stretch("rhian.evans", START + 30 * MIN, Some(START + 55 * MIN)),
                // A second device overlapping the first counts once.
                stretch("rhian.evans", START + 50 * MIN, Some(START + 55 * MIN)),
            ],
        );
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[record],
            START + 120 * MIN,
        );
        assert_eq!(minutes(&attended), vec![("rhian.evans", 45)]);
    }

    #[test]
    fn open_stretches_count_until_the_call_ends_or_now_and_are_clipped_to_the_window() {
        let ended = call(
            "trio-1",
            START - 40 * MIN,
            Some(START + 100 * MIN),
            vec![stretch("anna.jensen", START - 40 * MIN, None)],
        );
        // Window: START-15 .. START+90.
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[ended],
            START + 200 * MIN,
        );
        assert_eq!(minutes(&attended), vec![("anna.jensen", 105)]);
        assert_eq!(attended[0].first_joined, START - 40 * MIN);

        let going_on = call(
            "trio-1",
            START,
            None,
            vec![stretch("marco.rossi", START, None)],
        );
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[going_on],
            START + 10 * MIN,
        );
        assert_eq!(minutes(&attended), vec![("marco.rossi", 10)]);

        let brief = call(
            "trio-1",
            START,
            Some(START + 10_000),
            vec![stretch("marco.rossi", START, Some(START + 10_000))],
        );
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[brief],
            START + 200 * MIN,
        );
        assert_eq!(
            minutes(&attended),
            vec![("marco.rossi", 1)],
            "there at all: one minute"
        );
    }

    #[test]
    fn calls_outside_the_window_or_in_another_room_do_not_count() {
        let day_before = call(
            "trio-1",
            START - 24 * 60 * MIN,
            Some(START - 23 * 60 * MIN),
            vec![stretch(
                "anna.jensen",
                START - 24 * 60 * MIN,
                Some(START - 23 * 60 * MIN),
            )],
        );
        let too_late = call(
            "trio-1",
            START + 95 * MIN,
            Some(START + 120 * MIN),
            vec![stretch(
                "anna.jensen",
                START + 95 * MIN,
                Some(START + 120 * MIN),
            )],
        );
        let elsewhere = call(
            "trio-2",
            START,
            Some(START + 60 * MIN),
            vec![stretch("lars.nielsen", START, Some(START + 60 * MIN))],
        );
        let attended = attendance(
            &session(CoachingStatus::Scheduled),
            &[day_before, too_late, elsewhere],
            START + 200 * MIN,
        );
        assert!(attended.is_empty(), "{attended:?}");
    }

    #[test]
    fn a_cancelled_session_has_no_attendance() {
        let record = call(
            "trio-1",
            START,
            Some(START + 60 * MIN),
            vec![stretch("anna.jensen", START, Some(START + 60 * MIN))],
        );
        let attended = attendance(
            &session(CoachingStatus::Cancelled),
            &[record],
            START + 120 * MIN,
        );
        assert!(attended.is_empty());
    }
}
