//! The messages nodes exchange over the bus.

use serde::{Deserialize, Serialize};
use triad_protocol::{PersonId, PresenceStatus, RoomId};

use crate::calls::wire::CallMessage;

/// A node's id, random per process start.
pub type NodeId = String;

/// One person's presence on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// Who.
    pub person: PersonId,
    /// Their status on that node (`offline` when their last session there ended).
    pub status: PresenceStatus,
    /// The rooms their sessions on that node are in.
    pub rooms: Vec<RoomId>,
}

/// A message between nodes. Every message names the node it comes from; a node ignores
/// its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusMessage {
    /// A frame for every session in a room (except the sessions of `except`).
    Room {
        /// The sending node.
        origin: NodeId,
        /// The room.
        room: RoomId,
        /// A person whose sessions do not get it (the typist, say).
        except: Option<PersonId>,
        /// The serialized server frame.
        frame: String,
    },
    /// A frame for every session of a person.
    Person {
        /// The sending node.
        origin: NodeId,
        /// The person.
        person: PersonId,
        /// The serialized server frame.
        frame: String,
    },
    /// A person's presence on the sending node changed.
    Presence {
        /// The sending node.
        origin: NodeId,
        /// The new entry.
        entry: PresenceEntry,
    },
    /// The sending node is alive; this is everyone connected to it. Replaces what the
    /// receivers knew of that node.
    Heartbeat {
        /// The sending node.
        origin: NodeId,
        /// Everyone with a session on it.
        people: Vec<PresenceEntry>,
    },
    /// A person's access was revoked: close their sessions.
    Revoke {
        /// The sending node.
        origin: NodeId,
        /// Who.
        person: PersonId,
        /// The close reason.
        reason: String,
    },
    /// About calls (see [`crate::calls::wire`]): for one node (`to`), or for every node.
    Call {
        /// The sending node.
        origin: NodeId,
        /// The node it is for; `None` for every node.
        to: Option<NodeId>,
        /// What it says.
        message: Box<CallMessage>,
    },
    /// The sending node is shutting down: forget its presence, end the calls it held.
    Gone {
        /// The sending node.
        origin: NodeId,
    },
}

impl BusMessage {
    /// The node that sent it.
    pub fn origin(&self) -> &str {
        match self {
            Self::Room { origin, .. }
            | Self::Person { origin, .. }
            | Self::Presence { origin, .. }
            | Self::Revoke { origin, .. }
            | Self::Heartbeat { origin, .. }
            | Self::Call { origin, .. }
            | Self::Gone { origin } => origin,
        }
    }
}
