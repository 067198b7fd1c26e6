//! History and state: one [`Store`] trait, with an embedded backend ([`embedded`], the
//! default: one durable file) and a Redis backend ([`redis`]) that several nodes share.
//!
//! The store owns sequence numbers: `append` assigns a room's next `seq` and persists the
//! event atomically with a de-duplication record for its `client_msg_id`, so a retried send
//! returns the original event and stores nothing. After an event is durable, the store hands
//! it to its [`EventSink`] (the hub) in sequence order per room. The embedded store does so
//! before answering the caller, so an ack never overtakes its event on one node. A shared
//! store (Redis) delivers the events of the rooms this node watches ([`Store::watch_room`])
//! from its feed, whichever node appended them, possibly after the caller's answer; it never
//! skips one (a gap is filled from history) and never delivers one twice.

pub mod docs;
pub mod embedded;
pub mod readiness;
pub mod redis;
mod stored_call;

#[cfg(test)]
mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use triad_protocol::{
    CallId, ClientMsgId, Epoch, PersonId, PersonInfo, RoomEvent, RoomId, RoomKind, Seq, Timestamp,
};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached, did not answer in time, or failed to persist. A
    /// write may or may not have happened: an append retried with the same
    /// `client_msg_id` is stored at most once.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The room does not exist.
    #[error("unknown room {0}")]
    UnknownRoom(RoomId),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The write does not fit what is stored (a restored event that does not follow the
    /// room's last one); nothing was stored.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// A room and who may be in it, as the programme defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// The room.
    pub id: RoomId,
    /// Its kind.
    pub kind: RoomKind,
    /// Its title.
    pub title: String,
    /// People who are always in the room (the heads of a trio; everyone in the commons;
    /// moderators and coordinators in the staff room).
    pub members: Vec<PersonId>,
    /// Moderators assigned to a trio room; they are in it only after `join`.
    pub moderators: Vec<PersonId>,
    /// Assigned moderators who have joined and not left.
    pub joined_moderators: Vec<PersonId>,
}

/// The whole programme: people and rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Programme {
    /// Everyone.
    pub people: Vec<PersonInfo>,
    /// Every room, with its membership.
    pub rooms: Vec<RoomRecord>,
}

/// Where a room's history stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomState {
    /// The history epoch (set when the room is created, changed if history is reset).
    pub epoch: Epoch,
    /// The last sequence number, 0 when empty.
    pub last_seq: Seq,
    /// When the last event was stored.
    pub last_ts: Option<Timestamp>,
}

/// Which page of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest `limit` events.
    Latest { limit: u32 },
    /// The newest `limit` events with `seq < before`.
    Before { before: Seq, limit: u32 },
    /// The oldest `limit` events with `seq > after`.
    After { after: Seq, limit: u32 },
}

/// A page of history, ascending by `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room's epoch.
    pub epoch: Epoch,
    /// The events, ascending.
    pub events: Vec<RoomEvent>,
    /// Whether more events exist beyond the page in the direction read.
    pub has_more: bool,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored event (the original one, for a duplicate).
    pub event: RoomEvent,
    /// Whether the `client_msg_id` had been stored before, so nothing new was stored.
    pub duplicate: bool,
}

/// A call as kept for attendance and reports: when it started and ended, and each
/// participant's time in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The call.
    pub call: CallId,
    /// Its room.
    pub room: RoomId,
    /// Who started it.
    pub started_by: PersonId,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended; `None` while it goes on.
    pub ended_at: Option<Timestamp>,
    /// Each stretch of a person's time in the call, in the order they joined (a person who
    /// left and came back has several).
    pub attendance: Vec<Attendance>,
}

/// One stretch of a person's time in a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendance {
    /// Who.
    pub person: PersonId,
    /// When they joined.
    pub joined_at: Timestamp,
    /// When they left (or their lost connection was last seen); `None` while in the call.
    pub left_at: Option<Timestamp>,
}

/// A collection of small JSON documents the store keeps by key: the programme's state
/// beyond people and rooms (regions, cycles, coaching sessions, invitations, pins,
/// preferences). [`docs`] gives typed access with compare-and-set updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Region id to region.
    Regions,
    /// Cycle id to cycle.
    Cycles,
    /// Room id to the room's coaching sessions (one document per room, so a booking checks
    /// for overlaps atomically).
    Coachings,
    /// Invitation code hash to invitation.
    Invitations,
    /// Refresh token hash to grant.
    Grants,
    /// Person id to the time before which their tokens are void.
    Revocations,
    /// Room id to the room's pins.
    Pins,
    /// Person id to their preferences (e-mail, calendar feed key).
    Preferences,
    /// Calendar feed key hash to person id.
    CalendarKeys,
    /// A one-time job's key (a reminder or digest already sent) to when it was done, so
    /// one node of several does it once.
    Jobs,
    /// Room id to the node holding the room's call and the call's id, so that with
    /// several nodes a room has one call, held by one node.
    CallOwners,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Self; 11] = [
        Self::Regions,
        Self::Cycles,
        Self::Coachings,
        Self::Invitations,
        Self::Grants,
        Self::Revocations,
        Self::Pins,
        Self::Preferences,
        Self::CalendarKeys,
        Self::Jobs,
        Self::CallOwners,
    ];

    /// The collection with this stored name.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether a backup carries it: everything but which node holds a call now, which
    /// means nothing to a restored store.
    pub fn is_backed_up(self) -> bool {
        self != Self::CallOwners
    }

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regions => "regions",
            Self::Cycles => "cycles",
            Self::Coachings => "coachings",
            Self::Invitations => "invitations",
            Self::Grants => "grants",
            Self::Revocations => "revocations",
            Self::Pins => "pins",
            Self::Preferences => "preferences",
            Self::CalendarKeys => "calendar_keys",
            Self::Jobs => "jobs",
            Self::CallOwners => "call_owners",
        }
    }
}

/// What a document must hold for a write to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it holds.
    Anything,
    /// It must not exist.
    Absent,
    /// It must hold exactly this.
    Value(String),
}

/// Receives events once they are durable, in sequence order per room.
pub trait EventSink: Send + Sync + 'static {
    /// Called once per stored event. Must not block.
    fn publish(&self, event: &RoomEvent);
}

/// A sink that drops everything (for offline commands such as `import`).
pub struct NoSink;

impl EventSink for NoSink {
    fn publish(&self, _event: &RoomEvent) {}
}

/// History and programme state. Every backend passes the suite in `conformance`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The whole programme: people and rooms with their membership.
    async fn programme(&self) -> Result<Programme, StoreError>;

    /// Inserts or replaces people and rooms. Rooms keep their history and epoch; the
    /// joined moderators of an existing room are kept if still assigned.
    async fn apply_programme(&self, programme: &Programme) -> Result<(), StoreError>;

    /// A number that changes after every programme applied: who the people are and who
    /// belongs to which room. Cheap to read, so a node can tell whether its copy of the
    /// programme is current without reading it. Which moderators have joined a trio room
    /// changes often and is not counted: read the room for it. Read the version before
    /// [`Store::programme`]: a programme read after it holds every change it counts.
    async fn programme_version(&self) -> Result<u64, StoreError>;

    /// One person.
    async fn person(&self, id: &PersonId) -> Result<Option<PersonInfo>, StoreError>;

    /// One room.
    async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StoreError>;

    /// Appends a chat message, or returns the original event if `client_msg_id` was
    /// already stored in this room. Also moves the author's read marker to the new event.
    async fn append_message(
        &self,
        room: &RoomId,
        author: &PersonId,
        client_msg_id: &ClientMsgId,
        body: &str,
    ) -> Result<Appended, StoreError>;

    /// Records that an assigned moderator joined (`true`) or left a trio room, and appends
    /// the system event in the same transaction. Returns the event, or `None` if the
    /// moderator was already in that state.
    async fn set_moderator_joined(
        &self,
        room: &RoomId,
        moderator: &PersonId,
        joined: bool,
    ) -> Result<Option<RoomEvent>, StoreError>;

    /// Writes an event exactly as it was exported from a store (same room, seq, ts, author
    /// and body), for restoring a backup. The room's last seq must be `event.seq - 1` and
    /// its last timestamp not after `event.ts`; otherwise [`StoreError::Conflict`], and
    /// nothing is stored. Its effects on the room are applied with it: a message's
    /// `client_msg_id` is recorded for de-duplication (a message restored with an id
    /// already recorded in the room is a conflict), `moderator_joined` adds the author to
    /// the joined moderators if assigned to the room, `moderator_left` removes them, and the
    /// room's last seq and timestamp advance. Read markers do not move, and the event is
    /// not handed to the sink: a restore is not live traffic.
    async fn restore_event(&self, event: &RoomEvent) -> Result<(), StoreError>;

    /// Reads a page of history.
    async fn history(&self, room: &RoomId, page: Page) -> Result<HistoryPage, StoreError>;

    /// Where a room's history stands.
    async fn room_state(&self, room: &RoomId) -> Result<RoomState, StoreError>;

    /// Moves a person's read marker forward (never back, never past the last event);
    /// returns the marker now.
    async fn set_read(&self, room: &RoomId, person: &PersonId, seq: Seq)
    -> Result<Seq, StoreError>;

    /// A person's read marker in a room (0 if never set).
    async fn read_marker(&self, room: &RoomId, person: &PersonId) -> Result<Seq, StoreError>;

    /// Whether the backend can serve requests now (for `/readyz`).
    async fn ready(&self) -> bool;

    /// Inserts a call record, or replaces the one with the same call id.
    async fn record_call(&self, _record: &CallRecord) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "call records are not supported by this store".into(),
        ))
    }

    /// The call records of a room, oldest first.
    async fn call_records(&self, _room: &RoomId) -> Result<Vec<CallRecord>, StoreError> {
        Err(StoreError::Unavailable(
            "call records are not supported by this store".into(),
        ))
    }

    /// One document, if it exists.
    async fn doc(&self, collection: Collection, key: &str) -> Result<Option<String>, StoreError>;

    /// Every document of a collection, ordered by key.
    async fn docs(&self, collection: Collection) -> Result<Vec<(String, String)>, StoreError>;

    /// Writes a document (`Some`) or deletes it (`None`) if it holds what `expect` says,
    /// atomically; returns whether it did. A `false` means someone else changed it first:
    /// read again and retry.
    async fn write_doc(
        &self,
        collection: Collection,
        key: &str,
        expect: Expect,
        value: Option<String>,
    ) -> Result<bool, StoreError>;

    /// This node starts (`true`) or stops having local sessions in `room`. A shared backend
    /// delivers a room's events to the sink only while it is watched; an embedded one
    /// delivers everything anyway. Must not block: the hub calls it under a room's lock so
    /// calls for one room arrive in order.
    fn watch_room(&self, _room: &RoomId, _watching: bool) {}

    /// Waits (briefly, bounded) until every `watch_room` so far is in effect, so that every
    /// event stored from now on reaches the sink. Sessions call it after entering rooms and
    /// before reading where the rooms stand.
    async fn settle_watches(&self) {}
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Runs a store call with a deadline: one not answered by then fails with
/// [`StoreError::Unavailable`] (and is dropped, so whether a write happened is unknown).
pub async fn within<T>(
    deadline: std::time::Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(outcome) => outcome,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            deadline.as_millis()
        ))),
    }
}

/// Runs a store call by the instant `until`: one not answered by then fails with
/// [`StoreError::Unavailable`] (and is dropped, so whether a write happened is unknown). For
/// a task of several calls that shares one deadline, such as signing in.
pub async fn within_until<T>(
    until: std::time::Instant,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout_at(until.into(), call).await {
        Ok(outcome) => outcome,
        Err(_) => {
            crate::metrics::store_deadline_exceeded();
            Err(StoreError::Unavailable(
                "no answer by the store deadline".into(),
            ))
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
