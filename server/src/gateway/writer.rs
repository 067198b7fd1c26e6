//! The session writer: drains the outbox to the socket. It feeds every ready frame and
//! flushes once per batch. It keeps, per room, the last sequence number written, so the
//! client sees each room's events exactly once and in order: a duplicate is skipped, and a
//! gap (an event newer than the next expected one) is filled from the store first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as SocketError, Message, Utf8Bytes};
use triad_protocol::{
    CloseCode, Live, RoomId, Seq, ServerFrame, ServerMessage, limits::MAX_PAGE_SIZE,
};

use tokio_util::sync::CancellationToken;

use super::socket::{Sink, feed_text};
use crate::hub::{OutboxReceiver, Outgoing, SessionControl, Track, encode};
use crate::store::{Page, SharedStore, StoreError};

/// Frames fed before a flush is forced.
const BATCH: usize = 64;

/// Sessions of this node that may wait out the long slow-consumer close at once; beyond
/// them a session closed as too slow gets the short close deadline. Each one keeps its
/// connection and buffers until its close frame goes out.
pub const MAX_SLOW_CLOSES: usize = 64;

/// Sessions of this process in the long slow-consumer close now.
static SLOW_CLOSES: AtomicUsize = AtomicUsize::new(0);

/// A place among the [`MAX_SLOW_CLOSES`], given back when dropped.
struct SlowClose {
    _counted: crate::metrics::ClosingSlow,
}

impl SlowClose {
    /// A place, if one is free.
    fn take() -> Option<Self> {
        SLOW_CLOSES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SLOW_CLOSES).then_some(n + 1)
            })
            .ok()
            .map(|_| Self {
                _counted: crate::metrics::closing_slow(),
            })
    }
}

impl Drop for SlowClose {
    fn drop(&mut self) {
        SLOW_CLOSES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the writer stopped early.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("socket: {0}")]
    Socket(#[from] SocketError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

struct Position {
    last: Seq,
}

/// Writes one session's outbox to its socket.
pub struct Writer {
    sink: Sink,
    rx: OutboxReceiver,
    control: Arc<SessionControl>,
    store: SharedStore,
    rooms: HashMap<RoomId, Position>,
    /// How long a session closed as too slow has to take its close frame.
    slow_close_deadline: Duration,
    /// The server's shutdown: it cuts a slow close short.
    shutdown: CancellationToken,
    /// Set while a long message goes out in fragments: if the writer is stopped in the
    /// middle, no other message may follow (only the close frame).
    mid_message: bool,
}

impl Writer {
    /// A writer for a session.
    pub fn new(
        sink: Sink,
        rx: OutboxReceiver,
        control: Arc<SessionControl>,
        store: SharedStore,
        slow_close_deadline: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            sink,
            rx,
            control,
            store,
            rooms: HashMap::new(),
            slow_close_deadline,
            shutdown,
            mid_message: false,
        }
    }

    /// Runs until the outbox closes or the session is asked to close, then sends the close
    /// frame.
    pub async fn run(mut self) {
        let control = self.control.clone();
        let outcome = tokio::select! {
            outcome = self.pump() => outcome,
            () = control.closed() => Ok(()),
        };
        // Closing runs once: boxed, so the task is sized for pumping.
        Box::pin(self.finish(control, outcome)).await;
    }

    /// Sends what is still queued (unless the session was too slow for it), then the close
    /// frame.
    async fn finish(mut self, control: Arc<SessionControl>, outcome: Result<(), WriteError>) {
        if let Err(err) = outcome {
            match err {
                WriteError::Socket(e) => tracing::debug!(error = %e, "socket write failed"),
                WriteError::Store(e) => {
                    tracing::warn!(error = %e, "store failed while filling history");
                    control.close(CloseCode::SERVER_ERROR, "store unavailable: resume later");
                }
            }
        }
        let (code, reason) = control
            .reason()
            .cloned()
            .unwrap_or((CloseCode::NORMAL, String::new()));
        let slow = code == CloseCode::SLOW_CONSUMER;
        if slow {
            // What is queued is dropped: the client resumes from history. Only what is
            // already on its way goes before the close frame.
            while self.rx.try_recv().is_some() {}
        } else if !self.mid_message {
            // A message cut off halfway cannot be followed by another one.
            // Frames queued before the close (an error explaining it, say) go out first.
            let drain = async {
                while let Some(item) = self.rx.try_recv() {
                    self.handle(item).await?;
                }
                self.sink.flush().await.map_err(WriteError::from)
            };
            if !matches!(
                tokio::time::timeout(Duration::from_secs(1), drain).await,
                Ok(Ok(()))
            ) {
                tracing::debug!("queued frames not delivered before close");
            }
        }
        let frame = CloseFrame {
            code: code.0.into(),
            reason: reason.into(),
        };
        // The peer may be gone or not reading: the close frame is best effort, bounded. A
        // slow client gets longer: it may read again after a pause and must then learn
        // why it was closed. (A control frame may follow a message cut off halfway.) Only
        // [`MAX_SLOW_CLOSES`] sessions at a time get that long, and the server's shutdown
        // cuts it back to the short deadline.
        let started = tokio::time::Instant::now();
        let short = started + super::session::CLOSE_DEADLINE;
        let long = if slow { SlowClose::take() } else { None };
        let shutdown = self.shutdown.clone();
        let closing = async {
            self.sink.send(Message::Close(Some(frame))).await?;
            self.sink.close().await
        };
        tokio::pin!(closing);
        let delivered = if long.is_some() {
            tokio::select! {
                outcome = tokio::time::timeout(self.slow_close_deadline, &mut closing) => outcome.is_ok(),
                () = shutdown.cancelled() => {
                    tokio::time::timeout_at(short, &mut closing).await.is_ok()
                }
            }
        } else {
            tokio::time::timeout_at(short, &mut closing).await.is_ok()
        };
        drop(long);
        if !delivered {
            tracing::debug!("close frame not delivered in time");
        }
        control.close(code, "writer finished");
    }

    async fn pump(&mut self) -> Result<(), WriteError> {
        while let Some(item) = self.rx.recv().await {
            self.handle(item).await?;
            let mut fed = 1;
            while fed < BATCH {
                let Some(item) = self.rx.try_recv() else {
                    break;
                };
                self.handle(item).await?;
                fed += 1;
            }
            self.sink.flush().await?;
        }
        Ok(())
    }

    async fn handle(&mut self, item: Outgoing) -> Result<(), WriteError> {
        match item {
            Outgoing::Frame(text) => self.feed(text).await?,
            Outgoing::Event(event) => {
                let Some(position) = self.rooms.get(&event.room) else {
                    return Ok(());
                };
                if event.seq <= position.last {
                    return Ok(());
                }
                if event.seq > position.last + 1 {
                    crate::metrics::gap_filled();
                    Box::pin(self.fill(&event.room, Some(event.seq - 1))).await?;
                }
                self.feed(event.text.clone()).await?;
                crate::metrics::events_written(1);
                if let Some(position) = self.rooms.get_mut(&event.room) {
                    position.last = event.seq;
                }
            }
            // Catching a room up reads the store: boxed, so the writer's task is sized for
            // the common case, writing a frame.
            Outgoing::Track(track) => Box::pin(self.track(*track)).await?,
            Outgoing::Untrack { room } => {
                self.rooms.remove(&room);
            }
        }
        Ok(())
    }

    /// Queues one message on the socket, in fragments if it is long.
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), SocketError> {
        self.mid_message = true;
        feed_text(&mut self.sink, text).await?;
        self.mid_message = false;
        Ok(())
    }

    /// Starts delivering a room: its stored events after `after`, then `live` if asked.
    async fn track(&mut self, track: Track) -> Result<(), WriteError> {
        let Track {
            room,
            epoch,
            after,
            live,
        } = track;
        self.rooms.insert(room.clone(), Position { last: after });
        let last = self.fill(&room, None).await?;
        crate::metrics::events_replayed(last.saturating_sub(after));
        if live {
            let text = encode(&ServerFrame::push(ServerMessage::Live(Live {
                room,
                epoch,
                seq: last,
            })));
            self.feed(text).await?;
        }
        Ok(())
    }

    /// Writes the room's stored events after the last one written, up to `until` (or the
    /// newest); returns the last sequence number written.
    async fn fill(&mut self, room: &RoomId, until: Option<Seq>) -> Result<Seq, WriteError> {
        let Some(position) = self.rooms.get(room) else {
            return Ok(0);
        };
        let mut last = position.last;
        loop {
            let page = Page::After {
                after: last,
                limit: MAX_PAGE_SIZE,
            };
            let history = self.store.history(room, page).await?;
            let mut reached = false;
            for event in history.events {
                if until.is_some_and(|u| event.seq > u) {
                    reached = true;
                    break;
                }
                last = event.seq;
                let text = encode(&ServerFrame::push(ServerMessage::Event { event }));
                self.feed(text).await?;
                crate::metrics::events_written(1);
            }
            if let Some(position) = self.rooms.get_mut(room) {
                position.last = last;
            }
            if reached || !history.has_more || until.is_some_and(|u| last >= u) {
                return Ok(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_cap_of_sessions_wait_out_the_long_slow_close() {
        let held: Vec<SlowClose> = std::iter::from_fn(SlowClose::take)
            .take(MAX_SLOW_CLOSES + 1)
            .collect();
        assert_eq!(
            held.len(),
            MAX_SLOW_CLOSES,
            "the one past the cap gets none"
        );
        assert!(SlowClose::take().is_none());
        drop(held);
        assert!(SlowClose::take().is_some(), "places are given back");
    }
}
