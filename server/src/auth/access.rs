//! Who may do what in a room. Heads are members of their trio; everyone is a member of the
//! commons; moderators and coordinators are members of the staff room. An assigned
//! moderator is in a trio room only after joining it, visibly.

use serde::{Deserialize, Serialize};
use triad_protocol::{ErrorCode, PersonId};

use crate::store::RoomRecord;

/// A person's standing in one room. Serialized for call requests forwarded between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Always in the room: may read, send, type and mark read.
    Member,
    /// An assigned moderator: in the room (like a member) only while `joined`.
    Moderator {
        /// Whether they have joined.
        joined: bool,
    },
    /// Not in the room.
    None,
}

impl Access {
    /// Whether the person is in the room now (reads, sends, sees events).
    pub fn is_in(self) -> bool {
        matches!(self, Self::Member | Self::Moderator { joined: true })
    }

    /// Checks that the person may read and speak in the room now.
    pub fn check_in(self) -> Result<(), ErrorCode> {
        match self {
            Self::Member | Self::Moderator { joined: true } => Ok(()),
            Self::Moderator { joined: false } => Err(ErrorCode::JoinRequired),
            Self::None => Err(ErrorCode::NotAMember),
        }
    }
}

/// The person's standing in the room.
pub fn access_to(room: &RoomRecord, person: &PersonId) -> Access {
    if room.members.contains(person) {
        Access::Member
    } else if room.moderators.contains(person) {
        Access::Moderator {
            joined: room.joined_moderators.contains(person),
        }
    } else {
        Access::None
    }
}
