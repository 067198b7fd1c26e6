//! The hub: which local sessions are in which room, fan-out of stored events and ephemeral
//! signals (typing, presence) to them, presence per person, and per-person send buckets.
//!
//! Fan-out never waits: each session has a bounded [`Outbox`]; a full outbox closes that
//! session as a slow consumer (it resumes from history), and no one else is delayed. A
//! stored event is serialized once, whatever the number of recipients. Locks are per room
//! for fan-out; the presence book's lock is taken only when sessions come, go, or change
//! status, never per message.

pub mod cluster;
pub mod outbox;
pub mod presence;
pub mod rate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;
use triad_protocol::{
    CloseCode, PersonId, PresenceStatus, RoomEvent, RoomId, ServerFrame, ServerMessage,
};

pub use outbox::{EventFrame, Outbox, OutboxReceiver, Outgoing, SessionControl, SessionKey, Track};
pub use presence::PresenceBook;
pub use rate::TokenBucket;

use crate::bus::{BusMessage, NodeId, PresenceEntry, SharedLink};
use crate::calls::wire::CallMessage;
use crate::store::{EventSink, Store};
use cluster::{Announcement, ClusterView};

/// What handles the call messages of the bus (the calls of this node), and hears when
/// another node is lost.
pub trait CallPeer: Send + Sync + 'static {
    /// A call message from `origin` for this node (or for every node).
    fn receive(&self, origin: &str, message: CallMessage);
    /// Another node left or stopped sending heartbeats.
    fn node_lost(&self, node: &str);
}

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
    /// Told when a room gains its first or loses its last local session. Weak: the store
    /// holds the hub as its sink.
    watcher: OnceLock<Weak<dyn Store>>,
    /// This node's id on the bus.
    node: NodeId,
    /// The other nodes, when there are any.
    link: OnceLock<SharedLink>,
    /// Presence on other nodes, and what was announced here.
    cluster: Mutex<ClusterView>,
    /// Rooms too large for presence pushes (see [`triad_protocol::limits::MAX_LISTED_MEMBERS`]).
    large_rooms: RwLock<std::collections::HashSet<RoomId>>,
    /// Handles call messages from other nodes. Weak: the calls hold the hub.
    calls: OnceLock<Weak<dyn CallPeer>>,
    /// When the hub was made, and how long a silent node lives (set with the link): a
    /// node not heard of is taken for gone only once this node has listened that long.
    started: Instant,
    expiry: OnceLock<Duration>,
}

impl Hub {
    /// An empty hub; `send_rate` and `send_burst` size each person's send bucket.
    pub fn new(send_rate: u32, send_burst: u32) -> Self {
        Self {
            rooms: RwLock::default(),
            presence: PresenceBook::new(send_rate, send_burst),
            watcher: OnceLock::new(),
            node: format!("{:016x}", rand::random::<u64>()),
            link: OnceLock::new(),
            cluster: Mutex::default(),
            large_rooms: RwLock::default(),
            calls: OnceLock::new(),
            started: Instant::now(),
            expiry: OnceLock::new(),
        }
    }

    /// This node's id on the bus.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Connects the hub to other nodes (once).
    pub fn link_with(&self, link: SharedLink) {
        if self.link.set(link).is_err() {
            tracing::warn!("the hub's link was already set");
        }
    }

    fn publish(&self, message: BusMessage) {
        if let Some(link) = self.link.get() {
            link.publish(message);
        }
    }

    /// Whether other nodes may exist (a link is set).
    pub fn is_linked(&self) -> bool {
        self.link.get().is_some()
    }

    /// How long a node may be silent before it counts as gone (once, with the link).
    pub fn expire_after(&self, expiry: Duration) {
        if self.expiry.set(expiry).is_err() {
            tracing::warn!("the hub's node expiry was already set");
        }
    }

    /// Sets what handles call messages from other nodes (once).
    pub fn serve_calls(&self, peer: Weak<dyn CallPeer>) {
        if self.calls.set(peer).is_err() {
            tracing::warn!("the hub's call peer was already set");
        }
    }

    /// Sends a call message to one other node, or (`None`) to every other node.
    pub fn send_call(&self, to: Option<&str>, message: CallMessage) {
        self.publish(BusMessage::Call {
            origin: self.node.clone(),
            to: to.map(str::to_owned),
            message: Box::new(message),
        });
    }

    /// Whether a node is alive as far as this one can tell: itself, a node heard from
    /// and not expired, or (while this node has not yet listened for a whole expiry
    /// period) a node that has not said goodbye.
    pub fn node_alive(&self, node: &str) -> bool {
        if node == self.node {
            return true;
        }
        let view = self.view();
        if view.knows(node) {
            return true;
        }
        let listening = self.expiry.get().copied().unwrap_or_default();
        !view.departed(node) && self.started.elapsed() < listening
    }

    /// Whether a node has been heard from and has not expired or left since.
    pub fn knows_node(&self, node: &str) -> bool {
        self.view().knows(node)
    }

    fn nodes_lost(&self, nodes: &[NodeId]) {
        if nodes.is_empty() {
            return;
        }
        if let Some(peer) = self.calls.get().and_then(Weak::upgrade) {
            for node in nodes {
                peer.node_lost(node);
            }
        }
    }

    /// Sends a frame to the sessions of a room on this node only.
    pub fn broadcast_here(&self, room: &RoomId, frame: &ServerFrame) {
        self.deliver_room(room, &encode(frame), None);
    }

    /// Sets the store to tell which rooms have local sessions (once, after both exist).
    pub fn watch_with(&self, store: &Arc<dyn Store>) {
        if self.watcher.set(Arc::downgrade(store)).is_err() {
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
                && let Some(store) = self.watcher.get().and_then(Weak::upgrade)
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
                && let Some(store) = self.watcher.get().and_then(Weak::upgrade)
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

    /// Sends an ephemeral frame (typing, a moderator entering) to every session in a room,
    /// on every node, except the sessions of `except`.
    pub fn broadcast(&self, room: &RoomId, frame: &ServerFrame, except: Option<&PersonId>) {
        let text = encode(frame);
        self.deliver_room(room, &text, except);
        self.publish(BusMessage::Room {
            origin: self.node.clone(),
            room: room.clone(),
            except: except.cloned(),
            frame: text.to_string(),
        });
    }

    fn deliver_room(&self, room: &RoomId, text: &Utf8Bytes, except: Option<&PersonId>) {
        let Some(channel) = self.channel(room) else {
            return;
        };
        let subscribers = channel
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for outbox in subscribers.iter().filter(|s| Some(s.person()) != except) {
            outbox.push(Outgoing::Frame(text.clone()));
        }
    }

    /// Sends a frame to every session of a person, on every node, except one local session.
    pub fn to_person(&self, person: &PersonId, frame: &ServerFrame, except: Option<SessionKey>) {
        let text = encode(frame);
        self.deliver_person(person, &text, except);
        self.publish(BusMessage::Person {
            origin: self.node.clone(),
            person: person.clone(),
            frame: text.to_string(),
        });
    }

    fn deliver_person(&self, person: &PersonId, text: &Utf8Bytes, except: Option<SessionKey>) {
        for outbox in self.presence.sessions_of(person) {
            if Some(outbox.key()) != except {
                outbox.push(Outgoing::Frame(text.clone()));
            }
        }
    }

    /// Closes every session of a person, on every node, with [`CloseCode::REVOKED`].
    pub fn revoke(&self, person: &PersonId, reason: &str) {
        self.close_person(person, reason);
        self.publish(BusMessage::Revoke {
            origin: self.node.clone(),
            person: person.clone(),
            reason: reason.to_owned(),
        });
    }

    fn close_person(&self, person: &PersonId, reason: &str) {
        for outbox in self.presence.sessions_of(person) {
            outbox.control().close(CloseCode::REVOKED, reason);
        }
    }

    /// Sends one frame to every session of each of `people`, on every node, serialized
    /// once.
    pub fn to_people(&self, people: &[PersonId], frame: &ServerFrame) {
        let text = encode(frame);
        for person in people {
            self.deliver_person(person, &text, None);
            self.publish(BusMessage::Person {
                origin: self.node.clone(),
                person: person.clone(),
                frame: text.to_string(),
            });
        }
    }

    /// A person's status across the cluster.
    pub fn status(&self, person: &PersonId) -> PresenceStatus {
        let local = self.presence.status(person);
        let cluster = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        cluster::combine(local, cluster.remote_status(person))
    }

    /// A person's presence on this node may have changed (a session came, went, or
    /// changed status): tell the other nodes if `local_changed`, and announce to the local
    /// sessions if the combined status changed.
    pub fn presence_changed(&self, person: &PersonId, local_changed: bool) {
        let (status, rooms) = self.presence.local(person);
        if local_changed {
            let entry = PresenceEntry {
                person: person.clone(),
                status,
                rooms: rooms.clone(),
            };
            self.publish(BusMessage::Presence {
                origin: self.node.clone(),
                entry,
            });
        }
        self.reconcile(person, status, &rooms);
    }

    fn reconcile(&self, person: &PersonId, local: PresenceStatus, rooms: &[RoomId]) {
        let mut cluster = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        let announcements = cluster.reconcile(person, local, rooms);
        // Announced under the lock, so frames leave in the order the states were decided.
        self.announce(announcements);
    }

    /// Sets the rooms too large for presence pushes: a person coming online is not
    /// announced to everyone in the programme-wide room of a large programme.
    pub fn set_large_rooms(&self, rooms: std::collections::HashSet<RoomId>) {
        *self.large_rooms.write().unwrap_or_else(|e| e.into_inner()) = rooms;
    }

    fn announce(&self, announcements: Vec<Announcement>) {
        let large = self.large_rooms.read().unwrap_or_else(|e| e.into_inner());
        for (room, person, status) in announcements {
            if large.contains(&room) {
                continue;
            }
            let frame = ServerFrame::push(ServerMessage::Presence {
                room: room.clone(),
                person,
                status,
            });
            self.deliver_room(&room, &encode(&frame), None);
        }
    }

    fn reconcile_all(&self, people: Vec<PersonId>) {
        for person in people {
            let (status, rooms) = self.presence.local(&person);
            self.reconcile(&person, status, &rooms);
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles a message from another node.
    pub fn receive(&self, message: BusMessage) {
        if message.origin() == self.node {
            return;
        }
        let now = Instant::now();
        match message {
            BusMessage::Room {
                room,
                except,
                frame,
                ..
            } => {
                self.deliver_room(&room, &Utf8Bytes::from(frame), except.as_ref());
            }
            BusMessage::Person { person, frame, .. } => {
                self.deliver_person(&person, &Utf8Bytes::from(frame), None);
            }
            BusMessage::Presence { origin, entry } => {
                let person = entry.person.clone();
                self.view().set_remote(&origin, entry, now);
                self.reconcile_all(vec![person]);
            }
            BusMessage::Heartbeat { origin, people } => {
                let touched = self.view().replace_node(&origin, people, now);
                self.reconcile_all(touched);
            }
            BusMessage::Revoke { person, reason, .. } => self.close_person(&person, &reason),
            BusMessage::Call {
                origin,
                to,
                message,
            } => {
                if to.is_some_and(|to| to != self.node) {
                    return;
                }
                if let Some(peer) = self.calls.get().and_then(Weak::upgrade) {
                    peer.receive(&origin, *message);
                }
            }
            BusMessage::Gone { origin } => {
                let touched = self.view().depart(&origin);
                self.reconcile_all(touched);
                self.nodes_lost(&[origin]);
            }
        }
    }

    /// This node's heartbeat: everyone connected here.
    pub fn heartbeat(&self) -> BusMessage {
        BusMessage::Heartbeat {
            origin: self.node.clone(),
            people: self.presence.snapshot(),
        }
    }

    /// Forgets nodes silent for longer than `max_age`, announcing who went offline.
    pub fn expire_nodes(&self, max_age: Duration) {
        let now = Instant::now();
        let (touched, lost) = {
            let mut view = self.view();
            let lost = view.stale(now, max_age);
            (view.expire(now, max_age), lost)
        };
        self.reconcile_all(touched);
        self.nodes_lost(&lost);
    }

    /// The message telling other nodes this one is leaving.
    pub fn gone(&self) -> BusMessage {
        BusMessage::Gone {
            origin: self.node.clone(),
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
