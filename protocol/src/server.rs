//! What the server sends: one [`ServerFrame`] per websocket text frame. Responses carry the
//! request's id in `re`; pushed events carry none.

use serde::{Deserialize, Serialize};

use crate::call::{CallEndReason, CallId, CallState, IceServers, Signal};
use crate::coaching::{CoachingChange, CoachingSession, Pin};
use crate::error::ErrorCode;
use crate::event::RoomEvent;
use crate::ids::{ClientMsgId, Epoch, PersonId, RequestId, RoomId, Seq, SessionId, Timestamp};
use crate::limits::Limits;

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerFrame {
    /// The id of the request this answers; absent on pushed events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<RequestId>,
    /// The message.
    #[serde(flatten)]
    pub message: ServerMessage,
}

impl ServerFrame {
    /// A pushed message, answering no request.
    pub fn push(message: ServerMessage) -> Self {
        Self { re: None, message }
    }

    /// A response to request `re`.
    pub fn reply(re: Option<RequestId>, message: ServerMessage) -> Self {
        Self { re, message }
    }

    /// An error response.
    pub fn error(re: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::reply(
            re,
            ServerMessage::Error {
                code,
                message: message.into(),
                room: None,
            },
        )
    }
}

/// A person's role in the programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A headteacher, member of one trio.
    Head,
    /// A coach of several trios.
    Moderator,
    /// Runs the programme.
    Coordinator,
}

/// The kind of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// One trio of heads; its moderators enter with `join`.
    Trio,
    /// The programme-wide room: everyone.
    Commons,
    /// Moderators and the coordinator.
    Staff,
}

/// A person's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// At least one session is connected and active.
    Online,
    /// Connected, but every session is idle or hidden.
    Away,
    /// No session connected.
    Offline,
}

/// Who a person is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PersonInfo {
    /// Their id.
    pub id: PersonId,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their region (e.g. `vejle`), empty for staff outside any region.
    pub region: String,
    /// Their school, empty for staff.
    pub school: String,
    /// Their IANA time zone, e.g. `Europe/Rome`.
    pub time_zone: String,
}

/// A member of a room as the room shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemberInfo {
    /// The person.
    pub person: PersonId,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their presence now.
    pub status: PresenceStatus,
}

/// A room as a person sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RoomInfo {
    /// The room.
    pub id: RoomId,
    /// Its kind.
    pub kind: RoomKind,
    /// Its title.
    pub title: String,
    /// Its history epoch.
    pub epoch: Epoch,
    /// Its last sequence number (0 when empty).
    pub last_seq: Seq,
    /// Where this person has read to.
    pub read_seq: Seq,
    /// Events after the read marker.
    pub unread: u64,
    /// When the last event was stored, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<Timestamp>,
    /// Whether this person is in the room now: always for members; for a moderator of a
    /// trio, only after `join`.
    pub joined: bool,
    /// The people of the room, with their presence (moderators who have joined included).
    /// For a room of more than [`crate::limits::MAX_LISTED_MEMBERS`] people, only those
    /// online or away (at most that many); `members` pages through everyone, and presence
    /// changes in such a room are not pushed.
    pub members: Vec<MemberInfo>,
    /// How many people the room has.
    #[serde(default)]
    pub member_count: u32,
    /// The room's call in progress, if any (later changes come as `call_state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallState>,
}

/// The answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Welcome {
    /// The protocol version, [`crate::PROTOCOL_VERSION`].
    pub protocol: String,
    /// This session's id.
    pub session: SessionId,
    /// Who is signed in.
    pub person: PersonInfo,
    /// Every room the person can see, with unread counts.
    pub rooms: Vec<RoomInfo>,
    /// The limits in force.
    pub limits: Limits,
    /// When the token expires; send `refresh` before then.
    pub token_expires_at: Timestamp,
}

/// The answer to `send`: the message is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Ack {
    /// The room.
    pub room: RoomId,
    /// The client's id for the message.
    pub client_msg_id: ClientMsgId,
    /// Its sequence number in the room.
    pub seq: Seq,
    /// When it was stored.
    pub ts: Timestamp,
    /// True when this id had been stored before: nothing new was stored.
    #[serde(default)]
    pub duplicate: bool,
}

/// The answer to `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct History {
    /// The room.
    pub room: RoomId,
    /// The room's epoch.
    pub epoch: Epoch,
    /// Events in ascending sequence order.
    pub events: Vec<RoomEvent>,
    /// Whether more events lie beyond this page in the direction asked.
    pub has_more: bool,
}

/// A room is live: every event up to `seq` has been sent; new ones follow as they happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Live {
    /// The room.
    pub room: RoomId,
    /// The room's epoch.
    pub epoch: Epoch,
    /// The last sequence number sent.
    pub seq: Seq,
}

impl ServerMessage {
    /// Every server message type name, as on the wire.
    pub const TYPES: &'static [&'static str] = &[
        "welcome",
        "ack",
        "history",
        "event",
        "live",
        "joined",
        "left",
        "typing",
        "presence",
        "read",
        "ok",
        "pong",
        "error",
        "call_joined",
        "call_state",
        "call_signal",
        "call_ended",
        "ice_servers",
        "coaching",
        "coachings",
        "pinned",
        "pins",
        "members",
    ];

    /// The message's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Ack(_) => "ack",
            Self::History(_) => "history",
            Self::Event { .. } => "event",
            Self::Live(_) => "live",
            Self::Joined { .. } => "joined",
            Self::Left { .. } => "left",
            Self::Typing { .. } => "typing",
            Self::Presence { .. } => "presence",
            Self::Read { .. } => "read",
            Self::Ok => "ok",
            Self::Pong => "pong",
            Self::Error { .. } => "error",
            Self::CallJoined { .. } => "call_joined",
            Self::CallState { .. } => "call_state",
            Self::CallSignal { .. } => "call_signal",
            Self::CallEnded { .. } => "call_ended",
            Self::IceServers(_) => "ice_servers",
            Self::Coaching { .. } => "coaching",
            Self::Coachings { .. } => "coachings",
            Self::Pinned { .. } => "pinned",
            Self::Pins { .. } => "pins",
            Self::Members { .. } => "members",
        }
    }
}

/// A message from the server. Tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `hello`.
    Welcome(Welcome),
    /// The answer to `send`.
    Ack(Ack),
    /// The answer to `history`.
    History(History),
    /// A new event in a room the session is in.
    Event {
        /// The event.
        event: RoomEvent,
    },
    /// A room has caught up after resume.
    Live(Live),
    /// The answer to `join`: the room as the moderator now sees it.
    Joined {
        /// The room.
        room: RoomInfo,
    },
    /// The answer to `leave`.
    Left {
        /// The room.
        room: RoomId,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The room.
        room: RoomId,
        /// Who.
        person: PersonId,
        /// Whether they are typing.
        active: bool,
    },
    /// Someone's presence changed, or a member entered or left the room.
    Presence {
        /// The room.
        room: RoomId,
        /// Who.
        person: PersonId,
        /// Their status now.
        status: PresenceStatus,
    },
    /// This person's read marker in a room (the answer to `read`, and pushed to their other
    /// sessions).
    Read {
        /// The room.
        room: RoomId,
        /// The last sequence number read.
        seq: Seq,
        /// Events after it.
        unread: u64,
    },
    /// A request succeeded and has nothing else to say.
    Ok,
    /// The answer to `ping`.
    Pong,
    /// A request failed.
    Error {
        /// The stable code.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// The room the request was about, when there was one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// The answer to `call_start` and `call_join`: the call, this participant's session,
    /// and the ICE servers to use.
    CallJoined {
        /// The call as it is now.
        call: CallState,
        /// This participant's session (signals to it are addressed so).
        session: SessionId,
        /// STUN and TURN servers with this person's credentials.
        ice_servers: IceServers,
    },
    /// A call in one of the session's rooms changed (pushed to everyone in the room).
    CallState {
        /// The call as it is now.
        call: CallState,
    },
    /// A signal from another participant of a call this session is in.
    CallSignal {
        /// The call.
        call: CallId,
        /// The participant session it comes from (answer to it with `to`).
        from: SessionId,
        /// The person it comes from.
        person: PersonId,
        /// The signal.
        signal: Signal,
    },
    /// A call in one of the session's rooms ended (pushed to everyone in the room).
    CallEnded {
        /// The call.
        call: CallId,
        /// Its room.
        room: RoomId,
        /// Why it ended.
        reason: CallEndReason,
        /// Who ended it, for `ended`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended_by: Option<PersonId>,
    },
    /// ICE servers with fresh TURN credentials: the answer to `ice_servers`, and pushed to
    /// each participant before their credentials expire.
    IceServers(IceServers),
    /// A coaching session of one of the person's rooms was booked, moved or cancelled, is
    /// a day or ten minutes away, or starts now (pushed to the room's members and joined
    /// moderators).
    Coaching {
        /// What happened.
        change: CoachingChange,
        /// The session as it is now.
        coaching: CoachingSession,
        /// For `moved`: where it started before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_start: Option<Timestamp>,
    },
    /// The answer to `coachings`.
    Coachings {
        /// Sessions that have not ended, soonest first.
        coachings: Vec<CoachingSession>,
    },
    /// A message was pinned (or unpinned) in a room the session is in.
    Pinned {
        /// The pin.
        pin: Pin,
        /// True when pinned, false when the pin was taken away.
        pinned: bool,
    },
    /// The answer to `pins`.
    Pins {
        /// The room.
        room: RoomId,
        /// Its pins, in message order.
        pins: Vec<Pin>,
    },
    /// The answer to `members`: a page of a room's people, by id.
    Members {
        /// The room.
        room: RoomId,
        /// The people, with their presence now.
        members: Vec<MemberInfo>,
        /// Whether more people follow the last one.
        has_more: bool,
    },
}
