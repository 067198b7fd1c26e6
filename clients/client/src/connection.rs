//! The background task that owns the websocket. It is an actor: it takes [`Command`]s from
//! the [`crate::Client`] handles and a [`Control`] value for going offline or dropping the
//! connection, answers each request over its own oneshot, and pushes [`ClientEvent`]s.
//!
//! Its life is a loop: a connected session (read frames, write requests, ping, resend
//! unacknowledged messages), then, when the connection drops, reconnect attempts with
//! backoff, each `hello` carrying the positions to resume from. It ends when the client is
//! closed, every handle is dropped, or the server refuses to let it back in.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use triad_protocol::limits::MAX_PAGE_SIZE;
use triad_protocol::{
    ClientFrame, ClientMsgId, CloseCode, Request, RequestId, RoomId, ServerFrame, ServerMessage,
    Welcome,
};

use crate::backoff::Backoff;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::events::{ClientEvent, EventSink};
use crate::outbox::{AckReply, Outbox};
use crate::positions::{Delivery, Outcome, Positions};
use crate::socket::{self, Incoming, Socket};

/// How long a stopping client waits for the application to read its last events.
const FINISH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a [`crate::Client`] asks of the connection.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a request and pass on its answer.
    Request { request: Request, reply: oneshot::Sender<Result<ServerMessage, ClientError>> },
    /// Send a message until it is acknowledged.
    Send { room: RoomId, client_msg_id: ClientMsgId, body: String, reply: AckReply },
    /// Use a new token, now and for every later `hello`.
    Refresh { token: String, reply: oneshot::Sender<Result<(), ClientError>> },
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
        Self { online: true, drops: 0 }
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
    Refresh { token: String, reply: oneshot::Sender<Result<(), ClientError>> },
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
        Self { code: Some(1000), reason: "every client handle was dropped".into(), done: None }
    }

    fn closed(done: oneshot::Sender<()>) -> Self {
        Self { code: Some(1000), reason: "closed by the client".into(), done: Some(done) }
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
            let end = self.session(socket).await;
            self.on_disconnect();
            match end {
                End::Stop(stop) => return self.stop(stop).await,
                End::Offline => self.events.push(ClientEvent::Disconnected {
                    code: None,
                    reason: "set offline".into(),
                }),
                End::Reconnect { reason } => {
                    self.events.push(ClientEvent::Disconnected { code: None, reason });
                }
                End::Dropped { code, reason } => {
                    if code.is_some_and(|code| !CloseCode(code).should_reconnect()) {
                        return self.stop(Stop { code, reason, done: None }).await;
                    }
                    tracing::info!(?code, %reason, "connection dropped; reconnecting");
                    self.events.push(ClientEvent::Disconnected { code, reason });
                }
            }
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
        self.events.push(ClientEvent::Closed { code: stop.code, reason: stop.reason });
        if let Some(done) = stop.done {
            // The caller of `close` may have stopped waiting.
            done.send(()).ok();
        }
        self.events.finish(FINISH_PATIENCE).await;
    }

    /// Reconnects: waits while offline, backs off, says `hello` with the positions to
    /// resume from, and again until a welcome or a refusal for good.
    async fn reconnect(&mut self) -> Result<(Socket, Welcome), Stop> {
        loop {
            if !self.online() {
                self.wait_disconnected(None).await?;
                continue;
            }
            let delay = self.backoff.next_delay();
            self.wait_disconnected(Some(Instant::now() + delay)).await?;
            if !self.online() {
                continue;
            }
            let config = self.config.clone();
            let token = self.token.clone();
            let resume = self.positions.resume_points();
            let hello_id = self.ids.next();
            let attempt = socket::connect(&config, &token, resume, hello_id, config.request_timeout);
            tokio::pin!(attempt);
            let result = loop {
                tokio::select! {
                    result = &mut attempt => break Some(result),
                    command = self.commands.recv() => self.disconnected_command(command)?,
                    changed = self.control.changed() => {
                        changed.map_err(|_| Stop::handles_dropped())?;
                        self.drops_seen = self.control.borrow_and_update().drops;
                        if !self.online() {
                            break None;
                        }
                    }
                }
            };
            match result {
                None => {}
                Some(Ok(connection)) => return Ok(connection),
                Some(Err(failure)) if failure.retry => {
                    tracing::debug!(error = %failure.error, "reconnect attempt failed");
                }
                Some(Err(failure)) => {
                    return Err(Stop {
                        code: failure.close,
                        reason: failure.error.to_string(),
                        done: None,
                    });
                }
            }
        }
    }

    /// Waits without a connection, taking commands: until `until`, or (with no deadline)
    /// until the client is set online. Returns early when the online state changes.
    async fn wait_disconnected(&mut self, until: Option<Instant>) -> Result<(), Stop> {
        loop {
            tokio::select! {
                () = sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => return Ok(()),
                command = self.commands.recv() => self.disconnected_command(command)?,
                changed = self.control.changed() => {
                    changed.map_err(|_| Stop::handles_dropped())?;
                    let control = *self.control.borrow_and_update();
                    self.drops_seen = control.drops;
                    if control.online == until.is_none() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A command while there is no connection.
    fn disconnected_command(&mut self, command: Option<Command>) -> Result<(), Stop> {
        match command {
            None => Err(Stop::handles_dropped()),
            Some(Command::Close { done }) => Err(Stop::closed(done)),
            Some(Command::Send { room, client_msg_id, body, reply }) => {
                self.outbox.add(room, client_msg_id, body, reply);
                Ok(())
            }
            Some(Command::Refresh { token, reply }) => {
                self.token = token;
                // The caller may have stopped waiting; the token is taken either way.
                reply.send(Ok(())).ok();
                Ok(())
            }
            Some(command @ Command::Request { .. }) => {
                fail(command, ClientError::Disconnected);
                Ok(())
            }
        }
    }

    /// A connected session, until the connection ends.
    async fn session(&mut self, mut socket: Socket) -> End {
        let end = match self.transmit_sends(&mut socket).await {
            Ok(()) => self.session_loop(&mut socket).await,
            Err(end) => end,
        };
        match end {
            End::Reconnect { .. } | End::Stop(_) => socket::close(socket).await,
            // Offline and dropped connections end abruptly: the socket is dropped.
            End::Offline | End::Dropped { .. } => drop(socket),
        }
        end
    }

    async fn session_loop(&mut self, socket: &mut Socket) -> End {
        let ping_interval = self.config.ping_interval;
        let idle_timeout = self.config.idle_timeout;
        let mut last_frame = Instant::now();
        let mut next_ping = last_frame + ping_interval;
        loop {
            let reading = !self.events.is_saturated();
            let idle_at = last_frame + idle_timeout;
            let mut wake = next_ping;
            if reading {
                wake = wake.min(idle_at);
            }
            if let Some(retry) = self.outbox.next_retry() {
                wake = wake.min(retry);
            }
            let step = tokio::select! {
                message = socket.next(), if reading => {
                    last_frame = Instant::now();
                    match message {
                        Some(Ok(message)) => self.on_message(socket, message).await,
                        Some(Err(err)) => Err(End::Dropped { code: None, reason: err.to_string() }),
                        None => Err(End::Dropped { code: None, reason: "the connection closed".into() }),
                    }
                }
                command = self.commands.recv() => self.on_command(socket, command).await,
                changed = self.control.changed() => self.on_control(changed.is_ok()),
                () = self.events.flush() => {
                    if !reading {
                        // The socket was not read while the application caught up: its
                        // silence says nothing about the server.
                        last_frame = Instant::now();
                    }
                    Ok(())
                }
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    if reading && now >= idle_at {
                        Err(End::Dropped {
                            code: None,
                            reason: format!("no frame from the server for {}s", idle_timeout.as_secs()),
                        })
                    } else {
                        self.prune();
                        let ping = if now >= next_ping {
                            next_ping = now + ping_interval;
                            // The pong is read as a push with an unknown `re`, and ignored.
                            let id = self.ids.next();
                            self.write(socket, ClientFrame::new(id, Request::Ping)).await
                        } else {
                            Ok(())
                        };
                        match ping {
                            Ok(()) => self.transmit_sends(socket).await,
                            Err(end) => Err(end),
                        }
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Forgets requests nobody waits for.
    fn prune(&mut self) {
        self.outbox.prune();
        self.pending.retain(|_, pending| !pending.abandoned());
    }

    async fn write(&mut self, socket: &mut Socket, frame: ClientFrame) -> Result<(), End> {
        socket::write(socket, &frame, self.config.request_timeout)
            .await
            .map_err(|reason| End::Dropped { code: None, reason })
    }

    /// Sends a request whose answer goes to `pending`.
    async fn request(&mut self, socket: &mut Socket, request: Request, pending: Pending) -> Result<(), End> {
        let id = self.ids.next();
        self.pending.insert(id, pending);
        self.write(socket, ClientFrame::new(id, request)).await
    }

    /// Puts on the wire every message of the outbox that is due.
    async fn transmit_sends(&mut self, socket: &mut Socket) -> Result<(), End> {
        let ids = &mut self.ids;
        let due = self.outbox.take_due(Instant::now(), || ids.next());
        for (id, request) in due {
            self.pending.insert(id, Pending::Send);
            self.write(socket, ClientFrame::new(id, request)).await?;
        }
        Ok(())
    }

    /// The application changed the control value.
    fn on_control(&mut self, sender_alive: bool) -> Result<(), End> {
        if !sender_alive {
            return Err(End::Stop(Stop::handles_dropped()));
        }
        let control = *self.control.borrow_and_update();
        if !control.online {
            self.drops_seen = control.drops;
            return Err(End::Offline);
        }
        if control.drops != self.drops_seen {
            self.drops_seen = control.drops;
            return Err(End::Dropped { code: None, reason: "connection dropped".into() });
        }
        Ok(())
    }

    /// A command while connected.
    async fn on_command(&mut self, socket: &mut Socket, command: Option<Command>) -> Result<(), End> {
        match command {
            None => Err(End::Stop(Stop::handles_dropped())),
            Some(Command::Close { done }) => Err(End::Stop(Stop::closed(done))),
            Some(Command::Send { room, client_msg_id, body, reply }) => {
                self.outbox.add(room, client_msg_id, body, reply);
                self.transmit_sends(socket).await
            }
            Some(Command::Refresh { token, reply }) => {
                let request = Request::Refresh { token: token.clone() };
                self.request(socket, request, Pending::Refresh { token, reply }).await
            }
            Some(Command::Request { request: Request::Hello { .. }, reply }) => {
                let err = ClientError::Protocol("`hello` is sent by the client itself".into());
                // The caller may have stopped waiting.
                reply.send(Err(err)).ok();
                Ok(())
            }
            Some(Command::Request { request, reply }) => {
                self.request(socket, request, Pending::Request(reply)).await
            }
        }
    }

    /// A websocket message from the server.
    async fn on_message(
        &mut self,
        socket: &mut Socket,
        message: tokio_tungstenite::tungstenite::Message,
    ) -> Result<(), End> {
        match socket::decode(message) {
            Incoming::Frame(frame) => self.on_frame(socket, frame).await,
            Incoming::Closed { code, reason } => {
                // Keep reading briefly so the answer to the close frame goes out.
                let drain = async { while let Some(Ok(_)) = socket.next().await {} };
                tokio::time::timeout(socket::CLOSE_GRACE, drain).await.ok();
                Err(End::Dropped { code, reason })
            }
            Incoming::Nothing => Ok(()),
        }
    }

    async fn on_frame(&mut self, socket: &mut Socket, frame: ServerFrame) -> Result<(), End> {
        let ServerFrame { re, message } = frame;
        if let Some(pending) = re.and_then(|re| self.pending.remove(&re).map(|p| (re, p))) {
            return self.on_answer(socket, pending, message).await;
        }
        self.on_push(socket, message).await
    }

    /// The answer to a request on the wire.
    async fn on_answer(
        &mut self,
        socket: &mut Socket,
        (re, pending): (RequestId, Pending),
        message: ServerMessage,
    ) -> Result<(), End> {
        match pending {
            Pending::Request(reply) => {
                self.observe(&message);
                let result = match message {
                    ServerMessage::Error { code, message, .. } => Err(ClientError::Server { code, message }),
                    other => Ok(other),
                };
                // The caller may have stopped waiting (its timeout passed).
                reply.send(result).ok();
                Ok(())
            }
            Pending::Send => {
                match message {
                    ServerMessage::Ack(ack) => self.outbox.on_ack(re, ack),
                    ServerMessage::Error { code, message, .. } => {
                        self.outbox.on_error(re, code, message, Instant::now());
                    }
                    other => self.outbox.on_unexpected(re, type_name(&other)),
                }
                Ok(())
            }
            Pending::Refresh { token, reply } => {
                let result = match message {
                    ServerMessage::Ok => {
                        self.token = token;
                        Ok(())
                    }
                    ServerMessage::Error { code, message, .. } => Err(ClientError::Server { code, message }),
                    other => Err(unexpected(&other, "refresh")),
                };
                // The caller may have stopped waiting; the token is kept either way.
                reply.send(result).ok();
                Ok(())
            }
            Pending::Fill(room) => match message {
                ServerMessage::History(page) => {
                    let outcome = self.positions.on_fill(page);
                    self.apply(socket, outcome).await
                }
                other => {
                    // The resume after a reconnect brings what the page would have.
                    self.positions.on_fill_failed(&room);
                    Err(End::Reconnect {
                        reason: format!("could not fill a gap in {room}: {}", describe(&other)),
                    })
                }
            },
        }
    }

    /// Keeps the positions in step with answers that change which rooms the session is in.
    fn observe(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Joined { room } => self.positions.on_joined(room),
            ServerMessage::Left { room } => self.positions.on_left(room),
            _ => {}
        }
    }

    /// A pushed message (or an answer nobody waits for any more).
    async fn on_push(&mut self, socket: &mut Socket, message: ServerMessage) -> Result<(), End> {
        match message {
            ServerMessage::Event { event } => {
                let outcome = self.positions.on_event(event);
                return self.apply(socket, outcome).await;
            }
            ServerMessage::Live(live) => {
                let outcome = self.positions.on_live(live);
                return self.apply(socket, outcome).await;
            }
            ServerMessage::Typing { room, person, active } => {
                self.events.push(ClientEvent::Typing { room, person, active });
            }
            ServerMessage::Presence { room, person, status } => {
                self.events.push(ClientEvent::Presence { room, person, status });
            }
            ServerMessage::Read { room, seq, unread } => {
                self.events.push(ClientEvent::Read { room, seq, unread });
            }
            ServerMessage::Joined { .. } | ServerMessage::Left { .. } => self.observe(&message),
            ServerMessage::Error { code, message, room } => {
                tracing::warn!(%code, %message, ?room, "error from the server outside any request");
            }
            ServerMessage::Pong | ServerMessage::Ok => {}
            other => tracing::debug!(kind = type_name(&other), "unexpected frame from the server; ignored"),
        }
        Ok(())
    }

    /// Delivers what the positions let through, and fetches what they ask for.
    async fn apply(&mut self, socket: &mut Socket, outcome: Outcome) -> Result<(), End> {
        for delivery in outcome.deliver {
            self.events.push(match delivery {
                Delivery::Event(event) => ClientEvent::Event(event),
                Delivery::Live(live) => ClientEvent::Live(live),
            });
        }
        if let Some((room, after)) = outcome.fetch {
            let request = Request::History {
                room: room.clone(),
                before: None,
                after: Some(after),
                limit: Some(self.page_size),
            };
            self.request(socket, request, Pending::Fill(room)).await?;
        }
        Ok(())
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

/// The wire name of a server message.
pub(crate) fn type_name(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome(_) => "welcome",
        ServerMessage::Ack(_) => "ack",
        ServerMessage::History(_) => "history",
        ServerMessage::Event { .. } => "event",
        ServerMessage::Live(_) => "live",
        ServerMessage::Joined { .. } => "joined",
        ServerMessage::Left { .. } => "left",
        ServerMessage::Typing { .. } => "typing",
        ServerMessage::Presence { .. } => "presence",
        ServerMessage::Read { .. } => "read",
        ServerMessage::Ok => "ok",
        ServerMessage::Pong => "pong",
        ServerMessage::Error { .. } => "error",
    }
}

/// A server message in a log line or an error: its type, and for errors code and message.
fn describe(message: &ServerMessage) -> String {
    match message {
        ServerMessage::Error { code, message, .. } => format!("{code}: {message}"),
        other => format!("unexpected `{}`", type_name(other)),
    }
}

/// The error for an answer of the wrong type.
pub(crate) fn unexpected(message: &ServerMessage, request: &str) -> ClientError {
    ClientError::Protocol(format!("`{}` in answer to `{request}`", type_name(message)))
}
