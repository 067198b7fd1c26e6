//! The hub: which local sessions are in which room, fan-out of stored events and ephemeral
//! signals (typing, presence) to them, presence per person, and per-person send buckets.
//!
//! Fan-out never waits: each session has a bounded [`Outbox`]; a full outbox closes that
//! session as a slow consumer (it resumes from history), and no one else is delayed. A
//! stored event is serialized once, whatever the number of recipients. Locks are per room
//! for fan-out; the presence book's lock is taken only when sessions come, go, or change
//! status, never per message.

pub mod outbox;
pub mod presence;
pub mod rate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::extract::ws::Utf8Bytes;
use triad_protocol::{PersonId, RoomEvent, RoomId, ServerFrame, ServerMessage};

pub use outbox::{EventFrame, Outbox, Outgoing, SessionControl, SessionKey};
pub use presence::PresenceBook;
pub use rate::TokenBucket;

use crate::store::{EventSink, Store};

/// The local sessions of one room.
#[derive(Default)]
struct RoomChannel {
    subscribers: Mutex<Vec<Outbox>>,
}

/// Rooms, presence and fan-out for the sessions on this node.
pub struct Hub {
    rooms: RwLock<HashMap<RoomId, Arc<RoomChannel>>>,
    /// Who is connected, and how.
    pub presence: PresenceBook,
    /// Told when a room gains its first or loses its last local session.
    watcher: OnceLock<Arc<dyn Store>>,
}

impl Hub {
    /// An empty hub; `send_rate` and `send_burst` size each person's send bucket.
    pub fn new(send_rate: u32, send_burst: u32) -> Self {
        Self {
            rooms: RwLock::default(),
            presence: PresenceBook::new(send_rate, send_burst),
            watcher: OnceLock::new(),
        }
    }

    /// Sets the store to tell which rooms have local sessions (once, after both exist).
    pub fn watch_with(&self, store: Arc<dyn Store>) {
        if self.watcher.set(store).is_err() {
            tracing::warn!("the hub's room watcher was already set");
        }
    }

    fn channel(&self, room: &RoomId) -> Option<Arc<RoomChannel>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }

    /// Adds a session to a room's fan-out.
    pub fn subscribe(&self, room: &RoomId, outbox: &Outbox) {
        let channel = match self.channel(room) {
            Some(channel) => channel,
            None => {
                let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
                rooms.entry(room.clone()).or_default().clone()
            }
        };
        let mut subscribers = channel
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !subscribers.iter().any(|s| s.key() == outbox.key()) {
            subscribers.push(outbox.clone());
            if subscribers.len() == 1
                && let Some(store) = self.watcher.get()
            {
                store.watch_room(room, true);
            }
        }
    }

    /// Removes a session from a room's fan-out.
    pub fn unsubscribe(&self, room: &RoomId, session: SessionKey) {
        if let Some(channel) = self.channel(room) {
            let mut subscribers = channel
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let before = subscribers.len();
            subscribers.retain(|s| s.key() != session);
            if before > 0
                && subscribers.is_empty()
                && let Some(store) = self.watcher.get()
            {
                store.watch_room(room, false);
            }
        }
    }

    /// How many local sessions are in a room.
    pub fn local_sessions(&self, room: &RoomId) -> usize {
        self.channel(room)
            .map(|c| {
                c.subscribers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len()
            })
            .unwrap_or(0)
    }

    /// Sends an ephemeral frame (typing, presence) to every session in a room, except the
    /// sessions of `except`.
    pub fn broadcast(&self, room: &RoomId, frame: &ServerFrame, except: Option<&PersonId>) {
        let Some(channel) = self.channel(room) else {
            return;
        };
        let text = encode(frame);
        let subscribers = channel
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for outbox in subscribers.iter().filter(|s| Some(s.person()) != except) {
            outbox.push(Outgoing::Frame(text.clone()));
        }
    }
}

impl EventSink for Hub {
    fn publish(&self, event: &RoomEvent) {
        let Some(channel) = self.channel(&event.room) else {
            return;
        };
        let frame = ServerFrame::push(ServerMessage::Event {
            event: event.clone(),
        });
        let shared = Arc::new(EventFrame {
            room: event.room.clone(),
            seq: event.seq,
            text: encode(&frame),
        });
        let subscribers = channel
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for outbox in subscribers.iter() {
            outbox.push(Outgoing::Event(shared.clone()));
        }
    }
}

/// Serializes a server frame once.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    // Serializing these types cannot fail: no maps with non-string keys, no custom impls.
    Utf8Bytes::from(serde_json::to_string(frame).expect("server frames serialize"))
}
