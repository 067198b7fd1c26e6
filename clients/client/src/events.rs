//! What the client tells the application as it happens: [`ClientEvent`]s, read from
//! [`Events`]. The channel is bounded; when the application falls behind, the connection
//! keeps a backlog and, past a few thousand events, stops reading the socket until the
//! application catches up (the server may then close the session as a slow consumer; the
//! client resumes).

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use triad_protocol::{
    CallEndReason, CallId, CallState, CoachingChange, CoachingSession, IceServers, Live, PersonId,
    Pin, PresenceStatus, RoomEvent, RoomId, Seq, SessionId, Signal, Timestamp, Welcome,
};

/// Room events and other pushes the channel holds before the connection keeps a backlog.
pub(crate) const EVENTS_CAPACITY: usize = 1024;

/// Items the connection holds beyond the channel before it stops reading the socket.
pub(crate) const BACKLOG_LIMIT: usize = 4096;

/// Something that happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A welcome: the first connection, and each reconnect after it.
    Connected(Welcome),
    /// The connection dropped; the client reconnects by itself (unless set offline).
    Disconnected {
        /// The close code the server sent, if it sent one.
        code: Option<u16>,
        /// Why, for people.
        reason: String,
    },
    /// A room event, delivered once per room in sequence order.
    Event(RoomEvent),
    /// A room has caught up after a (re)connect: every event up to `seq` was delivered.
    Live(Live),
    /// Someone started or stopped typing.
    Typing {
        /// The room.
        room: RoomId,
        /// Who.
        person: PersonId,
        /// Whether they are typing now.
        active: bool,
    },
    /// Someone's presence in a room changed.
    Presence {
        /// The room.
        room: RoomId,
        /// Who.
        person: PersonId,
        /// Their status now.
        status: PresenceStatus,
    },
    /// This person's read marker moved (from another of their sessions, or this one).
    Read {
        /// The room.
        room: RoomId,
        /// The last sequence number read.
        seq: Seq,
        /// Events after it.
        unread: u64,
    },
    /// A call in one of the person's rooms changed (`call_state`).
    CallState(CallState),
    /// A signal from another participant of a call this session is in.
    CallSignal {
        /// The call.
        call: CallId,
        /// The participant session it comes from.
        from: SessionId,
        /// The person it comes from.
        person: PersonId,
        /// The offer, answer or candidate.
        signal: Signal,
    },
    /// A call in one of the person's rooms ended.
    CallEnded {
        /// The call.
        call: CallId,
        /// Its room.
        room: RoomId,
        /// Why.
        reason: CallEndReason,
        /// Who ended it, when someone did.
        ended_by: Option<PersonId>,
    },
    /// Fresh ICE servers and TURN credentials for a call, pushed before the old ones expire.
    IceServers(IceServers),
    /// A coaching session of one of the person's rooms was booked, moved or cancelled, is
    /// coming up, or starts.
    Coaching {
        /// What happened.
        change: CoachingChange,
        /// The session as it is now.
        coaching: CoachingSession,
        /// For a move: where it started before.
        previous_start: Option<Timestamp>,
    },
    /// A message was pinned as key learning, or unpinned.
    Pinned {
        /// The pin.
        pin: Pin,
        /// Whether it is pinned now.
        pinned: bool,
    },
    /// The client has stopped and will not reconnect. The last event.
    Closed {
        /// The close code, if there was one.
        code: Option<u16>,
        /// Why, for people.
        reason: String,
    },
}

/// The stream of [`ClientEvent`]s of one client.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event; `None` once the client has stopped and every event was read.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting now.
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

/// The connection's end of the events channel, with the backlog.
#[derive(Debug)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<ClientEvent>,
    backlog: VecDeque<ClientEvent>,
}

impl EventSink {
    /// A sink and the [`Events`] it feeds.
    pub fn channel() -> (Self, Events) {
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        (
            Self {
                tx,
                backlog: VecDeque::new(),
            },
            Events { rx },
        )
    }

    /// Queues an event, behind any backlog.
    pub fn push(&mut self, event: ClientEvent) {
        if self.tx.is_closed() {
            // The application dropped its `Events`: it wants none, so none are kept.
            self.backlog.clear();
            return;
        }
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            // The application dropped its `Events`: it wants none, so none are kept.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Whether the backlog is so long that the socket should not be read.
    pub fn is_saturated(&self) -> bool {
        self.backlog.len() >= BACKLOG_LIMIT
    }

    /// Moves backlog into the channel as room frees up; returns when at least one event
    /// moved, or never if there is no backlog. Cancel-safe.
    pub async fn flush(&mut self) {
        if self.backlog.is_empty() {
            return std::future::pending().await;
        }
        match self.tx.reserve().await {
            Ok(permit) => {
                if let Some(event) = self.backlog.pop_front() {
                    permit.send(event);
                }
                while let Some(event) = self.backlog.pop_front() {
                    if let Err(err) = self.tx.try_send(event) {
                        if let TrySendError::Full(event) = err {
                            self.backlog.push_front(event);
                        } else {
                            self.backlog.clear();
                        }
                        break;
                    }
                }
            }
            // Nobody reads any more: drop the backlog.
            Err(_) => self.backlog.clear(),
        }
    }

    /// Delivers everything still queued, waiting for the application to read it; gives up
    /// if the application stops reading for `patience`.
    pub async fn finish(mut self, patience: std::time::Duration) {
        while let Some(event) = self.backlog.pop_front() {
            match tokio::time::timeout(patience, self.tx.send(event)).await {
                Ok(Ok(())) => {}
                // Dropped `Events`, or nobody reads: the rest cannot be delivered.
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(n: usize) -> ClientEvent {
        ClientEvent::Typing {
            room: RoomId::new("trio-1").expect("valid room id"),
            person: PersonId::new(format!("p{n}")).expect("valid person id"),
            active: true,
        }
    }

    #[tokio::test]
    async fn the_backlog_keeps_order_past_the_channel() {
        let (mut sink, mut events) = EventSink::channel();
        let total = EVENTS_CAPACITY + 10;
        for n in 0..total {
            sink.push(typing(n));
        }
        assert!(!sink.is_saturated());
        let mut seen = 0;
        while seen < total {
            while let Some(event) = events.try_next() {
                assert_eq!(event, typing(seen));
                seen += 1;
            }
            if seen < total {
                sink.flush().await;
            }
        }
    }

    #[tokio::test]
    async fn events_are_dropped_when_nobody_listens() {
        let (mut sink, events) = EventSink::channel();
        drop(events);
        for n in 0..EVENTS_CAPACITY + 10 {
            sink.push(typing(n));
        }
        assert!(!sink.is_saturated());
    }
}
