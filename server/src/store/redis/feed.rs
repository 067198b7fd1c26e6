//! The event feed: hands the events of the rooms this node watches to the [`EventSink`],
//! whichever node stored them, each once and in seq order per room.
//!
//! One task owns a dedicated pub/sub connection. [`Feed::watch`] only records the wish (the
//! latest one per room, so the backlog is bounded by the number of rooms) and wakes the
//! task, which subscribes to the room's channel and then reads the room's `last_seq` as its
//! position, or unsubscribes and forgets the position.
//!
//! For each message the task decodes the event; it skips events at or below the room's
//! position, fills a gap above it from the stream (`XRANGE`), hands the events to the sink
//! in order and advances the position. Pub/sub is at-most-once: when the connection is lost
//! (or stops answering pings), the task reconnects with exponential backoff, resubscribes to
//! every watched room and catches each up from its position through the stream. Events of
//! rooms that are not watched are never handed on.
//!
//! A position belongs to the room's epoch. If the epoch changes (Redis lost its data and
//! the programme was applied again), the feed follows the room from the start of its new
//! history; it notices on resuming and whenever a message is at or below the position.
//!
//! Events stored between a `watch` and the moment its subscription is in effect are not
//! delivered by the feed; a session replays history after entering a room and fills any
//! gap from the store, so none is lost to it. [`Feed::settled`] waits for that moment.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use redis::streams::StreamRangeReply;
use redis::{Msg, RedisResult};
use tokio::sync::{Notify, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use triad_protocol::{Epoch, RoomEvent, RoomId, Seq};

use super::keys::{self, RoomKeys};
use super::records::{decode, event_of_entry};
use super::{RedisOptions, timed};
use crate::store::{EventSink, StoreError};

/// How many events one catch-up read asks for.
const CATCH_UP_BATCH: usize = 512;

/// The store's handle on its feed task; dropping it stops the task.
pub(super) struct Feed {
    /// The wishes the task has not taken yet.
    shared: Arc<Shared>,
    /// The last generation of wishes that is in effect.
    applied: watch::Receiver<u64>,
    /// Cancels the task when the store is dropped.
    _stop: DropGuard,
}

/// What [`Feed::watch`] leaves for the task.
struct Shared {
    wishes: Mutex<Wishes>,
    wake: Notify,
}

/// The latest wish per room since the task last looked, and a count of every wish made.
#[derive(Default)]
struct Wishes {
    changes: HashMap<RoomId, bool>,
    generation: u64,
}

impl Feed {
    /// Starts the feed task on the current runtime.
    pub fn start(
        client: redis::Client,
        conn: ConnectionManager,
        sink: Arc<dyn EventSink>,
        options: RedisOptions,
    ) -> Self {
        let shared = Arc::new(Shared {
            wishes: Mutex::new(Wishes::default()),
            wake: Notify::new(),
        });
        let (applied_tx, applied) = watch::channel(0);
        let stop = CancellationToken::new();
        let task = FeedTask {
            client,
            conn,
            sink,
            shared: Arc::clone(&shared),
            applied: applied_tx,
            options,
            rooms: HashMap::new(),
            taken: 0,
        };
        tokio::spawn(task.run(stop.clone()));
        Self {
            shared,
            applied,
            _stop: stop.drop_guard(),
        }
    }

    /// Starts or stops following `room`. Never blocks on the network.
    pub fn watch(&self, room: &RoomId, watching: bool) {
        {
            let mut wishes = self.wishes();
            wishes.changes.insert(room.clone(), watching);
            wishes.generation += 1;
        }
        self.shared.wake.notify_one();
    }

    /// Waits until every [`Feed::watch`] made so far is in effect (subscribed, position
    /// read), or the task has stopped.
    pub async fn settled(&self) {
        let target = self.wishes().generation;
        let mut applied = self.applied.clone();
        if applied.wait_for(|done| *done >= target).await.is_err() {
            tracing::debug!("the store feed stopped before its watches settled");
        }
    }

    fn wishes(&self) -> std::sync::MutexGuard<'_, Wishes> {
        self.shared
            .wishes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the feed stands in a watched room.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The room's epoch when last read (`None`: the room did not exist yet).
    epoch: Option<Epoch>,
    /// The last seq handed to the sink (or skipped as corrupt).
    seq: Seq,
}

/// Why a pub/sub connection was given up.
type Lost = String;

/// The task: its connections, the watched rooms and their positions.
struct FeedTask {
    client: redis::Client,
    /// The store's command connection, for reading positions and catching up.
    conn: ConnectionManager,
    sink: Arc<dyn EventSink>,
    shared: Arc<Shared>,
    applied: watch::Sender<u64>,
    options: RedisOptions,
    /// Watched rooms and their positions (`None` until first read).
    rooms: HashMap<RoomId, Option<Position>>,
    /// The generation of the wishes taken so far.
    taken: u64,
}

impl FeedTask {
    async fn run(mut self, stop: CancellationToken) {
        let mut delay = self.options.reconnect_delay_min;
        loop {
            let mut following = false;
            let lost = tokio::select! {
                () = stop.cancelled() => return,
                lost = self.follow(&mut following) => lost,
            };
            if following {
                delay = self.options.reconnect_delay_min;
            }
            tracing::warn!(
                reason = %lost,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "the store feed lost Redis; reconnecting"
            );
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.options.reconnect_delay_max);
        }
    }

    /// Connects, resumes every watched room, then follows messages and wishes until the
    /// connection fails. Sets `following` once the connection is in use.
    async fn follow(&mut self, following: &mut bool) -> Lost {
        let pubsub = match self
            .timed("connect for pub/sub", self.client.get_async_pubsub())
            .await
        {
            Ok(pubsub) => pubsub,
            Err(err) => return err.to_string(),
        };
        let (mut sink, mut stream) = pubsub.split();
        if let Err(lost) = self.resume(&mut sink).await {
            return lost;
        }
        *following = true;
        let mut ping = tokio::time::interval(self.options.feed_ping_interval);
        ping.tick().await;
        let shared = Arc::clone(&self.shared);
        loop {
            let step = tokio::select! {
                () = shared.wake.notified() => self.apply_wishes(&mut sink).await,
                message = stream.next() => match message {
                    Some(message) => self.on_message(&message).await,
                    None => Err("the pub/sub connection closed".to_owned()),
                },
                // Also a second chance for a wish whose wake-up was missed.
                _ = ping.tick() => match self.apply_wishes(&mut sink).await {
                    Ok(()) => self.ping(&mut sink).await,
                    Err(lost) => Err(lost),
                },
            };
            if let Err(lost) = step {
                return lost;
            }
        }
    }

    /// After (re)connecting: takes the waiting wishes, subscribes to every watched room and
    /// catches each up from its position.
    async fn resume(&mut self, sink: &mut PubSubSink) -> Result<(), Lost> {
        self.take_wishes();
        let channels: Vec<String> = self.rooms.keys().map(keys::channel).collect();
        if !channels.is_empty() {
            self.timed("subscribe", sink.subscribe(&channels)).await?;
        }
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.resume_room(&room).await?;
        }
        self.applied.send_replace(self.taken);
        Ok(())
    }

    /// Applies the wishes made since the last look.
    async fn apply_wishes(&mut self, sink: &mut PubSubSink) -> Result<(), Lost> {
        for (room, watching) in self.take_wishes() {
            let channel = keys::channel(&room);
            if watching {
                self.timed("subscribe", sink.subscribe(&channel)).await?;
                self.resume_room(&room).await?;
            } else {
                self.timed("unsubscribe", sink.unsubscribe(&channel))
                    .await?;
            }
        }
        self.applied.send_replace(self.taken);
        Ok(())
    }

    /// Takes the waiting wishes and records them in `rooms` at once, so a reconnection
    /// resumes exactly the rooms wished for. Returns the rooms whose state changed.
    fn take_wishes(&mut self) -> Vec<(RoomId, bool)> {
        let (changes, generation) = {
            let mut wishes = self
                .shared
                .wishes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (std::mem::take(&mut wishes.changes), wishes.generation)
        };
        self.taken = generation;
        let mut changed = Vec::new();
        for (room, watching) in changes {
            let was_watching = self.rooms.contains_key(&room);
            if watching && !was_watching {
                self.rooms.insert(room.clone(), None);
                changed.push((room, true));
            } else if !watching && was_watching {
                self.rooms.remove(&room);
                changed.push((room, false));
            }
        }
        changed
    }

    /// One published event: skipped if already handed on, preceded by the gap if any.
    async fn on_message(&mut self, message: &Msg) -> Result<(), Lost> {
        let Some(room) = keys::room_of_channel(message.get_channel_name()) else {
            return Ok(());
        };
        let Some(&Some(position)) = self.rooms.get(&room) else {
            // Not watched (any more), or its position is still to be read.
            return Ok(());
        };
        let event = match decode::<RoomEvent>(message.get_payload_bytes(), "published event") {
            Ok(event) if event.room == room => event,
            Ok(_) | Err(_) => {
                tracing::warn!(%room, "an undecodable event was published; reading the stream");
                return self.read_stream(&room, None).await;
            }
        };
        if event.seq <= position.seq {
            // Already handed on (read from the stream first), unless history was reset.
            return self.check_epoch(&room, position).await;
        }
        if event.seq > position.seq + 1 {
            self.read_stream(&room, Some(event.seq - 1)).await?;
        }
        self.deliver(&event);
        Ok(())
    }

    /// A newly watched room starts at its `last_seq`; a room watched before catches up
    /// from its position, or from the start if its history was reset (its epoch changed,
    /// as when Redis lost its data).
    async fn resume_room(&mut self, room: &RoomId) -> Result<(), Lost> {
        let Some(&known) = self.rooms.get(room) else {
            return Ok(());
        };
        let (epoch, last_seq) = self.read_state(room).await?;
        match known {
            None => {
                let start = Position {
                    epoch,
                    seq: last_seq.unwrap_or(0),
                };
                self.rooms.insert(room.clone(), Some(start));
                Ok(())
            }
            Some(position) => {
                if position.epoch != epoch {
                    if position.epoch.is_some() {
                        tracing::warn!(%room, "the room's history was reset; following it anew");
                    }
                    let start = Position { epoch, seq: 0 };
                    self.rooms.insert(room.clone(), Some(start));
                }
                self.read_stream(room, None).await
            }
        }
    }

    /// Follows the room anew from the start of its history if its epoch changed.
    async fn check_epoch(&mut self, room: &RoomId, position: Position) -> Result<(), Lost> {
        let (epoch, _) = self.read_state(room).await?;
        if epoch == position.epoch {
            return Ok(());
        }
        tracing::warn!(%room, "the room's history was reset; following it anew");
        self.rooms
            .insert(room.clone(), Some(Position { epoch, seq: 0 }));
        self.read_stream(room, None).await
    }

    /// The room's epoch and last seq, if it exists.
    async fn read_state(&self, room: &RoomId) -> Result<(Option<Epoch>, Option<Seq>), Lost> {
        let mut conn = self.conn.clone();
        self.timed(
            "read a room's position",
            redis::cmd("HMGET")
                .arg(RoomKeys::of(room).state)
                .arg("epoch")
                .arg("last_seq")
                .query_async(&mut conn),
        )
        .await
    }

    /// Hands the room's stored events after its position, up to `until` or all, to the
    /// sink.
    async fn read_stream(&mut self, room: &RoomId, until: Option<Seq>) -> Result<(), Lost> {
        let events_key = RoomKeys::of(room).events;
        let end = until.map_or_else(|| "+".to_owned(), keys::entry_id);
        loop {
            let Some(&Some(position)) = self.rooms.get(room) else {
                return Ok(());
            };
            if until.is_some_and(|until| position.seq >= until) {
                return Ok(());
            }
            let mut conn = self.conn.clone();
            let page: StreamRangeReply = self
                .timed(
                    "catch up from the stream",
                    redis::cmd("XRANGE")
                        .arg(&events_key)
                        .arg(keys::entry_id(position.seq + 1))
                        .arg(&end)
                        .arg("COUNT")
                        .arg(CATCH_UP_BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            for entry in &page.ids {
                match event_of_entry(entry) {
                    Ok(event) if event.room == *room => self.deliver(&event),
                    Ok(_) | Err(_) => {
                        tracing::error!(%room, entry = %entry.id, "a stored event is corrupt; skipped");
                        if let Some(seq) = keys::seq_of_entry(&entry.id) {
                            self.advance(room, seq);
                        }
                    }
                }
            }
            if page.ids.len() < CATCH_UP_BATCH {
                return Ok(());
            }
        }
    }

    /// Hands one event to the sink and moves its room's position.
    fn deliver(&mut self, event: &RoomEvent) {
        self.sink.publish(event);
        self.advance(&event.room, event.seq);
    }

    fn advance(&mut self, room: &RoomId, seq: Seq) {
        if let Some(Some(position)) = self.rooms.get_mut(room) {
            position.seq = seq;
        }
    }

    async fn ping(&self, sink: &mut PubSubSink) -> Result<(), Lost> {
        self.timed("ping", sink.ping::<redis::Value>())
            .await
            .map(drop)
    }

    /// Runs one request with the command timeout; any failure is a reason to reconnect.
    async fn timed<T>(
        &self,
        what: &str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Lost> {
        timed(self.options.command_timeout, what, request)
            .await
            .map_err(|err: StoreError| err.to_string())
    }
}
