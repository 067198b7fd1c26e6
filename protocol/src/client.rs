//! What a client sends: one [`ClientFrame`] per websocket text frame.

use serde::{Deserialize, Serialize};

use crate::call::{CallId, Signal};
use crate::ids::{ClientMsgId, Epoch, PersonId, RequestId, RoomId, Seq, SessionId};
use crate::server::PresenceStatus;

/// A frame from a client: a request and an optional id the response will carry in `re`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ClientFrame {
    /// Chosen by the client; echoed as `re` in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

impl ClientFrame {
    /// A frame with a request id.
    pub fn new(id: RequestId, request: Request) -> Self {
        Self {
            id: Some(id),
            request,
        }
    }
}

/// Where a client is in a room: the last sequence number it holds, in an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ResumePoint {
    /// The room.
    pub room: RoomId,
    /// The epoch the client's position belongs to.
    pub epoch: Epoch,
    /// The last sequence number the client has.
    pub seq: Seq,
}

/// A client request. Tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The first frame of every connection: authenticate, and say where to resume.
    Hello {
        /// A JWT for the person.
        token: String,
        /// Per room, the last event the client has; the server sends the rest, then `live`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resume: Vec<ResumePoint>,
    },
    /// Replace the session's token before it expires.
    Refresh {
        /// A new JWT for the same person.
        token: String,
    },
    /// Send a chat message. Answered by `ack` once it is stored.
    Send {
        /// The room.
        room: RoomId,
        /// The client's id for this message; a retry with the same id is stored once.
        client_msg_id: ClientMsgId,
        /// The text.
        body: String,
    },
    /// Read a page of history: before a sequence number, after one, or the latest.
    History {
        /// The room.
        room: RoomId,
        /// Events with a sequence number lower than this, newest page first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Seq>,
        /// Events with a sequence number higher than this, oldest first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Seq>,
        /// The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// A moderator enters a trio room (announced to its members).
    Join {
        /// The room.
        room: RoomId,
    },
    /// A moderator leaves a trio room they joined.
    Leave {
        /// The room.
        room: RoomId,
    },
    /// The person started or stopped typing in a room.
    Typing {
        /// The room.
        room: RoomId,
        /// Whether they are typing now.
        active: bool,
    },
    /// The person has read the room up to a sequence number.
    Read {
        /// The room.
        room: RoomId,
        /// The last sequence number read.
        seq: Seq,
    },
    /// The session's presence: `online`, or `away` when the tab is hidden or idle.
    Presence {
        /// The new status (`offline` is not accepted: close the connection instead).
        status: PresenceStatus,
    },
    /// Keep-alive; answered by `pong`.
    Ping,
    /// Starts a call in a room, or joins the one in progress. Answered by `call_joined`.
    CallStart {
        /// The room.
        room: RoomId,
    },
    /// Joins a call. With `resume`, a client whose connection dropped takes its place back
    /// (keeping its position, so its peer connections go on); without, a person already in
    /// the call through another session moves to this one as a new participant. Answered
    /// by `call_joined`.
    CallJoin {
        /// The call.
        call: CallId,
        /// Take back this person's place in the call.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resume: bool,
    },
    /// Leaves a call. Answered by `ok`.
    CallLeave {
        /// The call.
        call: CallId,
    },
    /// Ends a call for everyone (whoever started it, or a moderator). Answered by `ok`.
    CallEnd {
        /// The call.
        call: CallId,
    },
    /// Says whether this participant's microphone and camera are on. Answered by `ok`.
    CallMedia {
        /// The call.
        call: CallId,
        /// Microphone on.
        mic: bool,
        /// Camera on.
        camera: bool,
    },
    /// Relays an offer, answer or ICE candidate to another participant session of the
    /// call. Answered by `ok` once handed on.
    CallSignal {
        /// The call.
        call: CallId,
        /// The participant session it is for.
        to: SessionId,
        /// The signal.
        signal: Signal,
    },
    /// Asks for fresh ICE servers and TURN credentials. Answered by `ice_servers`.
    IceServers {
        /// The call they are for.
        call: CallId,
    },
    /// Lists the coaching sessions of the person's rooms (or of one room) that have not
    /// ended, soonest first, cancelled ones included. Answered by `coachings`.
    Coachings {
        /// Only this room's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// Pins a chat message as key learning (it goes into the cycle report). Answered by
    /// `ok`; everyone in the room gets `pinned`.
    Pin {
        /// The room.
        room: RoomId,
        /// The message.
        seq: Seq,
    },
    /// Takes a pin away. Answered by `ok`; everyone in the room gets `pinned`.
    Unpin {
        /// The room.
        room: RoomId,
        /// The message.
        seq: Seq,
    },
    /// Lists a room's pins. Answered by `pins`.
    Pins {
        /// The room.
        room: RoomId,
    },
    /// Reads a page of a room's people, ordered by id (for rooms too large to list in the
    /// welcome). Answered by `members`.
    Members {
        /// The room.
        room: RoomId,
        /// People with an id after this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<PersonId>,
        /// The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

impl Request {
    /// Every request type name, as on the wire.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "refresh",
        "send",
        "history",
        "join",
        "leave",
        "typing",
        "read",
        "presence",
        "ping",
        "call_start",
        "call_join",
        "call_leave",
        "call_end",
        "call_media",
        "call_signal",
        "ice_servers",
        "coachings",
        "pin",
        "unpin",
        "pins",
        "members",
    ];

    /// The request's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Refresh { .. } => "refresh",
            Self::Send { .. } => "send",
            Self::History { .. } => "history",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Typing { .. } => "typing",
            Self::Read { .. } => "read",
            Self::Presence { .. } => "presence",
            Self::Ping => "ping",
            Self::CallStart { .. } => "call_start",
            Self::CallJoin { .. } => "call_join",
            Self::CallLeave { .. } => "call_leave",
            Self::CallEnd { .. } => "call_end",
            Self::CallMedia { .. } => "call_media",
            Self::CallSignal { .. } => "call_signal",
            Self::IceServers { .. } => "ice_servers",
            Self::Coachings { .. } => "coachings",
            Self::Pin { .. } => "pin",
            Self::Unpin { .. } => "unpin",
            Self::Pins { .. } => "pins",
            Self::Members { .. } => "members",
        }
    }
}
