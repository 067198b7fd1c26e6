//! The Redis backend: history in Streams, writes in Lua scripts, cross-node delivery of
//! stored events over pub/sub. Several nodes share one Redis; every key of a room is
//! hash-tagged with the room, so Redis Cluster can shard rooms.
//!
//! - `keys`: the key layout and the channel names;
//! - `scripts`: the Lua scripts (append, moderator join/leave, read marker, room update,
//!   restore of an exported event, call record);
//! - `records`: the JSON stored for events, rooms, people and call records;
//! - `feed`: the task that follows the watched rooms' channels and hands their events to
//!   the [`EventSink`];
//! - `testing`: `RedisProcess`, a real `redis-server` for tests (tests and the `testing`
//!   feature only).
//!
//! All callers share one multiplexed connection that reconnects by itself; the feed has its
//! own pub/sub connection. Every request has a deadline ([`RedisOptions::command_timeout`]):
//! an unreachable, slow or loading Redis gives [`StoreError::Unavailable`], never a hang.
//! An append whose answer is lost may still have been stored: the caller's retry with the
//! same client message id then returns it, marked duplicate.

mod docs;
mod feed;
mod keys;
mod records;
mod scripts;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamRangeReply;
use redis::{ErrorKind, RedisError, RedisResult, Value};
use triad_protocol::{
    CallId, ClientMsgId, EventBody, PersonId, PersonInfo, RoomEvent, RoomId, Seq,
};

use self::feed::Feed;
use self::keys::RoomKeys;
use self::records::{StoredRoom, decode, encode, event_of_entry, event_without_position};
use self::scripts::{Effect, Reply};
use super::stored_call::StoredCall;
use super::{
    Appended, CallRecord, Collection, EventSink, Expect, HistoryPage, Page, Programme, RoomRecord,
    RoomState, Store, StoreError,
};

/// How the Redis backend talks to Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisOptions {
    /// The longest any one request may take, connecting included, before it fails with
    /// [`StoreError::Unavailable`].
    pub command_timeout: Duration,
    /// The first wait before the feed reconnects after losing its connection.
    pub reconnect_delay_min: Duration,
    /// The longest wait between the feed's reconnection attempts (the wait doubles each time).
    pub reconnect_delay_max: Duration,
    /// How often the feed pings its pub/sub connection to notice a silent loss.
    pub feed_ping_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(3),
            reconnect_delay_min: Duration::from_millis(100),
            reconnect_delay_max: Duration::from_secs(5),
            feed_ping_interval: Duration::from_secs(5),
        }
    }
}

/// The Redis backend of [`Store`]. Cheap to share behind an `Arc`; dropping it stops its
/// feed.
pub struct RedisStore {
    /// The command connection, shared by every caller (clones share one socket).
    conn: ConnectionManager,
    /// The feed of watched rooms.
    feed: Feed,
    options: RedisOptions,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host:port[/db]`) with the
    /// default options. Events of watched rooms go to `sink`.
    pub async fn open(url: &str, sink: Arc<dyn EventSink>) -> Result<Self, StoreError> {
        Self::open_with(url, sink, RedisOptions::default()).await
    }

    /// Like [`RedisStore::open`], with the given options. Fails with
    /// [`StoreError::Unavailable`] if the URL is invalid or Redis cannot be reached within
    /// the command timeout. Must be called inside a Tokio runtime (it starts the feed task).
    pub async fn open_with(
        url: &str,
        sink: Arc<dyn EventSink>,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        // The URL may hold a password: it is not repeated in errors.
        let client = redis::Client::open(url)
            .map_err(|err| StoreError::Unavailable(format!("invalid Redis URL: {err}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.command_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_max_delay(options.reconnect_delay_max);
        let conn = timed(
            options.command_timeout,
            "connect to Redis",
            client.get_connection_manager_with_config(config),
        )
        .await?;
        let feed = Feed::start(client, conn.clone(), sink, options);
        Ok(Self {
            conn,
            feed,
            options,
        })
    }

    /// Waits until every [`Store::watch_room`] call made so far is in effect: the room's
    /// channel is subscribed and its start position read, so every event stored from now
    /// on reaches the sink. While Redis is unreachable this waits for it to come back.
    pub async fn watches_settled(&self) {
        self.feed.settled().await;
    }

    /// Runs one request with the command timeout.
    async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        timed(self.options.command_timeout, what, request).await
    }

    /// Writes people, rooms and the room list of a programme.
    async fn write_programme(&self, programme: &Programme) -> Result<(), StoreError> {
        let mut people = Vec::with_capacity(programme.people.len());
        for person in &programme.people {
            people.push((person.id.as_str(), encode(person)?));
        }
        let mut rooms = Vec::with_capacity(programme.rooms.len());
        for record in &programme.rooms {
            rooms.push((record, encode(&StoredRoom::of(record))?));
        }
        if !people.is_empty() {
            let mut conn = self.conn();
            self.call(
                "store people",
                redis::cmd("HSET")
                    .arg(keys::PEOPLE)
                    .arg(&people)
                    .query_async::<i64>(&mut conn),
            )
            .await?;
        }
        for (record, stored) in &rooms {
            let keys = RoomKeys::of(&record.id);
            let reply = self
                .call(
                    "store a room",
                    scripts::apply_room(self.conn(), &keys, stored, &record.moderators),
                )
                .await?
                .reply()?;
            expect_reply(&reply, &Reply::Applied)?;
        }
        // Listed last, so a listed room always has its record and state.
        if !rooms.is_empty() {
            let ids: Vec<&str> = rooms.iter().map(|(record, _)| record.id.as_str()).collect();
            let mut conn = self.conn();
            self.call(
                "list the rooms",
                redis::cmd("SADD")
                    .arg(keys::ROOMS)
                    .arg(&ids)
                    .query_async::<i64>(&mut conn),
            )
            .await?;
        }
        Ok(())
    }

    /// Gives the programme version a new random value. Random rather than counted: after
    /// a failover to a replica that lagged, or a restore, a counter could come back to a
    /// value a node already holds, with another programme behind it.
    async fn programme_changed(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let version: u64 = rand::random();
        self.call(
            "announce a programme change",
            redis::cmd("SET")
                .arg(keys::PROGRAMME_VERSION)
                .arg(version)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// A handle on the shared command connection.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Room `id` as stored, if it exists.
    async fn read_room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StoreError> {
        let keys = RoomKeys::of(id);
        let mut conn = self.conn();
        let (record, joined): (Option<String>, Vec<String>) = self
            .call(
                "read a room",
                redis::pipe()
                    .cmd("GET")
                    .arg(&keys.record)
                    .cmd("LRANGE")
                    .arg(&keys.joined)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
        record
            .map(|record| room_record(id.clone(), &record, joined))
            .transpose()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn settle_watches(&self) {
        let settled = self.watches_settled();
        if tokio::time::timeout(self.options.command_timeout, settled)
            .await
            .is_err()
        {
            tracing::warn!("room subscriptions not in effect in time; gaps fill on the next event");
        }
    }

    async fn programme(&self) -> Result<Programme, StoreError> {
        let mut conn = self.conn();
        let (people, room_ids): (Vec<String>, Vec<String>) = self
            .call(
                "read the programme",
                redis::pipe()
                    .cmd("HVALS")
                    .arg(keys::PEOPLE)
                    .cmd("SMEMBERS")
                    .arg(keys::ROOMS)
                    .query_async(&mut conn),
            )
            .await?;
        let mut programme = Programme::default();
        for person in people {
            programme
                .people
                .push(decode::<PersonInfo>(person.as_bytes(), "person")?);
        }
        programme.people.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ids = Vec::with_capacity(room_ids.len());
        for id in room_ids {
            ids.push(RoomId::new(id).map_err(|err| StoreError::Corrupt(err.to_string()))?);
        }
        ids.sort();
        if ids.is_empty() {
            return Ok(programme);
        }
        // Every room in one round trip (a pipeline, not a transaction).
        let mut request = redis::pipe();
        for id in &ids {
            let keys = RoomKeys::of(id);
            request.cmd("GET").arg(&keys.record);
            request.cmd("LRANGE").arg(&keys.joined).arg(0).arg(-1);
        }
        let mut replies: Vec<Value> = self
            .call("read the rooms", request.query_async(&mut conn))
            .await?;
        for (n, id) in ids.into_iter().enumerate() {
            let record: Option<String> = parse_reply(replies.get_mut(2 * n), "room")?;
            let joined: Vec<String> = parse_reply(replies.get_mut(2 * n + 1), "room")?;
            let record = record.ok_or_else(|| {
                StoreError::Corrupt(format!("room {id} is listed but has no record"))
            })?;
            programme.rooms.push(room_record(id, &record, joined)?);
        }
        Ok(programme)
    }

    async fn apply_programme(&self, programme: &Programme) -> Result<(), StoreError> {
        // Announced before and after: a node that read half of it reads again once it is
        // whole, and a change cut short (a failed command, a caller gone) still counts.
        self.programme_changed().await?;
        let written = self.write_programme(programme).await;
        let announced = self.programme_changed().await;
        written.and(announced)
    }

    async fn programme_version(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let version: Option<u64> = self
            .call(
                "read the programme version",
                redis::cmd("GET")
                    .arg(keys::PROGRAMME_VERSION)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(version.unwrap_or(0))
    }

    async fn person(&self, id: &PersonId) -> Result<Option<PersonInfo>, StoreError> {
        let mut conn = self.conn();
        let found: Option<String> = self
            .call(
                "read a person",
                redis::cmd("HGET")
                    .arg(keys::PEOPLE)
                    .arg(id.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        found
            .map(|person| decode(person.as_bytes(), "person"))
            .transpose()
    }

    async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StoreError> {
        self.read_room(id).await
    }

    async fn append_message(
        &self,
        room: &RoomId,
        author: &PersonId,
        client_msg_id: &ClientMsgId,
        body: &str,
    ) -> Result<Appended, StoreError> {
        let message = EventBody::Message {
            client_msg_id: client_msg_id.clone(),
            body: body.to_owned(),
        };
        let partial = event_without_position(room, author, message)?;
        let keys = RoomKeys::of(room);
        let reply = self
            .call(
                "append a message",
                scripts::append(self.conn(), &keys, &client_msg_id.0, author, &partial),
            )
            .await?
            .reply()?;
        match reply {
            Reply::Stored(json) => Ok(Appended {
                event: decode(json.as_bytes(), "event")?,
                duplicate: false,
            }),
            Reply::Duplicate(json) => Ok(Appended {
                event: decode(json.as_bytes(), "event")?,
                duplicate: true,
            }),
            Reply::UnknownRoom => Err(StoreError::UnknownRoom(room.clone())),
            Reply::MissingOriginal(seq) => Err(StoreError::Corrupt(format!(
                "{room}: message {} has no event {seq}",
                client_msg_id.0
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn set_moderator_joined(
        &self,
        room: &RoomId,
        moderator: &PersonId,
        joined: bool,
    ) -> Result<Option<RoomEvent>, StoreError> {
        let body = if joined {
            EventBody::ModeratorJoined
        } else {
            EventBody::ModeratorLeft
        };
        let partial = event_without_position(room, moderator, body)?;
        let keys = RoomKeys::of(room);
        let reply = self
            .call(
                "record a moderator",
                scripts::set_moderator(self.conn(), &keys, moderator, joined, &partial),
            )
            .await?
            .reply()?;
        match reply {
            Reply::Stored(json) => Ok(Some(decode(json.as_bytes(), "event")?)),
            Reply::Unchanged => Ok(None),
            Reply::UnknownRoom => Err(StoreError::UnknownRoom(room.clone())),
            Reply::NoRecord => Err(StoreError::Corrupt(format!(
                "room {room} has a state but no record"
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn restore_event(&self, event: &RoomEvent) -> Result<(), StoreError> {
        let room = &event.room;
        let json = encode(event)?;
        let effect = match &event.body {
            EventBody::Message { client_msg_id, .. } => Effect::Message(client_msg_id.as_str()),
            EventBody::ModeratorJoined => Effect::Joined,
            EventBody::ModeratorLeft => Effect::Left,
        };
        let keys = RoomKeys::of(room);
        let reply = self
            .call(
                "restore an event",
                scripts::restore(self.conn(), &keys, event, &json, effect),
            )
            .await?
            .reply()?;
        match reply {
            Reply::Written => Ok(()),
            Reply::UnknownRoom => Err(StoreError::UnknownRoom(room.clone())),
            Reply::OutOfSequence(last) => Err(StoreError::Conflict(format!(
                "{room}: event {} does not follow the room's last event {last}",
                event.seq
            ))),
            Reply::Older => Err(StoreError::Conflict(format!(
                "{room}: event {} is older than the room's last event",
                event.seq
            ))),
            Reply::IdTaken(seq) => Err(StoreError::Conflict(format!(
                "{room}: message {} of event {} is already stored as event {seq}",
                event.body.client_msg_id().map_or("", ClientMsgId::as_str),
                event.seq
            ))),
            Reply::NoRecord => Err(StoreError::Corrupt(format!(
                "room {room} has a state but no record"
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn history(&self, room: &RoomId, page: Page) -> Result<HistoryPage, StoreError> {
        let keys = RoomKeys::of(room);
        let range = Range::of(page);
        let mut request = redis::pipe();
        request.cmd("HGET").arg(&keys.state).arg("epoch");
        if let Some(range) = &range {
            let (command, start, end) = if range.newest_first {
                ("XREVRANGE", range.to.clone(), range.from.clone())
            } else {
                ("XRANGE", range.from.clone(), range.to.clone())
            };
            request
                .cmd(command)
                .arg(&keys.events)
                .arg(start)
                .arg(end)
                .arg("COUNT")
                .arg(u64::from(range.limit) + 1);
        }
        let mut conn = self.conn();
        let mut replies: Vec<Value> = self
            .call("read history", request.query_async(&mut conn))
            .await?;
        let epoch: Option<u64> = parse_reply(replies.first_mut(), "epoch")?;
        let epoch = epoch.ok_or_else(|| StoreError::UnknownRoom(room.clone()))?;
        let Some(range) = range else {
            return Ok(HistoryPage {
                epoch,
                events: Vec::new(),
                has_more: false,
            });
        };
        let entries: StreamRangeReply = parse_reply(replies.get_mut(1), "history")?;
        let mut events = entries
            .ids
            .iter()
            .map(event_of_entry)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(range.limit).unwrap_or(usize::MAX);
        let has_more = events.len() > limit;
        events.truncate(limit);
        if range.newest_first {
            events.reverse();
        }
        Ok(HistoryPage {
            epoch,
            events,
            has_more,
        })
    }

    async fn room_state(&self, room: &RoomId) -> Result<RoomState, StoreError> {
        let keys = RoomKeys::of(room);
        let mut conn = self.conn();
        let (epoch, last_seq, last_ts): (Option<u64>, Option<Seq>, Option<i64>) = self
            .call(
                "read a room's state",
                redis::cmd("HMGET")
                    .arg(&keys.state)
                    .arg("epoch")
                    .arg("last_seq")
                    .arg("last_ts")
                    .query_async(&mut conn),
            )
            .await?;
        let epoch = epoch.ok_or_else(|| StoreError::UnknownRoom(room.clone()))?;
        Ok(RoomState {
            epoch,
            last_seq: last_seq.unwrap_or(0),
            last_ts,
        })
    }

    async fn set_read(
        &self,
        room: &RoomId,
        person: &PersonId,
        seq: Seq,
    ) -> Result<Seq, StoreError> {
        let keys = RoomKeys::of(room);
        let reply = self
            .call(
                "move a read marker",
                scripts::set_read(self.conn(), &keys, person, seq),
            )
            .await?
            .reply()?;
        match reply {
            Reply::Marker(marker) => Ok(marker),
            Reply::UnknownRoom => Err(StoreError::UnknownRoom(room.clone())),
            other => Err(unexpected(&other)),
        }
    }

    async fn read_marker(&self, room: &RoomId, person: &PersonId) -> Result<Seq, StoreError> {
        let keys = RoomKeys::of(room);
        let mut conn = self.conn();
        let (exists, marker): (bool, Option<Seq>) = self
            .call(
                "read a read marker",
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(&keys.state)
                    .cmd("HGET")
                    .arg(&keys.reads)
                    .arg(person.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        if !exists {
            return Err(StoreError::UnknownRoom(room.clone()));
        }
        Ok(marker.unwrap_or(0))
    }

    async fn ready(&self) -> bool {
        let mut conn = self.conn();
        let pong = self
            .call("ping", redis::cmd("PING").query_async::<String>(&mut conn))
            .await;
        pong.is_ok()
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let json = encode(&StoredCall::of(record))?;
        let keys = RoomKeys::of(&record.room);
        let reply = self
            .call(
                "store a call record",
                scripts::record_call(self.conn(), &keys, &record.call, &json),
            )
            .await?
            .reply()?;
        match reply {
            Reply::Written => Ok(()),
            Reply::UnknownRoom => Err(StoreError::UnknownRoom(record.room.clone())),
            other => Err(unexpected(&other)),
        }
    }

    async fn call_records(&self, room: &RoomId) -> Result<Vec<CallRecord>, StoreError> {
        let keys = RoomKeys::of(room);
        let mut conn = self.conn();
        let (exists, calls): (bool, HashMap<String, String>) = self
            .call(
                "read call records",
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(&keys.state)
                    .cmd("HGETALL")
                    .arg(&keys.calls)
                    .query_async(&mut conn),
            )
            .await?;
        if !exists {
            return Err(StoreError::UnknownRoom(room.clone()));
        }
        let mut records = Vec::with_capacity(calls.len());
        for (call, json) in calls {
            let stored: StoredCall = decode(json.as_bytes(), "call")?;
            records.push(stored.into_record(room.clone(), CallId(call)));
        }
        // Oldest first; calls started in the same millisecond by call id.
        records.sort_by(|a, b| (a.started_at, &a.call.0).cmp(&(b.started_at, &b.call.0)));
        Ok(records)
    }

    async fn doc(&self, collection: Collection, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        self.call(
            "read a document",
            redis::cmd("HGET")
                .arg(docs::hash(collection))
                .arg(key)
                .query_async(&mut conn),
        )
        .await
    }

    async fn docs(&self, collection: Collection) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.conn();
        let all: HashMap<String, String> = self
            .call(
                "read documents",
                redis::cmd("HGETALL")
                    .arg(docs::hash(collection))
                    .query_async(&mut conn),
            )
            .await?;
        let mut all: Vec<(String, String)> = all.into_iter().collect();
        all.sort();
        Ok(all)
    }

    async fn write_doc(
        &self,
        collection: Collection,
        key: &str,
        expect: Expect,
        value: Option<String>,
    ) -> Result<bool, StoreError> {
        self.call(
            "write a document",
            docs::write(self.conn(), collection, key, &expect, value.as_deref()),
        )
        .await
    }

    fn watch_room(&self, room: &RoomId, watching: bool) {
        self.feed.watch(room, watching);
    }
}

/// The stream range a page reads, by entry id, before `COUNT`.
struct Range {
    /// The lowest id in the range.
    from: String,
    /// The highest id in the range.
    to: String,
    /// Whether the page is the newest of the range (read backwards).
    newest_first: bool,
    limit: u32,
}

impl Range {
    /// The range of `page`, or `None` if the page is empty whatever is stored.
    fn of(page: Page) -> Option<Self> {
        let (from, to, newest_first, limit) = match page {
            Page::Latest { limit } => ("-".to_owned(), "+".to_owned(), true, limit),
            Page::Before { before, limit } => {
                let to = before.checked_sub(1).filter(|to| *to >= 1)?;
                ("-".to_owned(), keys::entry_id(to), true, limit)
            }
            Page::After { after, limit } => {
                let from = after.checked_add(1)?;
                (keys::entry_id(from), "+".to_owned(), false, limit)
            }
        };
        Some(Self {
            from,
            to,
            newest_first,
            limit,
        })
    }
}

/// One reply of a pipeline, converted.
fn parse_reply<T: redis::FromRedisValue>(
    reply: Option<&mut Value>,
    what: &str,
) -> Result<T, StoreError> {
    let value = reply
        .map(std::mem::take)
        .ok_or_else(|| StoreError::Unavailable(format!("Redis gave no reply for the {what}")))?;
    redis::from_redis_value(value).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

/// A room's record from its stored JSON and joined moderators.
fn room_record(id: RoomId, record: &str, joined: Vec<String>) -> Result<RoomRecord, StoreError> {
    let stored: StoredRoom = decode(record.as_bytes(), "room")?;
    let mut moderators = Vec::with_capacity(joined.len());
    for moderator in joined {
        moderators
            .push(PersonId::new(moderator).map_err(|err| StoreError::Corrupt(err.to_string()))?);
    }
    Ok(stored.into_record(id, moderators))
}

fn expect_reply(reply: &Reply, expected: &Reply) -> Result<(), StoreError> {
    if reply == expected {
        Ok(())
    } else {
        Err(unexpected(reply))
    }
}

fn unexpected(reply: &Reply) -> StoreError {
    StoreError::Corrupt(format!("unexpected script reply {reply:?}"))
}

/// Runs `request` with a deadline and maps its failure: data Redis holds but that is not
/// what was written gives [`StoreError::Corrupt`]; anything else (refused, dropped, timed
/// out, loading, read-only) gives [`StoreError::Unavailable`].
pub(super) async fn timed<T>(
    deadline: Duration,
    what: &str,
    request: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(store_error(what, &err)),
        Err(_) => {
            crate::metrics::redis_error();
            Err(StoreError::Unavailable(format!(
                "{what}: timed out: no answer from Redis within {} ms",
                deadline.as_millis()
            )))
        }
    }
}

fn store_error(what: &str, err: &RedisError) -> StoreError {
    crate::metrics::redis_error();
    let corrupt = matches!(
        err.kind(),
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse
    ) || err.code() == Some("WRONGTYPE");
    if corrupt {
        StoreError::Corrupt(format!("{what}: {err}"))
    } else {
        StoreError::Unavailable(format!("{what}: {err}"))
    }
}
