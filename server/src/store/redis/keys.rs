//! Key and channel names of the Redis backend: the one place that knows the layout.
//!
//! Every key of a room carries the hash tag `{room:<id>}`, so all of them live in one Redis
//! Cluster slot and one script can touch them together:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `triad:{room:<id>}:state` | hash | `epoch`, `last_seq`, `last_ts` (absent while empty); the room exists iff this key does |
//! | `triad:{room:<id>}:events` | stream | one entry per event, id `0-<seq>`, field `e`: the JSON of the `RoomEvent` |
//! | `triad:{room:<id>}:dedup` | hash | client message id to the seq stored with it |
//! | `triad:{room:<id>}:reads` | hash | person to their read marker |
//! | `triad:{room:<id>}:record` | string | the room's kind, title, members and moderators (JSON) |
//! | `triad:{room:<id>}:joined` | list | assigned moderators who joined and have not left, in joining order |
//! | `triad:{room:<id>}:calls` | hash | call id to the JSON of the room's call record (start, end, attendance) |
//!
//! The room's events are published on the channel `triad:{room:<id>}:live` by the script
//! that stores them. Programme-wide keys, each in its own slot: `triad:people` (hash: person
//! to the JSON of their `PersonInfo`), `triad:rooms` (set of room ids) and
//! `triad:programme:version` (a random value, set anew before and after each programme
//! applied).
//!
//! Room ids are slugs (no braces), so the hash tag is always the whole `room:<id>`.

use triad_protocol::{RoomId, Seq};

/// The hash of every person: id to the JSON of their `PersonInfo`.
pub(super) const PEOPLE: &str = "triad:people";

/// The set of every room id.
pub(super) const ROOMS: &str = "triad:rooms";

/// A random value, set anew before and after each programme applied.
pub(super) const PROGRAMME_VERSION: &str = "triad:programme:version";

/// The prefix and suffix around a room id in its channel name.
const CHANNEL_PREFIX: &str = "triad:{room:";
const CHANNEL_SUFFIX: &str = "}:live";

/// The names of one room's keys and channel.
#[derive(Debug, Clone)]
pub(super) struct RoomKeys {
    /// `…:state`: epoch, last seq, last timestamp.
    pub state: String,
    /// `…:events`: the stream of events.
    pub events: String,
    /// `…:dedup`: client message id to seq.
    pub dedup: String,
    /// `…:reads`: person to read marker.
    pub reads: String,
    /// `…:record`: the room's membership.
    pub record: String,
    /// `…:joined`: the joined moderators.
    pub joined: String,
    /// `…:calls`: call id to call record.
    pub calls: String,
    /// `…:live`: the channel its new events are published on.
    pub channel: String,
}

impl RoomKeys {
    /// The keys of `room`.
    pub fn of(room: &RoomId) -> Self {
        let key = |suffix: &str| format!("triad:{{room:{}}}:{suffix}", room.as_str());
        Self {
            state: key("state"),
            events: key("events"),
            dedup: key("dedup"),
            reads: key("reads"),
            record: key("record"),
            joined: key("joined"),
            calls: key("calls"),
            channel: channel(room),
        }
    }
}

/// The channel a room's new events are published on.
pub(super) fn channel(room: &RoomId) -> String {
    format!("{CHANNEL_PREFIX}{}{CHANNEL_SUFFIX}", room.as_str())
}

/// The room a channel belongs to, if it is a room channel.
pub(super) fn room_of_channel(channel: &str) -> Option<RoomId> {
    let id = channel
        .strip_prefix(CHANNEL_PREFIX)?
        .strip_suffix(CHANNEL_SUFFIX)?;
    RoomId::new(id).ok()
}

/// The stream entry id of an event.
pub(super) fn entry_id(seq: Seq) -> String {
    format!("0-{seq}")
}

/// The seq of a stream entry id written by [`entry_id`].
pub(super) fn seq_of_entry(id: &str) -> Option<Seq> {
    id.strip_prefix("0-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_room_shares_its_hash_tag() {
        let room = RoomId::new("trio-1").expect("room id");
        let keys = RoomKeys::of(&room);
        for key in [
            &keys.state,
            &keys.events,
            &keys.dedup,
            &keys.reads,
            &keys.record,
            &keys.joined,
            &keys.calls,
        ] {
            assert!(key.starts_with("triad:{room:trio-1}:"), "{key}");
        }
        assert_eq!(keys.channel, "triad:{room:trio-1}:live");
        assert_eq!(room_of_channel(&keys.channel), Some(room));
        assert_eq!(room_of_channel("triad:bus"), None);
        assert_eq!(seq_of_entry(&entry_id(42)), Some(42));
    }
}
