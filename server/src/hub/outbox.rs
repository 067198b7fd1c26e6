//! A session's outbox: the bounded queue between the hub (and the session's own request
//! handling) and the task that writes to the socket, plus the session's close signal.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use triad_protocol::{CloseCode, Epoch, PersonId, RoomId, Seq};

/// A session's key on this node.
pub type SessionKey = u64;

/// A stored event, serialized once and shared by every recipient.
#[derive(Debug)]
pub struct EventFrame {
    /// The room.
    pub room: RoomId,
    /// Its sequence number.
    pub seq: Seq,
    /// The serialized `event` frame.
    pub text: Utf8Bytes,
}

/// What a session's writer is asked to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Write this serialized frame.
    Frame(Utf8Bytes),
    /// Write this room event, unless already written; fill any gap before it from the store.
    Event(Arc<EventFrame>),
    /// Start delivering a room (boxed: rare, and it keeps every queue slot small).
    Track(Box<Track>),
    /// Stop delivering a room.
    Untrack {
        /// The room.
        room: RoomId,
    },
}

/// Start delivering a room: write every stored event after `after`, then (if `live`) a
/// `live` frame, then the room's events as they come.
#[derive(Debug)]
pub struct Track {
    /// The room.
    pub room: RoomId,
    /// Its epoch.
    pub epoch: Epoch,
    /// The last event the client has.
    pub after: Seq,
    /// Whether to announce `live` once caught up.
    pub live: bool,
}

/// How a session is told to close, and why.
#[derive(Debug, Default)]
pub struct SessionControl {
    token: CancellationToken,
    reason: OnceLock<(CloseCode, String)>,
}

impl SessionControl {
    /// Asks the session to close with `code`; the first reason given wins. Returns whether
    /// this was the first.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) -> bool {
        let first = self.reason.set((code, reason.into())).is_ok();
        self.token.cancel();
        first
    }

    /// Resolves once the session has been asked to close.
    pub async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// Whether the session has been asked to close.
    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The close code and reason, once asked to close.
    pub fn reason(&self) -> Option<&(CloseCode, String)> {
        self.reason.get()
    }
}

/// The sending side of a session's outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    key: SessionKey,
    person: PersonId,
    tx: mpsc::Sender<Outgoing>,
    control: Arc<SessionControl>,
}

impl Outbox {
    /// A new outbox of `capacity` items and its receiving side.
    pub fn new(
        key: SessionKey,
        person: PersonId,
        capacity: usize,
        control: Arc<SessionControl>,
    ) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                key,
                person,
                tx,
                control,
            },
            rx,
        )
    }

    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The session's person.
    pub fn person(&self) -> &PersonId {
        &self.person
    }

    /// The session's close signal.
    pub fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }

    /// Queues an item without waiting. A full outbox closes the session as a slow
    /// consumer; returns whether the item was queued.
    pub fn push(&self, item: Outgoing) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let closed = self.control.close(
                    CloseCode::SLOW_CONSUMER,
                    "outbox full: reconnect and resume",
                );
                crate::metrics::outbox_dropped(closed);
                false
            }
            // The session is ending; it no longer needs anything.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
