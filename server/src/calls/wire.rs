//! What nodes tell each other about calls, carried by [`crate::bus::BusMessage::Call`]:
//! requests forwarded to the node holding a call and their replies, frames for a
//! participant session on another node, sessions that ended, and the state of each call
//! (so every node knows which calls exist, where, and can describe them in a welcome).

use serde::{Deserialize, Serialize};
use triad_protocol::{CallId, CallState, PersonId, Request, RoomId, ServerMessage};

use super::CallError;
use crate::auth::Access;
use crate::hub::SessionKey;

/// A message about calls between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CallMessage {
    /// A call request from a session of the sending node, for a call the receiver holds.
    Request {
        /// Matches the reply to the request.
        id: u64,
        /// The session, on the sending node.
        key: SessionKey,
        /// Who is signed in on it.
        person: PersonId,
        /// The room `access` is for (the call's room as the sender knows it).
        room: RoomId,
        /// The person's access to `room`, as the sending node computed it.
        access: Access,
        /// One of the call requests.
        request: Request,
    },
    /// The answer to a [`CallMessage::Request`].
    Reply {
        /// The request's id.
        id: u64,
        /// What the session is answered.
        reply: Result<ServerMessage, CallError>,
    },
    /// A frame for a session of the receiving node (a signal, fresh ICE servers).
    Frame {
        /// The session.
        key: SessionKey,
        /// Its person (to find it among the sessions).
        person: PersonId,
        /// The serialized server frame.
        frame: String,
    },
    /// A session of the sending node ended; if it is in one of the receiver's calls, its
    /// grace period starts.
    SessionGone {
        /// The session.
        key: SessionKey,
    },
    /// A moderator's session of the sending node left a room: it leaves the room's call.
    LeftRoom {
        /// The session.
        key: SessionKey,
        /// The room.
        room: RoomId,
    },
    /// The sender holds this call, which is now as `state` says (`None`: it ended).
    State {
        /// The call.
        call: CallId,
        /// Its room.
        room: RoomId,
        /// The call now, while it goes on.
        state: Option<CallState>,
    },
}

#[cfg(test)]
mod tests {
    use triad_protocol::{ErrorCode, Signal};

    use super::*;

    fn roundtrip(message: &CallMessage) -> CallMessage {
        serde_json::from_str(&serde_json::to_string(message).unwrap()).unwrap()
    }

    #[test]
    fn requests_and_replies_survive_the_bus() {
        let request = CallMessage::Request {
            id: 7,
            key: 3,
            person: PersonId::new("sara.moderator").unwrap(),
            room: RoomId::new("trio-1").unwrap(),
            access: Access::Moderator { joined: true },
            request: Request::CallSignal {
                call: CallId("c-1".into()),
                to: triad_protocol::SessionId("s1".into()),
                signal: Signal::Answer {
                    sdp: "v=0\r\n".into(),
                },
            },
        };
        assert_eq!(roundtrip(&request), request);
        let refused = CallMessage::Reply {
            id: 7,
            reply: Err(CallError::new(ErrorCode::NotInCall, "not in call c-1")),
        };
        assert_eq!(roundtrip(&refused), refused);
        let answered = CallMessage::Reply {
            id: 8,
            reply: Ok(ServerMessage::Ok),
        };
        assert_eq!(roundtrip(&answered), answered);
    }
}
