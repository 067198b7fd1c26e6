//! How a call record is stored, by both backends: the same JSON in a redb table and in a
//! Redis hash, so an export reads the same from either.

use serde::{Deserialize, Serialize};
use triad_protocol::{CallId, PersonId, RoomId, Timestamp};

use super::{Attendance, CallRecord};

/// A call record as stored; the room and the call id are in the key.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredCall {
    started_by: PersonId,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    attendance: Vec<StoredAttendance>,
}

/// One stretch of a person's time in a call, as stored.
#[derive(Serialize, Deserialize)]
struct StoredAttendance {
    person: PersonId,
    joined_at: Timestamp,
    left_at: Option<Timestamp>,
}

impl StoredCall {
    /// The stored form of `record` (without its room and call id).
    pub fn of(record: &CallRecord) -> Self {
        Self {
            started_by: record.started_by.clone(),
            started_at: record.started_at,
            ended_at: record.ended_at,
            attendance: record
                .attendance
                .iter()
                .map(|stretch| StoredAttendance {
                    person: stretch.person.clone(),
                    joined_at: stretch.joined_at,
                    left_at: stretch.left_at,
                })
                .collect(),
        }
    }

    /// The record of call `call` in `room`.
    pub fn into_record(self, room: RoomId, call: CallId) -> CallRecord {
        CallRecord {
            call,
            room,
            started_by: self.started_by,
            started_at: self.started_at,
            ended_at: self.ended_at,
            attendance: self
                .attendance
                .into_iter()
                .map(|stretch| Attendance {
                    person: stretch.person,
                    joined_at: stretch.joined_at,
                    left_at: stretch.left_at,
                })
                .collect(),
        }
    }
}
