//! A connected session: reading frames, carrying out commands, pinging, noticing silence,
//! and putting unacknowledged messages on the wire.

use futures_util::StreamExt;
use tokio::time::{Instant, sleep_until};
use triad_protocol::{ClientFrame, Request, RequestId};

use super::{Command, Connection, End, Pending, Stop};
use crate::error::ClientError;
use crate::socket::{self, Socket};

impl Connection {
    /// A connected session, until the connection ends.
    pub(super) async fn session(&mut self, mut socket: Socket) -> End {
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

    /// Writes a frame. One that cannot be sent (too large) fails its request instead.
    async fn write(&mut self, socket: &mut Socket, frame: ClientFrame) -> Result<(), End> {
        let text = match socket::encode(&frame) {
            Ok(text) => text,
            Err(err) => {
                self.refuse(frame.id, err);
                return Ok(());
            }
        };
        socket::write(socket, text, self.config.request_timeout)
            .await
            .map_err(|reason| End::Dropped { code: None, reason })
    }

    /// Fails the request `id` without an answer from the server.
    fn refuse(&mut self, id: Option<RequestId>, err: ClientError) {
        let Some((id, pending)) = id.and_then(|id| self.pending.remove(&id).map(|p| (id, p)))
        else {
            return;
        };
        tracing::warn!(%err, "request not sent");
        match pending {
            // A caller that already gave up has nobody to tell.
            Pending::Request(reply) => reply.send(Err(err)).ok(),
            Pending::Refresh { reply, .. } => reply.send(Err(err)).ok(),
            Pending::Send => {
                self.outbox.fail(id, err);
                None
            }
            Pending::Fill(room) => {
                self.positions.on_fill_failed(&room);
                None
            }
        };
    }

    /// Sends a request whose answer goes to `pending`.
    pub(super) async fn request(
        &mut self,
        socket: &mut Socket,
        request: Request,
        pending: Pending,
    ) -> Result<(), End> {
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
            return Err(End::Dropped {
                code: None,
                reason: "connection dropped".into(),
            });
        }
        Ok(())
    }

    /// A command while connected.
    async fn on_command(
        &mut self,
        socket: &mut Socket,
        command: Option<Command>,
    ) -> Result<(), End> {
        match command {
            None => Err(End::Stop(Stop::handles_dropped())),
            Some(Command::Close { done }) => Err(End::Stop(Stop::closed(done))),
            Some(Command::Send {
                room,
                client_msg_id,
                body,
                reply,
            }) => {
                self.outbox.add(room, client_msg_id, body, reply);
                self.transmit_sends(socket).await
            }
            Some(Command::Refresh { token, reply }) => {
                let request = Request::Refresh {
                    token: token.clone(),
                };
                self.request(socket, request, Pending::Refresh { token, reply })
                    .await
            }
            Some(Command::Request {
                request: Request::Hello { .. },
                reply,
            }) => {
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
}
