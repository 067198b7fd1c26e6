//! Video calls: a room's call, its participants, the signalling relayed between them, and
//! the ICE servers (STUN, and TURN with time-limited credentials) the server hands out.
//!
//! A call belongs to one room and holds at most [`crate::limits::MAX_CALL_PARTICIPANTS`]
//! people, each connected to every other by a peer connection (a full mesh). The server
//! keeps the truth about who is in the call and relays offers, answers and ICE candidates
//! between participant sessions of the same call. For each pair of participants, the one
//! listed later in [`CallState::participants`] (the later joiner) makes the offer.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{PersonId, RoomId, SessionId, Timestamp};

/// A call, assigned by the server when the call starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One person in a call, through one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallParticipant {
    /// The session signals are addressed to (it changes when a reconnected client takes
    /// its place back with `resume`).
    pub session: SessionId,
    /// Who.
    pub person: PersonId,
    /// Whether their microphone is on.
    pub mic: bool,
    /// Whether their camera is on.
    pub camera: bool,
    /// When they joined; kept when a reconnected client takes its place back.
    pub joined_at: Timestamp,
    /// False while their connection is lost and the server waits for them to come back
    /// (the grace period); they are removed if they do not.
    pub connected: bool,
}

/// What changed in a call, for people ("Sara joined the call").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CallChangeKind {
    /// The call started.
    Started,
    /// Someone joined.
    Joined,
    /// Someone whose connection was lost came back (or moved to another session).
    Rejoined,
    /// Someone's connection was lost; they stay in the call for the grace period.
    Reconnecting,
    /// Someone left.
    Left,
    /// Someone did not come back within the grace period and was removed.
    Removed,
    /// Someone turned their microphone or camera on or off.
    Media,
}

/// The change a [`CallState`] announces, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallChange {
    /// What happened.
    pub kind: CallChangeKind,
    /// To whom.
    pub person: PersonId,
}

/// A call as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallState {
    /// The call.
    pub id: CallId,
    /// Its room.
    pub room: RoomId,
    /// Who started it.
    pub started_by: PersonId,
    /// When it started.
    pub started_at: Timestamp,
    /// The participants in the order they joined. Each makes the offer to every
    /// participant listed before it, and waits for an offer from every one after it.
    pub participants: Vec<CallParticipant>,
    /// What changed, if this state follows a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<CallChange>,
}

impl CallState {
    /// The participant of a session, if it is in the call.
    pub fn participant(&self, session: &SessionId) -> Option<&CallParticipant> {
        self.participants.iter().find(|p| &p.session == session)
    }

    /// Whether `session` makes the offer to `other` (it joined later).
    pub fn offers_to(&self, session: &SessionId, other: &SessionId) -> bool {
        let position = |s: &SessionId| self.participants.iter().position(|p| &p.session == s);
        matches!((position(session), position(other)), (Some(a), Some(b)) if a > b)
    }
}

/// A signalling message between two participants' peer connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// A session description offer. `ice_restart` marks an offer made to restart ICE after
    /// a network change; it is relayed like any other offer.
    Offer {
        /// The SDP, at most [`crate::limits::MAX_SDP_BYTES`].
        sdp: String,
        /// Whether the offer restarts ICE.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ice_restart: bool,
    },
    /// The answer to an offer.
    Answer {
        /// The SDP, at most [`crate::limits::MAX_SDP_BYTES`].
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate line, at most [`crate::limits::MAX_CANDIDATE_BYTES`].
        candidate: String,
        /// The media section's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The media section's index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
}

impl Signal {
    /// The signal's kind name, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Offer { .. } => "offer",
            Self::Answer { .. } => "answer",
            Self::Candidate { .. } => "candidate",
        }
    }
}

/// One STUN or TURN server, as a browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs, e.g. `turns:turn.example.org:443?transport=tcp`.
    pub urls: Vec<String>,
    /// The TURN username: `<unix expiry>:<person>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password for the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The ICE servers for one participant, with when their TURN credentials expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct IceServers {
    /// The call they are for.
    pub call: CallId,
    /// The servers (empty when the deployment has none: host candidates only).
    pub servers: Vec<IceServer>,
    /// When the TURN credentials expire (ms since the Unix epoch). The server pushes new
    /// ones at about 80% of their lifetime; `ice_servers` asks for fresh ones at any time.
    pub expires_at: Timestamp,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    /// Someone ended it for everyone (`call_end`).
    Ended,
    /// The last participant left or was removed.
    Empty,
    /// The server that held the call stopped (with several servers, the one where it
    /// started); start the call again.
    ServerLost,
}
