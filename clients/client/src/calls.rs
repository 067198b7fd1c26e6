//! Call requests on a [`Client`]: start or join a room's call, leave, end, media flags,
//! signalling, fresh ICE servers. What the server pushes about calls arrives as
//! [`crate::ClientEvent`]s (`CallState`, `CallSignal`, `CallEnded`, `IceServers`).

use triad_protocol::{
    CallId, CallState, IceServers, Request, RoomId, ServerMessage, SessionId, Signal,
};

use crate::client::Client;
use crate::connection::unexpected;
use crate::error::ClientError;

/// The answer to starting or joining a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallJoined {
    /// The call as it is now.
    pub call: CallState,
    /// This session's id in the call.
    pub session: SessionId,
    /// The STUN and TURN servers to use, with this person's credentials.
    pub ice_servers: IceServers,
}

fn joined(message: ServerMessage, request: &str) -> Result<CallJoined, ClientError> {
    match message {
        ServerMessage::CallJoined {
            call,
            session,
            ice_servers,
        } => Ok(CallJoined {
            call,
            session,
            ice_servers,
        }),
        other => Err(unexpected(&other, request)),
    }
}

impl Client {
    /// Starts the room's call, or joins the one in progress.
    pub async fn call_start(&self, room: &RoomId) -> Result<CallJoined, ClientError> {
        let answer = self
            .request(Request::CallStart { room: room.clone() })
            .await?;
        joined(answer, "call_start")
    }

    /// Joins a call; with `resume`, takes back this person's place after a reconnect.
    pub async fn call_join(&self, call: &CallId, resume: bool) -> Result<CallJoined, ClientError> {
        let request = Request::CallJoin {
            call: call.clone(),
            resume,
        };
        joined(self.request(request).await?, "call_join")
    }

    /// Leaves a call.
    pub async fn call_leave(&self, call: &CallId) -> Result<(), ClientError> {
        let request = Request::CallLeave { call: call.clone() };
        self.expect_ok_of(request, "call_leave").await
    }

    /// Ends a call for everyone.
    pub async fn call_end(&self, call: &CallId) -> Result<(), ClientError> {
        let request = Request::CallEnd { call: call.clone() };
        self.expect_ok_of(request, "call_end").await
    }

    /// Says whether the microphone and camera are on.
    pub async fn call_media(
        &self,
        call: &CallId,
        mic: bool,
        camera: bool,
    ) -> Result<(), ClientError> {
        let request = Request::CallMedia {
            call: call.clone(),
            mic,
            camera,
        };
        self.expect_ok_of(request, "call_media").await
    }

    /// Sends an offer, answer or candidate to another participant session of the call.
    pub async fn call_signal(
        &self,
        call: &CallId,
        to: &SessionId,
        signal: Signal,
    ) -> Result<(), ClientError> {
        let request = Request::CallSignal {
            call: call.clone(),
            to: to.clone(),
            signal,
        };
        self.expect_ok_of(request, "call_signal").await
    }

    /// Fresh ICE servers and TURN credentials for a call.
    pub async fn ice_servers(&self, call: &CallId) -> Result<IceServers, ClientError> {
        match self
            .request(Request::IceServers { call: call.clone() })
            .await?
        {
            ServerMessage::IceServers(servers) => Ok(servers),
            other => Err(unexpected(&other, "ice_servers")),
        }
    }

    async fn expect_ok_of(&self, request: Request, name: &str) -> Result<(), ClientError> {
        match self.request(request).await? {
            ServerMessage::Ok => Ok(()),
            other => Err(unexpected(&other, name)),
        }
    }
}
