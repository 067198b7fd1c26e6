//! What the Redis backend stores as JSON (events, rooms, people, call records), and how it
//! is encoded and decoded.
//!
//! Events are stored and published as the JSON of [`RoomEvent`]. Their `seq` and `ts` are
//! assigned inside the scripts, so Rust encodes the rest of the event (room, author, body)
//! as a JSON object without those two fields, and the script completes it by putting
//! `"seq":<n>,"ts":<ms>,` right after the opening brace. JSON objects are unordered, so the
//! result decodes as any other `RoomEvent`.

use redis::Value;
use redis::streams::StreamId;
use serde::{Deserialize, Serialize};
use triad_protocol::{EventBody, PersonId, RoomEvent, RoomId, RoomKind};

use crate::store::{RoomRecord, StoreError};

/// A room's membership as stored under its `record` key; the id is in the key, and the
/// joined moderators are in their own list.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredRoom {
    kind: RoomKind,
    title: String,
    members: Vec<PersonId>,
    moderators: Vec<PersonId>,
}

impl StoredRoom {
    /// The stored form of `record` (without its joined moderators).
    pub fn of(record: &RoomRecord) -> Self {
        Self {
            kind: record.kind,
            title: record.title.clone(),
            members: record.members.clone(),
            moderators: record.moderators.clone(),
        }
    }

    /// The record of room `id`, with its joined moderators.
    pub fn into_record(self, id: RoomId, joined_moderators: Vec<PersonId>) -> RoomRecord {
        RoomRecord {
            id,
            kind: self.kind,
            title: self.title,
            members: self.members,
            moderators: self.moderators,
            joined_moderators,
        }
    }
}

/// The JSON of an event without `seq` and `ts`, for a script to complete.
pub(super) fn event_without_position(
    room: &RoomId,
    author: &PersonId,
    body: EventBody,
) -> Result<String, StoreError> {
    let event = RoomEvent {
        room: room.clone(),
        seq: 0,
        ts: 0,
        author: author.clone(),
        body,
    };
    let mut value = serde_json::to_value(&event).map_err(cannot_encode)?;
    let Some(fields) = value.as_object_mut() else {
        return Err(StoreError::Unavailable(
            "an event did not encode as a JSON object".into(),
        ));
    };
    fields.remove("seq");
    fields.remove("ts");
    serde_json::to_string(&value).map_err(cannot_encode)
}

/// The event in a stream entry (its field `e`).
pub(super) fn event_of_entry(entry: &StreamId) -> Result<RoomEvent, StoreError> {
    match entry.map.get("e") {
        Some(Value::BulkString(bytes)) => decode(bytes, "event"),
        _ => Err(StoreError::Corrupt(format!(
            "stream entry {} has no event",
            entry.id
        ))),
    }
}

/// JSON for storage.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(cannot_encode)
}

/// A stored value, decoded; `what` names it in the error.
pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

fn cannot_encode(err: serde_json::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot encode for storage: {err}"))
}

#[cfg(test)]
mod tests {
    use triad_protocol::ClientMsgId;

    use super::*;

    /// What the scripts do to the partial JSON, done here in Rust.
    fn complete(partial: &str, seq: u64, ts: i64) -> String {
        format!("{{\"seq\":{seq},\"ts\":{ts},{}", &partial[1..])
    }

    #[test]
    fn a_completed_event_decodes_as_the_event() {
        let room = RoomId::new("trio-1").expect("room id");
        let author = PersonId::new("anna").expect("person id");
        let body = EventBody::Message {
            client_msg_id: ClientMsgId("m-1".into()),
            body: "hello \"there\" {}".into(),
        };
        let partial = event_without_position(&room, &author, body.clone()).expect("encode");
        assert!(!partial.contains("\"seq\""));
        let event: RoomEvent =
            decode(complete(&partial, 7, 1_700_000_000_123).as_bytes(), "event").expect("decode");
        let expected = RoomEvent {
            room,
            seq: 7,
            ts: 1_700_000_000_123,
            author,
            body,
        };
        assert_eq!(event, expected);
    }
}
