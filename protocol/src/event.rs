//! Events stored in a room's history. Each has the room's next sequence number; the kinds
//! are chat messages and system events (a moderator joining or leaving a trio room).

use serde::{Deserialize, Serialize};

use crate::ids::{ClientMsgId, PersonId, RoomId, Seq, Timestamp};

/// One event in a room's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RoomEvent {
    /// The room.
    pub room: RoomId,
    /// Its sequence number in the room, contiguous from 1 within an epoch.
    pub seq: Seq,
    /// When the server stored it.
    pub ts: Timestamp,
    /// Who caused it.
    pub author: PersonId,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened in a room event. Tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A chat message.
    Message {
        /// The id the sender gave it.
        client_msg_id: ClientMsgId,
        /// The text, UTF-8, at most [`crate::limits::MAX_BODY_BYTES`].
        body: String,
    },
    /// A moderator entered the room. Members see it in history.
    ModeratorJoined,
    /// A moderator left the room.
    ModeratorLeft,
}

impl EventBody {
    /// The client message id, for messages.
    pub fn client_msg_id(&self) -> Option<&ClientMsgId> {
        match self {
            Self::Message { client_msg_id, .. } => Some(client_msg_id),
            _ => None,
        }
    }
}
