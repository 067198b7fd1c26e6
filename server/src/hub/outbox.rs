//! A session's outbox: the bounded queue between the hub (and the session's own request
//! handling) and the task that writes to the socket, plus the session's close signal.
//!
//! The queue is a `VecDeque` behind the session's own lock, with a `Notify` to wake the
//! writer. An idle session's queue holds no buffer at all: one that has emptied gives
//! its buffer back, so a burst does not stay allocated for the life of the connection
//! (a channel keeps its first block of slots for good). The lock is per session and held
//! only to push or pop one item; fan-out takes one session's lock at a time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;
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

/// Slots an emptied queue may keep; a larger buffer is given back.
const KEEP_SLOTS: usize = 8;

/// What the sending and the receiving side share.
#[derive(Debug)]
struct Shared {
    key: SessionKey,
    person: PersonId,
    capacity: usize,
    control: Arc<SessionControl>,
    queue: Mutex<Queue>,
    /// Woken when an item lands in an empty queue, or the last sender goes.
    ready: Notify,
    senders: AtomicUsize,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Cleared when the receiving side is dropped.
    receiving: bool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of a session's outbox: cheap to clone (one pointer), one per room the
/// session is subscribed to.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

impl Outbox {
    /// A new outbox of `capacity` items and its receiving side.
    pub fn new(
        key: SessionKey,
        person: PersonId,
        capacity: usize,
        control: Arc<SessionControl>,
    ) -> (Self, OutboxReceiver) {
        let shared = Arc::new(Shared {
            key,
            person,
            capacity: capacity.max(1),
            control,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                receiving: true,
            }),
            ready: Notify::new(),
            senders: AtomicUsize::new(1),
        });
        (
            Self {
                shared: shared.clone(),
            },
            OutboxReceiver { shared },
        )
    }

    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.shared.key
    }

    /// The session's person.
    pub fn person(&self) -> &PersonId {
        &self.shared.person
    }

    /// The session's close signal.
    pub fn control(&self) -> &Arc<SessionControl> {
        &self.shared.control
    }

    /// Queues an item without waiting. A full outbox closes the session as a slow
    /// consumer; returns whether the item was queued.
    pub fn push(&self, item: Outgoing) -> bool {
        let mut queue = self.shared.queue();
        if !queue.receiving {
            // The session is ending; it no longer needs anything.
            return false;
        }
        if queue.items.len() >= self.shared.capacity {
            drop(queue);
            let closed = self.shared.control.close(
                CloseCode::SLOW_CONSUMER,
                "outbox full: reconnect and resume",
            );
            crate::metrics::outbox_dropped(closed);
            return false;
        }
        let was_empty = queue.items.is_empty();
        queue.items.push_back(item);
        drop(queue);
        // A writer that has not yet seen the queue empty will find this item anyway.
        if was_empty {
            self.shared.ready.notify_one();
        }
        true
    }
}

impl Outbox {
    /// Queues an item ahead of everything queued, whatever the capacity: a session's
    /// welcome, queued after it entered its rooms, goes out before what they pushed since.
    pub fn push_first(&self, item: Outgoing) -> bool {
        let mut queue = self.shared.queue();
        if !queue.receiving {
            return false;
        }
        let was_empty = queue.items.is_empty();
        queue.items.push_front(item);
        drop(queue);
        if was_empty {
            self.shared.ready.notify_one();
        }
        true
    }
}

/// The receiving side of a session's outbox, held by its writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

impl OutboxReceiver {
    /// The next item, waiting for one; `None` once every sending side is gone and the
    /// queue is empty.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            // Read before looking at the queue: an item pushed by the last sender just
            // before it went is then still found.
            let senders = self.shared.senders.load(Ordering::Acquire);
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if senders == 0 {
                return None;
            }
            self.shared.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let mut queue = self.shared.queue();
        let item = queue.items.pop_front();
        if queue.items.is_empty() && queue.items.capacity() > KEEP_SLOTS {
            queue.items = VecDeque::new();
        }
        item
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue();
        queue.receiving = false;
        queue.items = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
        let person = PersonId::new("anna").unwrap();
        Outbox::new(1, person, capacity, Arc::new(SessionControl::default()))
    }

    fn frame(text: &str) -> Outgoing {
        Outgoing::Frame(Utf8Bytes::from(text.to_string()))
    }

    fn text_of(item: Option<Outgoing>) -> String {
        match item {
            Some(Outgoing::Frame(text)) => text.to_string(),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn a_queue_slot_is_small() {
        // Every queued item takes this much: rare, large items are boxed, so a queued
        // item is a shared frame and a tag.
        assert!(size_of::<Outgoing>() <= 40, "{}", size_of::<Outgoing>());
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_outbox_closes_the_session() {
        let (outbox, mut rx) = outbox(3);
        for text in ["a", "b", "c"] {
            assert!(outbox.push(frame(text)));
        }
        assert!(!outbox.push(frame("d")), "over capacity");
        let (code, _) = outbox.control().reason().expect("closed").clone();
        assert_eq!(code, CloseCode::SLOW_CONSUMER);
        assert_eq!(text_of(rx.recv().await), "a");
        assert_eq!(text_of(rx.try_recv()), "b");
        assert_eq!(text_of(rx.recv().await), "c");
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn the_writer_wakes_for_a_push_from_another_task_and_ends_with_the_last_sender() {
        let (outbox, mut rx) = outbox(16);
        let subscriber = outbox.clone();
        let pusher = tokio::spawn(async move {
            for i in 0..100 {
                while !subscriber.push(frame(&i.to_string())) {
                    tokio::task::yield_now().await;
                }
                tokio::task::yield_now().await;
            }
        });
        drop(outbox);
        let mut seen = Vec::new();
        while let Some(item) = rx.recv().await {
            seen.push(text_of(Some(item)));
        }
        pusher.await.unwrap();
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn an_item_pushed_first_goes_out_first_even_when_full() {
        let (outbox, mut rx) = outbox(2);
        assert!(outbox.push(frame("presence")));
        assert!(outbox.push(frame("typing")));
        assert!(outbox.push_first(frame("welcome")));
        assert!(!outbox.control().is_closed(), "not a slow consumer");
        assert_eq!(text_of(rx.recv().await), "welcome");
        assert_eq!(text_of(rx.recv().await), "presence");
        assert_eq!(text_of(rx.recv().await), "typing");
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_its_buffer_back_and_a_gone_writer_refuses_items() {
        let (outbox, mut rx) = outbox(1000);
        for i in 0..500 {
            assert!(outbox.push(frame(&i.to_string())));
        }
        assert!(outbox.shared.queue().items.capacity() >= 500);
        while rx.try_recv().is_some() {}
        assert_eq!(outbox.shared.queue().items.capacity(), 0);
        drop(rx);
        assert!(!outbox.push(frame("late")));
        assert!(
            !outbox.control().is_closed(),
            "a gone writer is not a slow consumer"
        );
    }
}
