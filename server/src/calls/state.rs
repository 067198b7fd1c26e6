//! A call's state: its participants in join order (each makes the offer to every one
//! before it), their media flags and connection, and its record of attendance. Plain data
//! and transitions; [`super::Calls`] holds it under the call's lock and does the pushing.

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;
use triad_protocol::{
    CallChange, CallChangeKind, CallId, CallParticipant, CallState, PersonId, RoomId, SessionId,
    Timestamp, limits,
};

use crate::bus::NodeId;
use crate::hub::{Outbox, SessionKey, TokenBucket};
use crate::store::{Attendance, CallRecord};

/// The id a session of this node has on the wire (as in its welcome).
pub fn session_id(key: SessionKey) -> SessionId {
    SessionId(format!("s{key}"))
}

/// Which session a participant is, as the node holding the call knows it: one of its own,
/// or one on another node (whose keys may be the same numbers as this node's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionAddr {
    /// A session on this node.
    Local(SessionKey),
    /// A session on another node.
    Remote {
        /// That node.
        node: NodeId,
        /// The session's key there.
        key: SessionKey,
    },
}

impl SessionAddr {
    /// The session's id in the call: `s<key>` for a session of this node (as in its
    /// welcome), `s<key>@<node>` for one on another node, so the two never collide.
    pub fn session_id(&self) -> SessionId {
        match self {
            Self::Local(key) => session_id(*key),
            Self::Remote { node, key } => SessionId(format!("s{key}@{node}")),
        }
    }

    /// The node of a remote session.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote { node, .. } => Some(node),
        }
    }
}

/// How frames reach a participant session: its outbox here, or the bus to its node.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A session of this node.
    Local(Outbox),
    /// A session on another node, reached through the bus ([`SessionAddr::Remote`]).
    Remote,
}

/// The session making a call request, wherever it is connected.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Which session.
    pub addr: SessionAddr,
    /// Who.
    pub person: PersonId,
    /// How to reach it.
    pub endpoint: Endpoint,
}

impl Caller {
    /// A session of this node.
    pub fn local(outbox: &Outbox) -> Self {
        Self {
            addr: SessionAddr::Local(outbox.key()),
            person: outbox.person().clone(),
            endpoint: Endpoint::Local(outbox.clone()),
        }
    }

    /// A session of another node, whose requests that node forwards.
    pub fn remote(node: NodeId, key: SessionKey, person: PersonId) -> Self {
        Self {
            addr: SessionAddr::Remote { node, key },
            person,
            endpoint: Endpoint::Remote,
        }
    }

    /// The session's id in the call.
    pub fn session_id(&self) -> SessionId {
        self.addr.session_id()
    }
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
    /// The session.
    pub key: SessionAddr,
    /// Who.
    pub person: PersonId,
    /// How to reach the session; `None` while the connection is lost (the grace period).
    pub endpoint: Option<Endpoint>,
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
    /// A participant joining now through `caller`'s session.
    pub fn new(caller: &Caller, joined_at: Timestamp, attendance: usize) -> Self {
        Self {
            key: caller.addr.clone(),
            person: caller.person.clone(),
            endpoint: Some(caller.endpoint.clone()),
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
            session: self.key.session_id(),
            person: self.person.clone(),
            mic: self.mic,
            camera: self.camera,
            joined_at: self.joined_at,
            connected: self.endpoint.is_some(),
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
    /// A call started now by `caller`'s person, who is its first participant.
    pub fn start(caller: &Caller, now: Timestamp) -> Self {
        crate::metrics::call_started();
        let mut call = Self {
            started_by: caller.person.clone(),
            started_at: now,
            participants: Vec::new(),
            attendance: Vec::new(),
            ended_at: None,
            last_joined_at: now - 1,
        };
        call.add(caller, now);
        call
    }

    /// The position of a session's participant.
    pub fn position(&self, key: &SessionAddr) -> Option<usize> {
        self.participants.iter().position(|p| &p.key == key)
    }

    /// The position of a person's participant.
    pub fn position_of(&self, person: &PersonId) -> Option<usize> {
        self.participants.iter().position(|p| &p.person == person)
    }

    /// The participant a session id names.
    pub fn by_session(&self, session: &SessionId) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| &p.key.session_id() == session)
    }

    /// Whether the call has room for one more.
    pub fn is_full(&self) -> bool {
        self.participants.len() >= limits::MAX_CALL_PARTICIPANTS
    }

    /// Adds `caller`'s session at the end; returns its position.
    pub fn add(&mut self, caller: &Caller, now: Timestamp) -> usize {
        let joined_at = now.max(self.last_joined_at + 1);
        self.last_joined_at = joined_at;
        self.attendance.push(Attendance {
            person: caller.person.clone(),
            joined_at,
            left_at: None,
        });
        let participant = Participant::new(caller, joined_at, self.attendance.len() - 1);
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
    pub fn take_over(&mut self, position: usize, caller: &Caller) -> SessionAddr {
        let participant = &mut self.participants[position];
        let old = participant.key.clone();
        participant.stop.cancel();
        participant.stop = CancellationToken::new();
        participant.key = caller.addr.clone();
        participant.endpoint = Some(caller.endpoint.clone());
        participant.lost_at = None;
        participant.generation += 1;
        old
    }

    /// Marks a participant's connection lost at `now`; returns the generation a grace
    /// timer must match.
    pub fn lose(&mut self, position: usize, now: Timestamp) -> u64 {
        let participant = &mut self.participants[position];
        participant.stop.cancel();
        participant.endpoint = None;
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

    fn outbox(key: SessionKey, person: &str) -> Caller {
        let control = Arc::new(SessionControl::default());
        let (outbox, rx) = Outbox::new(key, PersonId::new(person).unwrap(), 8, control);
        // The receiving side is not needed: these tests look at state only.
        std::mem::forget(rx);
        Caller::local(&outbox)
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
        assert_eq!(call.take_over(0, &outbox(3, "anna")), SessionAddr::Local(1));
        assert_ne!(call.participants[0].generation, generation);
        let state = call.state(&id, &room, None);
        assert_eq!(state.participants[0].session, SessionId("s3".into()));
        assert_eq!(state.participants[0].joined_at, 1_000);
        assert!(state.participants[0].connected);

        // Marco is lost and never comes back: his time ends when he was lost.
        // A session of another node has an id of its own, even with the same key.
        let remote = Caller::remote("b".into(), 3, PersonId::new("sara").unwrap());
        let position = call.add(&remote, 2_500);
        let state = call.state(&id, &room, None);
        assert_eq!(
            state.participants[position].session,
            SessionId("s3@b".into())
        );
        assert_eq!(
            call.by_session(&SessionId("s3".into()))
                .unwrap()
                .person
                .as_str(),
            "anna"
        );
        call.remove(position, 2_600);

        call.lose(1, 3_000);
        call.remove(1, 23_000);
        call.end(30_000);
        let record = call.record(&id, &room);
        assert_eq!(record.ended_at, Some(30_000));
        assert_eq!(record.attendance[0].left_at, Some(30_000));
        assert_eq!(record.attendance[1].left_at, Some(3_000));
    }
}
