//! Reconnecting: waiting while offline or backing off, then `hello` with the positions to
//! resume from, taking commands all the while (requests fail at once, sends wait).

use tokio::time::{Instant, sleep_until};
use triad_protocol::Welcome;

use super::{Command, Connection, Stop, fail};
use crate::error::ClientError;
use crate::socket::{self, Socket};

impl Connection {
    /// Reconnects: waits while offline, backs off, says `hello` with the positions to
    /// resume from, and again until a welcome or a refusal for good.
    pub(super) async fn reconnect(&mut self) -> Result<(Socket, Welcome), Stop> {
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
            let attempt =
                socket::connect(&config, &token, resume, hello_id, config.request_timeout);
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
            Some(Command::Send {
                room,
                client_msg_id,
                body,
                reply,
            }) => {
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
}
