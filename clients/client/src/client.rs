//! The [`Client`] handle: typed requests to the connection task, each bounded by a timeout.
//! Cloning a handle is cheap; the task stops when [`Client::close`] is called or every
//! handle is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;
use triad_protocol::{
    Ack, ClientMsgId, CoachingSession, History, PresenceStatus, Request, RoomId, RoomInfo, Seq,
    ServerMessage, Welcome,
};

use crate::config::ClientConfig;
use crate::connection::{Channels, Command, Connection, Control, RequestIds, unexpected};
use crate::error::ClientError;
use crate::events::{EventSink, Events};
use crate::socket;

/// Commands waiting for the connection task before callers wait to queue more.
const COMMANDS_CAPACITY: usize = 256;

/// A handle to a client connection. Requests made while the connection is down fail with
/// [`ClientError::Disconnected`], except sends, which wait for the reconnect.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    control: watch::Sender<Control>,
    welcome: watch::Receiver<Welcome>,
    request_timeout: Duration,
    send_timeout: Duration,
}

impl Client {
    /// Connects, says `hello` and returns once the server has welcomed the client, with the
    /// events of the connection (the first is [`crate::ClientEvent::Connected`]). A failure
    /// of this first connection (network, refused token, timeout) is returned, not retried.
    /// Must be called within a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<(Client, Events), ClientError> {
        let hello_id = 1;
        let (socket, welcome) = socket::connect(
            &config,
            &config.token,
            Vec::new(),
            hello_id,
            config.request_timeout,
        )
        .await
        .map_err(|failure| failure.error)?;
        let (commands_tx, commands) = mpsc::channel(COMMANDS_CAPACITY);
        let (control_tx, control) = watch::channel(Control::default());
        let (welcome_tx, welcome_rx) = watch::channel(welcome.clone());
        let (sink, events) = EventSink::channel();
        let inner = Inner {
            commands: commands_tx,
            control: control_tx,
            welcome: welcome_rx,
            request_timeout: config.request_timeout,
            send_timeout: config.send_timeout,
        };
        let channels = Channels {
            commands,
            control,
            welcome: welcome_tx,
            events: sink,
        };
        let connection = Connection::new(config, channels, RequestIds::after(hello_id));
        tokio::spawn(connection.run(socket, welcome));
        Ok((
            Client {
                inner: Arc::new(inner),
            },
            events,
        ))
    }

    /// The latest welcome (replaced on every reconnect).
    pub fn welcome(&self) -> Welcome {
        self.inner.welcome.borrow().clone()
    }

    /// Sends a message under a new random client message id; returns once it is stored.
    /// See [`Client::send_with_id`].
    pub async fn send(&self, room: &RoomId, body: &str) -> Result<Ack, ClientError> {
        self.send_with_id(room, new_client_msg_id(), body).await
    }

    /// Sends a message under the given client message id; returns once it is stored. The
    /// message is sent again, with the same id, after every reconnect and after refusals for
    /// a passing reason, until it is acknowledged or the send timeout passes
    /// ([`ClientError::Timeout`]). The server stores an id once: a repeated id is answered
    /// with the original ack, marked `duplicate`.
    pub async fn send_with_id(
        &self,
        room: &RoomId,
        client_msg_id: ClientMsgId,
        body: &str,
    ) -> Result<Ack, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            room: room.clone(),
            client_msg_id,
            body: body.to_owned(),
            reply,
        };
        self.ask(command, answer, self.inner.send_timeout).await?
    }

    /// A page of a room's history: the latest events, or those before or after a sequence
    /// number, in ascending order.
    pub async fn history(
        &self,
        room: &RoomId,
        before: Option<Seq>,
        after: Option<Seq>,
        limit: Option<u32>,
    ) -> Result<History, ClientError> {
        let request = Request::History {
            room: room.clone(),
            before,
            after,
            limit,
        };
        match self.request(request).await? {
            ServerMessage::History(history) => Ok(history),
            other => Err(unexpected(&other, "history")),
        }
    }

    /// Enters a room (a moderator entering a trio room; its members are told). Events of
    /// the room are delivered from then on.
    pub async fn join(&self, room: &RoomId) -> Result<RoomInfo, ClientError> {
        match self.request(Request::Join { room: room.clone() }).await? {
            ServerMessage::Joined { room } => Ok(room),
            other => Err(unexpected(&other, "join")),
        }
    }

    /// Leaves a room entered with [`Client::join`].
    pub async fn leave(&self, room: &RoomId) -> Result<(), ClientError> {
        match self.request(Request::Leave { room: room.clone() }).await? {
            ServerMessage::Left { .. } | ServerMessage::Ok => Ok(()),
            other => Err(unexpected(&other, "leave")),
        }
    }

    /// Says the person started (`true`) or stopped typing in a room.
    pub async fn typing(&self, room: &RoomId, active: bool) -> Result<(), ClientError> {
        self.expect_ok(
            Request::Typing {
                room: room.clone(),
                active,
            },
            "typing",
        )
        .await
    }

    /// Moves the person's read marker; returns the marker the server keeps.
    pub async fn read(&self, room: &RoomId, seq: Seq) -> Result<Seq, ClientError> {
        match self
            .request(Request::Read {
                room: room.clone(),
                seq,
            })
            .await?
        {
            ServerMessage::Read { seq, .. } => Ok(seq),
            other => Err(unexpected(&other, "read")),
        }
    }

    /// The coaching sessions of the person's rooms (or of one room) that have not ended,
    /// soonest first.
    pub async fn coachings(
        &self,
        room: Option<&RoomId>,
    ) -> Result<Vec<CoachingSession>, ClientError> {
        match self
            .request(Request::Coachings {
                room: room.cloned(),
            })
            .await?
        {
            ServerMessage::Coachings { coachings } => Ok(coachings),
            other => Err(unexpected(&other, "coachings")),
        }
    }

    /// Pins a message as key learning (`true`) or takes the pin away.
    pub async fn pin(&self, room: &RoomId, seq: Seq, pinned: bool) -> Result<(), ClientError> {
        let room = room.clone();
        let request = if pinned {
            Request::Pin { room, seq }
        } else {
            Request::Unpin { room, seq }
        };
        self.expect_ok(request, "pin").await
    }

    /// Sets the session's presence (`online` or `away`).
    pub async fn set_presence(&self, status: PresenceStatus) -> Result<(), ClientError> {
        self.expect_ok(Request::Presence { status }, "presence")
            .await
    }

    /// Replaces the token: on the current connection (the server checks it), and for every
    /// later `hello`. While disconnected, the token is kept for the next `hello` and this
    /// returns at once. A token the server refuses is not kept.
    pub async fn refresh(&self, token: String) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Command::Refresh { token, reply },
            answer,
            self.inner.request_timeout,
        )
        .await?
    }

    /// Any request, answered by the server's message; an `error` answer is returned as
    /// [`ClientError::Server`]. `send` and `refresh` go through [`Client::send_with_id`] and
    /// [`Client::refresh`] (answered by `ack` and `ok`); `hello` is refused, the client says
    /// it itself.
    pub async fn request(&self, request: Request) -> Result<ServerMessage, ClientError> {
        match request {
            Request::Send {
                room,
                client_msg_id,
                body,
            } => self
                .send_with_id(&room, client_msg_id, &body)
                .await
                .map(ServerMessage::Ack),
            Request::Refresh { token } => self.refresh(token).await.map(|()| ServerMessage::Ok),
            Request::Hello { .. } => Err(ClientError::Protocol(
                "`hello` is sent by the client itself".into(),
            )),
            request => {
                let (reply, answer) = oneshot::channel();
                self.ask(
                    Command::Request { request, reply },
                    answer,
                    self.inner.request_timeout,
                )
                .await?
            }
        }
    }

    /// `false`: drops the connection now, without a close frame, and stays disconnected;
    /// `true`: connects again (resuming where the client was).
    pub fn set_online(&self, online: bool) {
        self.inner
            .control
            .send_modify(|control| control.online = online);
    }

    /// Drops the connection now, without a close frame, as a network failure would; the
    /// client reconnects by itself.
    pub fn drop_connection(&self) {
        self.inner.control.send_modify(|control| control.drops += 1);
    }

    /// Closes the connection cleanly (1000) and stops the task, for every handle. Sends
    /// still waiting fail with [`ClientError::Closed`]. The last event is
    /// [`crate::ClientEvent::Closed`].
    pub async fn close(self) {
        let (done, stopped) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { done })
            .await
            .is_ok()
        {
            // An error means the task had already stopped, which is what was asked.
            stopped.await.ok();
        }
    }

    async fn expect_ok(&self, request: Request, name: &str) -> Result<(), ClientError> {
        match self.request(request).await? {
            ServerMessage::Ok => Ok(()),
            other => Err(unexpected(&other, name)),
        }
    }

    /// Queues a command and waits for its answer, all within `limit`.
    async fn ask<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<T>,
        limit: Duration,
    ) -> Result<T, ClientError> {
        let exchange = async {
            self.inner
                .commands
                .send(command)
                .await
                .map_err(|_| ClientError::Closed)?;
            answer.await.map_err(|_| ClientError::Closed)
        };
        timeout(limit, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

/// A fresh client message id: a random UUID.
pub fn new_client_msg_id() -> ClientMsgId {
    ClientMsgId(uuid::Uuid::new_v4().to_string())
}
