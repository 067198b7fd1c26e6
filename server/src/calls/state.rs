//! A call's state: its participants in join order (each makes the offer to every one
//! before it), their media flags and connection, and its record of attendance. Plain data
//! and transitions; [`super::Calls`] holds it under the call's lock and does the pushing.

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;
use triad_protocol::{
    CallChange, CallChangeKind, CallId, CallParticipant, CallState, PersonId, RoomId, SessionId,
    Timestamp, limits,
};

use crate::hub::{Outbox, SessionKey, TokenBucket};
use crate::store::{Attendance, CallRecord};

/// The id a session has on the wire (as in its welcome).
pub fn session_id(key: SessionKey) -> SessionId {
    SessionId(format!("s{key}"))
}

/// A call and its lock.
pub struct CallCell {
    /// The call.
    pub id: CallId,
    /// Its room.
    pub room: RoomId,
    /// Its state.
    pub call: Mutex<Call>,
}

impl CallCell {
    /// Locks the call's state (never held across an `.await`).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Call> {
        self.call.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One participant: a person through one session.
pub struct Participant {
    /// The session's key on this node.
    pub key: SessionKey,
    /// Who.
    pub person: PersonId,
    /// The session's outbox; `None` while the connection is lost (the grace period).
    pub outbox: Option<Outbox>,
    /// Microphone on.
    pub mic: bool,
    /// Camera on.
    pub camera: bool,
    /// When they joined (kept by a resume).
    pub joined_at: Timestamp,
    /// When the connection was lost, while it is.
    pub lost_at: Option<Timestamp>,
    /// Counts losses and takeovers, so a grace timer acts only on the loss it was for.
    pub generation: u64,
    /// The session's signalling rate.
    pub signals: TokenBucket,
    /// Stops this participant's credential refresh.
    pub stop: CancellationToken,
    /// Their stretch in the call's attendance.
    pub attendance: usize,
}

impl Participant {
    /// A participant joining now through `outbox`.
    pub fn new(outbox: &Outbox, joined_at: Timestamp, attendance: usize) -> Self {
        Self {
            key: outbox.key(),
            person: outbox.person().clone(),
            outbox: Some(outbox.clone()),
            mic: true,
            camera: true,
            joined_at,
            lost_at: None,
            generation: 0,
            signals: TokenBucket::new(limits::SIGNAL_RATE_PER_SECOND, limits::SIGNAL_BURST),
            stop: CancellationToken::new(),
            attendance,
        }
    }

    /// As the protocol shows it.
    pub fn info(&self) -> CallParticipant {
        CallParticipant {
            session: session_id(self.key),
            person: self.person.clone(),
            mic: self.mic,
            camera: self.camera,
            joined_at: self.joined_at,
            connected: self.outbox.is_some(),
        }
    }
}

/// A call's state.
pub struct Call {
    /// Who started it.
    pub started_by: PersonId,
    /// When.
    pub started_at: Timestamp,
    /// The participants, in join order.
    pub participants: Vec<Participant>,
    /// Every stretch of time someone spent in the call.
    pub attendance: Vec<Attendance>,
    /// When it ended, once it has.
    pub ended_at: Option<Timestamp>,
    /// The latest `joined_at` given, so each is later than the one before.
    last_joined_at: Timestamp,
}

impl Call {
    /// A call started now by `outbox`'s person, who is its first participant.
    pub fn start(outbox: &Outbox, now: Timestamp) -> Self {
        crate::metrics::call_started();
        let mut call = Self {
            started_by: outbox.person().clone(),
            started_at: now,
            participants: Vec::new(),
            attendance: Vec::new(),
            ended_at: None,
            last_joined_at: now - 1,
        };
        call.add(outbox, now);
        call
    }

    /// The position of a session's participant.
    pub fn position(&self, key: SessionKey) -> Option<usize> {
        self.participants.iter().position(|p| p.key == key)
    }

    /// The position of a person's participant.
    pub fn position_of(&self, person: &PersonId) -> Option<usize> {
        self.participants.iter().position(|p| &p.person == person)
    }

    /// The participant a session id names.
    pub fn by_session(&self, session: &SessionId) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| &session_id(p.key) == session)
    }

    /// Whether the call has room for one more.
    pub fn is_full(&self) -> bool {
        self.participants.len() >= limits::MAX_CALL_PARTICIPANTS
    }

    /// Adds `outbox`'s session at the end; returns its position.
    pub fn add(&mut self, outbox: &Outbox, now: Timestamp) -> usize {
        let joined_at = now.max(self.last_joined_at + 1);
        self.last_joined_at = joined_at;
        self.attendance.push(Attendance {
            person: outbox.person().clone(),
            joined_at,
            left_at: None,
        });
        let participant = Participant::new(outbox, joined_at, self.attendance.len() - 1);
        self.participants.push(participant);
        crate::metrics::call_participant_joined();
        self.participants.len() - 1
    }

    /// Removes a participant; its time in the call ends at `now`, or when its connection
    /// was lost.
    pub fn remove(&mut self, position: usize, now: Timestamp) -> Participant {
        let participant = self.participants.remove(position);
        crate::metrics::call_participant_left();
        participant.stop.cancel();
        if let Some(stretch) = self.attendance.get_mut(participant.attendance) {
            stretch.left_at = Some(participant.lost_at.unwrap_or(now));
        }
        participant
    }

    /// Gives a participant's place to a new session of the same person (a resume); returns
    /// the old session's key.
    pub fn take_over(&mut self, position: usize, outbox: &Outbox) -> SessionKey {
        let participant = &mut self.participants[position];
        let old = participant.key;
        participant.stop.cancel();
        participant.stop = CancellationToken::new();
        participant.key = outbox.key();
        participant.outbox = Some(outbox.clone());
        participant.lost_at = None;
        participant.generation += 1;
        old
    }

    /// Marks a participant's connection lost at `now`; returns the generation a grace
    /// timer must match.
    pub fn lose(&mut self, position: usize, now: Timestamp) -> u64 {
        let participant = &mut self.participants[position];
        participant.stop.cancel();
        participant.outbox = None;
        participant.lost_at = Some(now);
        participant.generation += 1;
        participant.generation
    }

    /// Ends the call at `now`: every open stretch of attendance closes.
    pub fn end(&mut self, now: Timestamp) {
        for position in (0..self.participants.len()).rev() {
            self.remove(position, now);
        }
        self.ended_at = Some(now);
        crate::metrics::call_ended();
    }

    /// The call as the protocol shows it, announcing `change`.
    pub fn state(
        &self,
        id: &CallId,
        room: &RoomId,
        change: Option<(CallChangeKind, &PersonId)>,
    ) -> CallState {
        CallState {
            id: id.clone(),
            room: room.clone(),
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            participants: self.participants.iter().map(Participant::info).collect(),
            change: change.map(|(kind, person)| CallChange {
                kind,
                person: person.clone(),
            }),
        }
    }

    /// The call as stored.
    pub fn record(&self, id: &CallId, room: &RoomId) -> CallRecord {
        CallRecord {
            call: id.clone(),
            room: room.clone(),
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            attendance: self.attendance.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hub::SessionControl;

    fn outbox(key: SessionKey, person: &str) -> Outbox {
        let control = Arc::new(SessionControl::default());
        let (outbox, rx) = Outbox::new(key, PersonId::new(person).unwrap(), 8, control);
        // The receiving side is not needed: these tests look at state only.
        std::mem::forget(rx);
        outbox
    }

    #[test]
    fn join_order_resume_and_attendance() {
        let anna = outbox(1, "anna");
        let marco = outbox(2, "marco");
        let mut call = Call::start(&anna, 1_000);
        call.add(&marco, 1_000);
        let id = CallId("c-1".into());
        let room = RoomId::new("trio-1").unwrap();
        let state = call.state(&id, &room, None);
        // Join times are distinct even within one millisecond, in join order.
        assert_eq!(state.participants[0].joined_at, 1_000);
        assert_eq!(state.participants[1].joined_at, 1_001);
        assert!(state.offers_to(&SessionId("s2".into()), &SessionId("s1".into())));
        assert!(!state.offers_to(&SessionId("s1".into()), &SessionId("s2".into())));

        // Anna's connection is lost, and she comes back on session 3: same place.
        let generation = call.lose(0, 2_000);
        assert!(!call.participants[0].info().connected);
        assert_eq!(call.take_over(0, &outbox(3, "anna")), 1);
        assert_ne!(call.participants[0].generation, generation);
        let state = call.state(&id, &room, None);
        assert_eq!(state.participants[0].session, SessionId("s3".into()));
        assert_eq!(state.participants[0].joined_at, 1_000);
        assert!(state.participants[0].connected);

        // Marco is lost and never comes back: his time ends when he was lost.
        call.lose(1, 3_000);
        call.remove(1, 23_000);
        call.end(30_000);
        let record = call.record(&id, &room);
        assert_eq!(record.ended_at, Some(30_000));
        assert_eq!(record.attendance[0].left_at, Some(30_000));
        assert_eq!(record.attendance[1].left_at, Some(3_000));
    }
}
