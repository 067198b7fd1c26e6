//! The Triad call agent: joins a room's call through `triad-client`, negotiates a peer
//! connection (webrtc-rs) with every other participant following the server's offerer
//! rule, and exchanges pings over a data channel with each. The tests use it in-process;
//! operators run `triad-call` to check that calls work on a network (with `--relay-only`,
//! through the TURN server and the credentials Triad issues).
//!
//! ```no_run
//! # async fn demo() -> Result<(), triad_call::AgentError> {
//! use std::time::Duration;
//! use triad_call::{AgentSettings, CallAgent};
//!
//! let settings = AgentSettings::new("ws://127.0.0.1:8080/ws", "a-jwt", "trio-1".parse()?);
//! let agent = CallAgent::start(settings).await?;
//! agent.wait_for("a full mesh", Duration::from_secs(10), |s| s.full_mesh(1)).await?;
//! agent.leave().await;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - `agent`: the loop that owns the peer connections (an actor).
//! - [`peer`]: building one peer connection, its data channel, its events.
//! - [`status`]: what the agent knows, published after every change.

mod agent;
pub mod peer;
pub mod status;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use triad_client::{Client, ClientConfig, ClientError};
use triad_protocol::{IceServer, IdError, RoomId};

pub use peer::NetworkSettings;
pub use status::{AgentStatus, PeerStatus};
pub use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState as PeerState;

/// Why the agent could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A malformed room id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// Something awaited did not happen in time; the status says how far it got.
    #[error("timed out waiting for {what}; last status: {status:#?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The status when the time ran out.
        status: Box<AgentStatus>,
    },
    /// The agent's loop has stopped.
    #[error("the agent has stopped")]
    Stopped,
}

/// What the agent needs.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The server's websocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub url: String,
    /// A token for the person the agent speaks for.
    pub token: String,
    /// The room whose call to join (or start).
    pub room: RoomId,
    /// Enter the room first (`join`): a moderator must, and it is announced to the room.
    pub join_room: bool,
    /// Relay-only, loopback candidates.
    pub network: NetworkSettings,
    /// ICE servers to use instead of those the server hands out (for diagnosis and tests,
    /// e.g. deliberately expired TURN credentials).
    pub ice_override: Option<Vec<IceServer>>,
    /// How often each open data channel is pinged.
    pub ping_every: Duration,
}

impl AgentSettings {
    /// Settings with a ping every 250 ms, the server's ICE servers, any network.
    pub fn new(url: impl Into<String>, token: impl Into<String>, room: RoomId) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            room,
            join_room: false,
            network: NetworkSettings::default(),
            ice_override: None,
            ping_every: Duration::from_millis(250),
        }
    }
}

/// A running agent: in the call, negotiating and pinging in the background.
pub struct CallAgent {
    client: Client,
    status: watch::Receiver<AgentStatus>,
    commands: mpsc::Sender<agent::Command>,
    task: tokio::task::JoinHandle<()>,
}

impl CallAgent {
    /// Connects, starts or joins the room's call, and starts negotiating.
    pub async fn start(settings: AgentSettings) -> Result<Self, AgentError> {
        let config = ClientConfig::new(settings.url.clone(), settings.token.clone());
        let (client, events) = Client::connect(config).await?;
        if settings.join_room {
            client.join(&settings.room).await?;
        }
        let joined = client.call_start(&settings.room).await?;
        let (status_tx, status) = watch::channel(AgentStatus {
            session: joined.session.clone(),
            call: Some(joined.call.clone()),
            peers: Default::default(),
            departures: Vec::new(),
            rejoins: 0,
            ice_refreshes: 0,
            ended: None,
        });
        let (commands, commands_rx) = mpsc::channel(8);
        let (agent, first) = agent::Agent::new(
            client.clone(),
            events,
            joined,
            settings,
            commands_rx,
            status_tx,
        );
        let task = tokio::spawn(agent.run(first));
        Ok(Self {
            client,
            status,
            commands,
            task,
        })
    }

    /// The agent's connection to the server (e.g. to drop it, as a network failure would).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the agent knows now.
    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// Waits until `done` holds for the status, for at most `limit`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&AgentStatus) -> bool,
    ) -> Result<AgentStatus, AgentError> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(limit, status.wait_for(|s| done(s))).await;
        match waited {
            Ok(Ok(status)) => Ok(status.clone()),
            Ok(Err(_)) => Err(AgentError::Stopped),
            Err(_) => Err(AgentError::Timeout {
                what: what.to_owned(),
                status: Box::new(self.status()),
            }),
        }
    }

    /// Restarts ICE with every peer this agent offers to (as after a network change).
    pub async fn restart_ice(&self) -> Result<(), AgentError> {
        self.commands
            .send(agent::Command::RestartIce)
            .await
            .map_err(|_| AgentError::Stopped)
    }

    /// Leaves the call, closes every peer connection and the server connection.
    pub async fn leave(self) {
        let (done, left) = oneshot::channel();
        if self
            .commands
            .send(agent::Command::Leave(done))
            .await
            .is_ok()
        {
            // An error means the loop had already stopped.
            left.await.ok();
        }
        self.client.close().await;
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "the agent's loop failed");
        }
    }

    /// Stops without leaving the call: the server connection is closed and the peer
    /// connections with it, as when the program is killed.
    pub async fn abandon(self) {
        self.client.close().await;
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "the agent's loop failed");
        }
    }
}
