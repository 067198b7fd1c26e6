//! What a client sends: one [`ClientFrame`] per websocket text frame.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMsgId, Epoch, RequestId, RoomId, Seq};
use crate::server::PresenceStatus;

/// A frame from a client: a request and an optional id the response will carry in `re`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Request {
    /// Every request type name, as on the wire.
    pub const TYPES: &'static [&'static str] = &[
        "hello", "refresh", "send", "history", "join", "leave", "typing", "read", "presence",
        "ping",
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
        }
    }
}
