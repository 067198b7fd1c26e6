//! Pins: chat messages the people of a room mark as key learning, which the cycle report
//! collects. A room's pins are one document ([`Collection::Pins`], keyed by room), changed by
//! compare-and-set, so two people pinning at once cannot lose each other's pin and the
//! per-room limit holds whichever nodes take the requests.
//!
//! Pinning a message already pinned, or unpinning one that is not, changes nothing and is
//! not an error: both return `None`, so the caller knows there is nothing to announce.

use triad_protocol::limits::MAX_PINS_PER_ROOM;
use triad_protocol::{ErrorCode, EventBody, PersonId, Pin, RoomEvent, RoomId, Seq, Timestamp};

use crate::store::docs::{Docs, UpdateError};
use crate::store::{Collection, Page, Store, StoreError};

/// Why a pin or unpin was refused.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// No chat message has that sequence number in the room.
    #[error("{room} has no chat message {seq}")]
    NoMessage {
        /// The room.
        room: RoomId,
        /// The sequence number asked for.
        seq: Seq,
    },
    /// The room already holds as many pins as it may.
    #[error(
        "{room} already has {MAX_PINS_PER_ROOM} pins, the most a room may hold; unpin one first"
    )]
    TooMany {
        /// The room.
        room: RoomId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PinError {
    /// The protocol code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoMessage { .. } => ErrorCode::NoMessage,
            Self::TooMany { .. } => ErrorCode::InvalidRequest,
            Self::Store(StoreError::UnknownRoom(_)) => ErrorCode::UnknownRoom,
            Self::Store(_) => ErrorCode::StoreUnavailable,
        }
    }
}

impl From<UpdateError<PinError>> for PinError {
    fn from(err: UpdateError<PinError>) -> Self {
        match err {
            UpdateError::Refused(err) => err,
            UpdateError::Store(err) => Self::Store(err),
        }
    }
}

fn docs(store: &dyn Store) -> Docs<'_, Vec<Pin>> {
    Docs::new(store, Collection::Pins)
}

/// The chat message `seq` of `room`, if there is one (`None` for another kind of event).
pub async fn message(
    store: &dyn Store,
    room: &RoomId,
    seq: Seq,
) -> Result<Option<RoomEvent>, StoreError> {
    if seq == 0 {
        return Ok(None);
    }
    let page = store
        .history(
            room,
            Page::After {
                after: seq - 1,
                limit: 1,
            },
        )
        .await?;
    Ok(page
        .events
        .into_iter()
        .find(|event| event.seq == seq && matches!(event.body, EventBody::Message { .. })))
}

/// Pins message `seq` of `room` for `by`. Returns the new pin, or `None` if the message was
/// pinned already (the existing pin is kept as it was).
pub async fn pin(
    store: &dyn Store,
    room: &RoomId,
    seq: Seq,
    by: &PersonId,
    now: Timestamp,
) -> Result<Option<Pin>, PinError> {
    if message(store, room, seq).await?.is_none() {
        return Err(PinError::NoMessage {
            room: room.clone(),
            seq,
        });
    }
    let current = docs(store).get(room.as_str()).await?.unwrap_or_default();
    if current.iter().any(|p| p.seq == seq) {
        return Ok(None);
    }
    let new = Pin {
        room: room.clone(),
        seq,
        pinned_by: by.clone(),
        pinned_at: now,
    };
    let added = docs(store)
        .update(room.as_str(), |pins| {
            let mut pins = pins.unwrap_or_default();
            if pins.iter().any(|p| p.seq == seq) {
                return Ok((Some(pins), None));
            }
            if pins.len() >= MAX_PINS_PER_ROOM {
                return Err(PinError::TooMany { room: room.clone() });
            }
            pins.push(new.clone());
            pins.sort_by_key(|p| p.seq);
            Ok((Some(pins), Some(new.clone())))
        })
        .await?;
    Ok(added)
}

/// Takes the pin off message `seq` of `room`. Returns the pin taken away, or `None` if the
/// message was not pinned.
pub async fn unpin(store: &dyn Store, room: &RoomId, seq: Seq) -> Result<Option<Pin>, PinError> {
    let current = docs(store).get(room.as_str()).await?.unwrap_or_default();
    if !current.iter().any(|p| p.seq == seq) {
        return Ok(None);
    }
    let removed = docs(store)
        .update(room.as_str(), |pins| {
            let mut pins = pins.unwrap_or_default();
            let Some(at) = pins.iter().position(|p| p.seq == seq) else {
                let keep = (!pins.is_empty()).then_some(pins);
                return Ok::<_, PinError>((keep, None));
            };
            let removed = pins.remove(at);
            let keep = (!pins.is_empty()).then_some(pins);
            Ok((keep, Some(removed)))
        })
        .await?;
    Ok(removed)
}

/// The pins of `room`, in message order.
pub async fn pins(store: &dyn Store, room: &RoomId) -> Result<Vec<Pin>, StoreError> {
    let mut pins = docs(store).get(room.as_str()).await?.unwrap_or_default();
    pins.sort_by_key(|p| p.seq);
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use triad_protocol::ClientMsgId;

    use super::*;
    use crate::programme::{DEMO_ROSTER, Roster};
    use crate::store::NoSink;
    use crate::store::embedded::EmbeddedStore;

    async fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("triad.redb"), Arc::new(NoSink)).unwrap();
        let roster = Roster::parse(DEMO_ROSTER).unwrap();
        store.apply_programme(&roster.programme).await.unwrap();
        (dir, store)
    }

    fn id(s: &str) -> PersonId {
        PersonId::new(s).unwrap()
    }

    #[tokio::test]
    async fn pins_are_idempotent_sorted_and_limited_to_messages() {
        let (_dir, store) = store().await;
        let room = RoomId::new("trio-1").unwrap();
        let anna = id("anna.jensen");
        for i in 0..3 {
            store
                .append_message(&room, &anna, &ClientMsgId(format!("m{i}")), "hello")
                .await
                .unwrap();
        }
        assert!(pin(&store, &room, 3, &anna, 10).await.unwrap().is_some());
        assert!(
            pin(&store, &room, 1, &id("marco.rossi"), 11)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            pin(&store, &room, 3, &anna, 12).await.unwrap().is_none(),
            "idempotent"
        );
        let seqs: Vec<Seq> = pins(&store, &room)
            .await
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(seqs, vec![1, 3]);
        for missing in [0, 4] {
            let err = pin(&store, &room, missing, &anna, 13).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::NoMessage, "{err}");
        }
        assert_eq!(
            unpin(&store, &room, 1).await.unwrap().map(|p| p.pinned_at),
            Some(11)
        );
        assert!(unpin(&store, &room, 1).await.unwrap().is_none());
        assert!(unpin(&store, &room, 3).await.unwrap().is_some());
        assert!(pins(&store, &room).await.unwrap().is_empty());
    }
}
