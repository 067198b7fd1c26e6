//! What the server says on a connected session: answers to requests on the wire, and pushes
//! (room events through the positions, typing, presence and read markers straight to the
//! application).

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use triad_protocol::{Request, RequestId, ServerFrame, ServerMessage};

use super::{Connection, End, Pending};
use crate::error::ClientError;
use crate::events::ClientEvent;
use crate::positions::{Delivery, Outcome};
use crate::socket::{self, Incoming, Socket};

impl Connection {
    /// A websocket message from the server.
    pub(super) async fn on_message(
        &mut self,
        socket: &mut Socket,
        message: Message,
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
                    ServerMessage::Error { code, message, .. } => {
                        Err(ClientError::Server { code, message })
                    }
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
                    other => self.outbox.on_unexpected(re, other.type_name()),
                }
                Ok(())
            }
            Pending::Refresh { token, reply } => {
                let result = match message {
                    ServerMessage::Ok => {
                        self.token = token;
                        Ok(())
                    }
                    ServerMessage::Error { code, message, .. } => {
                        Err(ClientError::Server { code, message })
                    }
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
            ServerMessage::Typing {
                room,
                person,
                active,
            } => {
                self.events.push(ClientEvent::Typing {
                    room,
                    person,
                    active,
                });
            }
            ServerMessage::Presence {
                room,
                person,
                status,
            } => {
                self.events.push(ClientEvent::Presence {
                    room,
                    person,
                    status,
                });
            }
            ServerMessage::Read { room, seq, unread } => {
                self.events.push(ClientEvent::Read { room, seq, unread });
            }
            ServerMessage::Joined { .. } | ServerMessage::Left { .. } => self.observe(&message),
            ServerMessage::CallState { call } => self.events.push(ClientEvent::CallState(call)),
            ServerMessage::CallSignal {
                call,
                from,
                person,
                signal,
            } => {
                self.events.push(ClientEvent::CallSignal {
                    call,
                    from,
                    person,
                    signal,
                });
            }
            ServerMessage::CallEnded {
                call,
                room,
                reason,
                ended_by,
            } => {
                self.events.push(ClientEvent::CallEnded {
                    call,
                    room,
                    reason,
                    ended_by,
                });
            }
            ServerMessage::IceServers(servers) => {
                self.events.push(ClientEvent::IceServers(servers));
            }
            ServerMessage::Coaching {
                change,
                coaching,
                previous_start,
            } => {
                self.events.push(ClientEvent::Coaching {
                    change,
                    coaching,
                    previous_start,
                });
            }
            ServerMessage::Pinned { pin, pinned } => {
                self.events.push(ClientEvent::Pinned { pin, pinned });
            }
            ServerMessage::Error {
                code,
                message,
                room,
            } => {
                tracing::warn!(%code, %message, ?room, "error from the server outside any request");
            }
            ServerMessage::Pong | ServerMessage::Ok => {}
            other => tracing::debug!(
                kind = other.type_name(),
                "unexpected frame from the server; ignored"
            ),
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

/// A server message in a log line or an error: its type, and for errors code and message.
fn describe(message: &ServerMessage) -> String {
    match message {
        ServerMessage::Error { code, message, .. } => format!("{code}: {message}"),
        other => format!("unexpected `{}`", other.type_name()),
    }
}

/// The error for an answer of the wrong type.
pub(crate) fn unexpected(message: &ServerMessage, request: &str) -> ClientError {
    ClientError::Protocol(format!(
        "`{}` in answer to `{request}`",
        message.type_name()
    ))
}
