//! The background task that owns the websocket. It is an actor: it takes [`Command`]s from
//! the [`crate::Client`] handles and a [`Control`] value for going offline or dropping the
//! connection, answers each request over its own oneshot, and pushes [`ClientEvent`]s.
//!
//! Its life is a loop: a connected session (read frames, write requests, ping, resend
//! unacknowledged messages), then, when the connection drops, reconnect attempts with
//! backoff, each `hello` carrying the positions to resume from. It ends when the client is
//! closed, every handle is dropped, or the server refuses to let it back in.

//!
//! Submodules: `reconnect` (no connection: backoff and `hello`), `session` (the connected
//! loop and the commands it carries out), `frames` (what the server says).

mod frames;
mod reconnect;
mod session;

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot, watch};
use triad_protocol::limits::MAX_PAGE_SIZE;
use triad_protocol::{ClientMsgId, CloseCode, Request, RequestId, RoomId, ServerMessage, Welcome};

use crate::backoff::Backoff;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::events::{ClientEvent, EventSink};
use crate::outbox::{AckReply, Outbox};
use crate::positions::Positions;
use crate::socket::Socket;

pub(crate) use frames::unexpected;

/// How long a stopping client waits for the application to read its last events.
const FINISH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a [`crate::Client`] asks of the connection.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a request and pass on its answer.
    Request {
        request: Request,
        reply: oneshot::Sender<Result<ServerMessage, ClientError>>,
    },
    /// Send a message until it is acknowledged.
    Send {
        room: RoomId,
        client_msg_id: ClientMsgId,
        body: String,
        reply: AckReply,
    },
    /// Use a new token, now and for every later `hello`.
    Refresh {
        token: String,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Close cleanly and stop.
    Close { done: oneshot::Sender<()> },
}

/// What the application wants of the connection's state, set without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Control {
    /// Whether the client should be connected.
    pub online: bool,
    /// How many times the application asked to drop the connection.
    pub drops: u64,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            online: true,
            drops: 0,
        }
    }
}

/// A request on the wire, waiting for its answer.
#[derive(Debug)]
enum Pending {
    /// A request of the application.
    Request(oneshot::Sender<Result<ServerMessage, ClientError>>),
    /// A message of the outbox (which knows it by request id).
    Send,
    /// A new token, adopted once the server accepts it.
    Refresh {
        token: String,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// A history page to fill a gap in a room.
    Fill(RoomId),
}

impl Pending {
    /// Whether nobody waits for the answer any more.
    fn abandoned(&self) -> bool {
        match self {
            Self::Request(reply) => reply.is_closed(),
            Self::Send | Self::Refresh { .. } | Self::Fill(_) => false,
        }
    }
}

/// How a connected session ended.
#[derive(Debug)]
enum End {
    /// The connection is gone: reconnect unless the close code forbids it.
    Dropped { code: Option<u16>, reason: String },
    /// The client gave up on this connection: close it cleanly, then reconnect.
    Reconnect { reason: String },
    /// The application set the client offline.
    Offline,
    /// The client stops.
    Stop(Stop),
}

/// Why the client stops, and who waits for it.
#[derive(Debug)]
struct Stop {
    code: Option<u16>,
    reason: String,
    done: Option<oneshot::Sender<()>>,
}

impl Stop {
    fn handles_dropped() -> Self {
        Self {
            code: Some(1000),
            reason: "every client handle was dropped".into(),
            done: None,
        }
    }

    fn closed(done: oneshot::Sender<()>) -> Self {
        Self {
            code: Some(1000),
            reason: "closed by the client".into(),
            done: Some(done),
        }
    }
}

/// Request ids, unique over the client's life.
#[derive(Debug, Default)]
pub(crate) struct RequestIds(RequestId);

impl RequestIds {
    /// Ids after the ones already used.
    pub fn after(used: RequestId) -> Self {
        Self(used)
    }

    /// The next id.
    pub fn next(&mut self) -> RequestId {
        self.0 += 1;
        self.0
    }
}

/// The connection actor's state.
pub(crate) struct Connection {
    config: ClientConfig,
    /// The token for the next `hello`.
    token: String,
    commands: mpsc::Receiver<Command>,
    control: watch::Receiver<Control>,
    /// The drop requests already carried out.
    drops_seen: u64,
    welcome: watch::Sender<Welcome>,
    events: EventSink,
    positions: Positions,
    outbox: Outbox,
    backoff: Backoff,
    pending: HashMap<RequestId, Pending>,
    ids: RequestIds,
    /// The history page size for filling gaps.
    page_size: u32,
}

/// The channels a [`Connection`] is built from.
pub(crate) struct Channels {
    pub commands: mpsc::Receiver<Command>,
    pub control: watch::Receiver<Control>,
    pub welcome: watch::Sender<Welcome>,
    pub events: EventSink,
}

impl Connection {
    /// The actor for a client whose first `hello` used request ids up to `ids`.
    pub fn new(config: ClientConfig, channels: Channels, ids: RequestIds) -> Self {
        Self {
            token: config.token.clone(),
            commands: channels.commands,
            control: channels.control,
            drops_seen: 0,
            welcome: channels.welcome,
            events: channels.events,
            positions: Positions::new(),
            outbox: Outbox::new(config.backoff_initial, config.backoff_max),
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            pending: HashMap::new(),
            ids,
            page_size: MAX_PAGE_SIZE,
            config,
        }
    }

    /// Runs from a first, established connection until the client stops.
    pub async fn run(mut self, socket: Socket, welcome: Welcome) {
        let mut connected = Some((socket, welcome));
        loop {
            let (socket, welcome) = match connected.take() {
                Some(connection) => connection,
                None => match self.reconnect().await {
                    Ok(connection) => connection,
                    Err(stop) => return self.stop(stop).await,
                },
            };
            self.on_welcome(welcome);
            let (code, reason) = match self.session(socket).await {
                End::Stop(stop) => return self.stop(stop).await,
                End::Dropped { code, reason }
                    if code.is_some_and(|code| !CloseCode(code).should_reconnect()) =>
                {
                    return self
                        .stop(Stop {
                            code,
                            reason,
                            done: None,
                        })
                        .await;
                }
                End::Dropped { code, reason } => (code, reason),
                End::Reconnect { reason } => (None, reason),
                End::Offline => (None, "set offline".to_owned()),
            };
            tracing::info!(?code, %reason, "disconnected");
            self.on_disconnect();
            self.events.push(ClientEvent::Disconnected { code, reason });
        }
    }

    fn online(&self) -> bool {
        self.control.borrow().online
    }

    /// A welcome, first or after a reconnect.
    fn on_welcome(&mut self, welcome: Welcome) {
        self.backoff.reset();
        self.positions.on_welcome(&welcome);
        self.page_size = welcome.limits.max_page_size.clamp(1, MAX_PAGE_SIZE);
        self.welcome.send_replace(welcome.clone());
        self.events.push(ClientEvent::Connected(welcome));
    }

    /// The connection is gone: fail what waited on it, and forget what it would have sent.
    fn on_disconnect(&mut self) {
        for (_, pending) in self.pending.drain() {
            match pending {
                // A caller that already gave up has nobody to tell.
                Pending::Request(reply) => reply.send(Err(ClientError::Disconnected)).ok(),
                Pending::Refresh { token, reply } => {
                    // The server may or may not have taken the token; the next `hello` uses
                    // it either way and will say.
                    self.token = token;
                    reply.send(Err(ClientError::Disconnected)).ok()
                }
                Pending::Send | Pending::Fill(_) => None,
            };
        }
        self.positions.on_disconnect();
        self.outbox.on_disconnect();
    }

    /// The client stops: fail everything waiting, tell the application, and deliver what
    /// it has not read yet.
    async fn stop(mut self, stop: Stop) {
        tracing::info!(code = ?stop.code, reason = %stop.reason, "client stopped");
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            fail(command, ClientError::Closed);
        }
        for (_, pending) in self.pending.drain() {
            if let Pending::Request(reply) = pending {
                // A caller that already gave up has nobody to tell.
                reply.send(Err(ClientError::Closed)).ok();
            }
        }
        self.outbox.fail_all(&ClientError::Closed);
        self.events.push(ClientEvent::Closed {
            code: stop.code,
            reason: stop.reason,
        });
        if let Some(done) = stop.done {
            // The caller of `close` may have stopped waiting.
            done.send(()).ok();
        }
        self.events.finish(FINISH_PATIENCE).await;
    }
}

/// Answers a command that cannot be carried out.
fn fail(command: Command, err: ClientError) {
    // In each arm, a caller that already gave up has nobody to tell.
    match command {
        Command::Request { reply, .. } => reply.send(Err(err)).ok(),
        Command::Send { reply, .. } => reply.send(Err(err)).ok(),
        Command::Refresh { reply, .. } => reply.send(Err(err)).ok(),
        Command::Close { done } => done.send(()).ok(),
    };
}
