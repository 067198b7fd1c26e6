//! What the agent knows, published after every change: its session, the call as last
//! pushed, and per peer the connection state, the data channel and its round trips.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use triad_protocol::{CallEndReason, CallState, PersonId, SessionId};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

/// One peer as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's session (signals go there).
    pub session: SessionId,
    /// Whether this agent makes the offer (it joined later).
    pub offerer: bool,
    /// The peer connection's state.
    pub state: RTCPeerConnectionState,
    /// When it first reached `connected`.
    pub connected_at: Option<Instant>,
    /// Whether the data channel is open.
    pub channel_open: bool,
    /// Pings answered by the peer.
    pub round_trips: u64,
    /// The last round trip's time.
    pub last_rtt: Option<Duration>,
    /// The last negotiation failure, if any.
    pub error: Option<String>,
}

impl PeerStatus {
    /// A peer not yet negotiated.
    pub fn new(session: SessionId, offerer: bool) -> Self {
        Self {
            session,
            offerer,
            state: RTCPeerConnectionState::New,
            connected_at: None,
            channel_open: false,
            round_trips: 0,
            last_rtt: None,
            error: None,
        }
    }

    /// Connected, with data going both ways (at least `round_trips` answered pings).
    pub fn exchanging(&self, round_trips: u64) -> bool {
        self.state == RTCPeerConnectionState::Connected && self.round_trips >= round_trips
    }
}

/// Everything the agent knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// This agent's session in the call (changes after a reconnect).
    pub session: SessionId,
    /// The call as last pushed by the server.
    pub call: Option<CallState>,
    /// The other participants, by person.
    pub peers: BTreeMap<PersonId, PeerStatus>,
    /// Everyone this agent saw leave the call state, in order (a person may appear more
    /// than once).
    pub departures: Vec<PersonId>,
    /// How many times the agent took its place back after a reconnect.
    pub rejoins: u64,
    /// How many times the server pushed fresh ICE servers.
    pub ice_refreshes: u64,
    /// Why the call ended, once it has.
    pub ended: Option<CallEndReason>,
}

impl AgentStatus {
    /// The people in the call as last pushed (this agent's person included).
    pub fn participants(&self) -> Vec<PersonId> {
        self.call
            .as_ref()
            .map(|call| call.participants.iter().map(|p| p.person.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether every other participant of the call is a peer with data going both ways.
    pub fn full_mesh(&self, round_trips: u64) -> bool {
        let Some(call) = &self.call else { return false };
        call.participants
            .iter()
            .filter(|p| p.session != self.session)
            .all(|p| {
                self.peers
                    .get(&p.person)
                    .is_some_and(|peer| peer.exchanging(round_trips))
            })
    }
}
