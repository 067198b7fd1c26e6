//! The Lua scripts of the Redis backend: every write to a room is one script, so it is
//! atomic, and each touches the keys of that one room only (one Cluster slot), all declared
//! in `KEYS`.
//!
//! - [`APPEND`]: de-duplicates by client message id (a known id returns the stored event
//!   unchanged), otherwise stores the event with the next seq, records the id, moves the
//!   author's read marker and publishes the event on the room's channel.
//! - [`MODERATOR`]: adds or removes a moderator from the room's joined list and stores and
//!   publishes the system event, or does nothing if the moderator is already in that state.
//! - [`SET_READ`]: moves a read marker forward, never past the room's last seq.
//! - [`APPLY_ROOM`]: writes a room's record; creates its state (epoch from the Redis clock)
//!   if it is new, otherwise keeps its history and the joined moderators still assigned.
//! - [`RESTORE`]: stores an exported event as it is (its seq must follow the room's last
//!   one), with its effect on the dedup hash or the joined moderators; publishes nothing.
//! - [`RECORD_CALL`]: inserts or replaces a call record of an existing room.
//!
//! Sequence numbers are `last_seq + 1`; timestamps come from the Redis clock (`TIME`, the
//! one clock every node shares) and never go back within a room. Scripts answer with an
//! array of strings whose first element says what happened ([`Reply`]).

use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};
use triad_protocol::{CallId, PersonId, RoomEvent, Seq};

use super::keys::RoomKeys;
use crate::store::StoreError;

/// Stores one event: `KEYS[1]` is the room's state, `KEYS[2]` its stream. Shared by the
/// scripts that append.
const ADD_EVENT: &str = r#"
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

local function add_event(partial, channel)
  local state = redis.call('HMGET', KEYS[1], 'last_seq', 'last_ts')
  local seq = string.format('%d', (tonumber(state[1]) or 0) + 1)
  local ts = now_ms()
  local last_ts = tonumber(state[2])
  if last_ts and last_ts > ts then ts = last_ts end
  ts = string.format('%d', ts)
  local json = '{"seq":' .. seq .. ',"ts":' .. ts .. ',' .. string.sub(partial, 2)
  redis.call('XADD', KEYS[2], '0-' .. seq, 'e', json)
  redis.call('HSET', KEYS[1], 'last_seq', seq, 'last_ts', ts)
  redis.call('PUBLISH', channel, json)
  return seq, json
end
"#;

/// `KEYS`: state, events, dedup, reads. `ARGV`: client message id, author, the event
/// without seq and ts, channel.
pub(super) const APPEND: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
local seen = redis.call('HGET', KEYS[3], ARGV[1])
if seen then
  local id = '0-' .. seen
  local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
  if not entry then return {'missing', seen} end
  return {'duplicate', entry[2][2]}
end
local seq, json = add_event(ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], seq)
redis.call('HSET', KEYS[4], ARGV[2], seq)
return {'stored', json}
"#;

/// `KEYS`: state, events, record, joined. `ARGV`: moderator, `1` to join or `0` to leave,
/// the event without seq and ts, channel.
pub(super) const MODERATOR: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
if redis.call('EXISTS', KEYS[3]) == 0 then return {'no_record'} end
local present = redis.call('LPOS', KEYS[4], ARGV[1]) ~= false
local joining = ARGV[2] == '1'
if present == joining then return {'unchanged'} end
local _, json = add_event(ARGV[3], ARGV[4])
if joining then
  redis.call('RPUSH', KEYS[4], ARGV[1])
else
  redis.call('LREM', KEYS[4], 0, ARGV[1])
end
return {'stored', json}
"#;

/// `KEYS`: state, reads. `ARGV`: person, the seq read.
pub(super) const SET_READ: &str = r#"
local last = redis.call('HGET', KEYS[1], 'last_seq')
if not last then return {'unknown'} end
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1])) or 0
local new = math.max(old, math.min(tonumber(ARGV[2]), tonumber(last)))
if new ~= old then redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', new)) end
return {'marker', string.format('%d', new)}
"#;

/// `KEYS`: state, record, joined. `ARGV`: the record's JSON, then the assigned moderators.
pub(super) const APPLY_ROOM: &str = r#"
redis.call('SET', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  local epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', KEYS[1], 'epoch', string.format('%d', epoch), 'last_seq', '0')
  redis.call('DEL', KEYS[3])
  return {'created'}
end
local assigned = {}
for i = 2, #ARGV do assigned[ARGV[i]] = true end
local joined = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
for _, id in ipairs(joined) do
  if assigned[id] then redis.call('RPUSH', KEYS[3], id) end
end
return {'kept'}
"#;

/// `KEYS`: state, events, dedup, record, joined. `ARGV`: seq, ts, the event's JSON, its
/// client message id (empty unless a message), its effect (`message`, `joined` or `left`),
/// its author.
pub(super) const RESTORE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
local state = redis.call('HMGET', KEYS[1], 'last_seq', 'last_ts')
local last_seq = tonumber(state[1]) or 0
if tonumber(ARGV[1]) ~= last_seq + 1 then
  return {'out_of_sequence', string.format('%d', last_seq)}
end
local last_ts = tonumber(state[2])
if last_ts and tonumber(ARGV[2]) < last_ts then return {'older'} end
local effect = ARGV[5]
if effect == 'message' then
  local seen = redis.call('HGET', KEYS[3], ARGV[4])
  if seen then return {'id_taken', seen} end
elseif redis.call('EXISTS', KEYS[4]) == 0 then
  return {'no_record'}
end
redis.call('XADD', KEYS[2], '0-' .. ARGV[1], 'e', ARGV[3])
redis.call('HSET', KEYS[1], 'last_seq', ARGV[1], 'last_ts', ARGV[2])
if effect == 'message' then
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
elseif effect == 'left' then
  redis.call('LREM', KEYS[5], 0, ARGV[6])
elseif redis.call('LPOS', KEYS[5], ARGV[6]) == false then
  local record = cjson.decode(redis.call('GET', KEYS[4]))
  for _, id in ipairs(record.moderators) do
    if id == ARGV[6] then
      redis.call('RPUSH', KEYS[5], ARGV[6])
      break
    end
  end
end
return {'written'}
"#;

/// `KEYS`: state, calls. `ARGV`: the call id, the record's JSON.
pub(super) const RECORD_CALL: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'written'}
"#;

static APPEND_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{ADD_EVENT}{APPEND}")));
static MODERATOR_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{ADD_EVENT}{MODERATOR}")));
static SET_READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SET_READ));
static APPLY_ROOM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPLY_ROOM));
static RESTORE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESTORE));
static RECORD_CALL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_CALL));

/// What a script did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// The room has no state: it does not exist. Nothing was written.
    UnknownRoom,
    /// A new event was stored and published; its JSON.
    Stored(String),
    /// The client message id was stored before; the JSON of its event.
    Duplicate(String),
    /// The client message id is recorded but its event is not in the stream.
    MissingOriginal(Seq),
    /// The room has a state but no record.
    NoRecord,
    /// The moderator was already in the state asked for.
    Unchanged,
    /// A read marker, now.
    Marker(Seq),
    /// The room was created, or it existed and was updated.
    Applied,
    /// A restored event or a call record was written.
    Written,
    /// The restored event's seq does not follow the room's last seq, given.
    OutOfSequence(Seq),
    /// The restored event is older than the room's last event.
    Older,
    /// The restored message's client message id is already stored, with the seq given.
    IdTaken(Seq),
}

impl Reply {
    fn parse(reply: Vec<String>) -> Result<Self, StoreError> {
        let mut parts = reply.into_iter();
        let status = parts.next().unwrap_or_default();
        let mut payload = || {
            parts
                .next()
                .ok_or_else(|| corrupt(&format!("the script's {status} reply has no value")))
        };
        let seq = |text: String| {
            text.parse::<Seq>()
                .map_err(|err| corrupt(&format!("seq {text:?}: {err}")))
        };
        Ok(match status.as_str() {
            "unknown" => Self::UnknownRoom,
            "stored" => Self::Stored(payload()?),
            "duplicate" => Self::Duplicate(payload()?),
            "missing" => Self::MissingOriginal(seq(payload()?)?),
            "no_record" => Self::NoRecord,
            "unchanged" => Self::Unchanged,
            "marker" => Self::Marker(seq(payload()?)?),
            "created" | "kept" => Self::Applied,
            "written" => Self::Written,
            "out_of_sequence" => Self::OutOfSequence(seq(payload()?)?),
            "older" => Self::Older,
            "id_taken" => Self::IdTaken(seq(payload()?)?),
            other => return Err(corrupt(&format!("unexpected script reply {other:?}"))),
        })
    }
}

fn corrupt(message: &str) -> StoreError {
    StoreError::Corrupt(message.to_owned())
}

/// A script's raw answer, parsed by [`Reply::parse`] once it has arrived.
pub(super) struct Raw(Vec<String>);

impl Raw {
    /// What the script did.
    pub fn reply(self) -> Result<Reply, StoreError> {
        Reply::parse(self.0)
    }
}

/// Runs [`APPEND`].
pub(super) async fn append(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    client_msg_id: &str,
    author: &PersonId,
    partial: &str,
) -> RedisResult<Raw> {
    APPEND_SCRIPT
        .key(&keys.state)
        .key(&keys.events)
        .key(&keys.dedup)
        .key(&keys.reads)
        .arg(client_msg_id)
        .arg(author.as_str())
        .arg(partial)
        .arg(&keys.channel)
        .invoke_async(&mut conn)
        .await
        .map(Raw)
}

/// Runs [`MODERATOR`].
pub(super) async fn set_moderator(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    moderator: &PersonId,
    joined: bool,
    partial: &str,
) -> RedisResult<Raw> {
    MODERATOR_SCRIPT
        .key(&keys.state)
        .key(&keys.events)
        .key(&keys.record)
        .key(&keys.joined)
        .arg(moderator.as_str())
        .arg(if joined { "1" } else { "0" })
        .arg(partial)
        .arg(&keys.channel)
        .invoke_async(&mut conn)
        .await
        .map(Raw)
}

/// Runs [`SET_READ`].
pub(super) async fn set_read(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    person: &PersonId,
    seq: Seq,
) -> RedisResult<Raw> {
    SET_READ_SCRIPT
        .key(&keys.state)
        .key(&keys.reads)
        .arg(person.as_str())
        .arg(seq.to_string())
        .invoke_async(&mut conn)
        .await
        .map(Raw)
}

/// Runs [`APPLY_ROOM`].
pub(super) async fn apply_room(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    record: &str,
    moderators: &[PersonId],
) -> RedisResult<Raw> {
    let mut invocation = APPLY_ROOM_SCRIPT.key(&keys.state);
    invocation.key(&keys.record).key(&keys.joined).arg(record);
    for moderator in moderators {
        invocation.arg(moderator.as_str());
    }
    invocation.invoke_async(&mut conn).await.map(Raw)
}

/// What a restored event does to its room besides taking the next seq.
pub(super) enum Effect<'a> {
    /// A message: its client message id is recorded.
    Message(&'a str),
    /// A moderator joined.
    Joined,
    /// A moderator left.
    Left,
}

/// Runs [`RESTORE`] for `event`, already encoded as `json`.
pub(super) async fn restore(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    event: &RoomEvent,
    json: &str,
    effect: Effect<'_>,
) -> RedisResult<Raw> {
    let (client_msg_id, effect) = match effect {
        Effect::Message(id) => (id, "message"),
        Effect::Joined => ("", "joined"),
        Effect::Left => ("", "left"),
    };
    RESTORE_SCRIPT
        .key(&keys.state)
        .key(&keys.events)
        .key(&keys.dedup)
        .key(&keys.record)
        .key(&keys.joined)
        .arg(event.seq.to_string())
        .arg(event.ts.to_string())
        .arg(json)
        .arg(client_msg_id)
        .arg(effect)
        .arg(event.author.as_str())
        .invoke_async(&mut conn)
        .await
        .map(Raw)
}

/// Runs [`RECORD_CALL`].
pub(super) async fn record_call(
    mut conn: ConnectionManager,
    keys: &RoomKeys,
    call: &CallId,
    json: &str,
) -> RedisResult<Raw> {
    RECORD_CALL_SCRIPT
        .key(&keys.state)
        .key(&keys.calls)
        .arg(call.as_str())
        .arg(json)
        .invoke_async(&mut conn)
        .await
        .map(Raw)
}
