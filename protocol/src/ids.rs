//! Identifier newtypes. Rooms and people have short, stable, human-readable ids
//! (`trio-1`, `anna.jensen`); sessions and client message ids are opaque strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A room's sequence number: contiguous from 1 within one epoch of a room.
pub type Seq = u64;

/// A room's history epoch. A change of epoch voids every position a client holds.
pub type Epoch = u64;

/// Milliseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// The id a client puts on a request so it can match the response (`re`).
pub type RequestId = u64;

/// The longest id of a room or person, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    /// What kind of id was being checked.
    pub kind: &'static str,
    /// The offending value (truncated).
    pub value: String,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} id {:?} must be 1 to {MAX_ID_LEN} characters of a-z, 0-9, '.', '_' or '-'",
            self.kind, self.value
        )
    }
}

impl std::error::Error for IdError {}

fn check_slug(kind: &'static str, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(IdError {
            kind,
            value: crate::limits::echoed(value).into_owned(),
        })
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an id.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_slug($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

slug_id!(
    /// A room: `trio-<n>` for a trio, `commons` for the programme, `staff` for moderators
    /// and the coordinator.
    RoomId,
    "room"
);
slug_id!(
    /// A person in the programme.
    PersonId,
    "person"
);
slug_id!(
    /// A scheduled coaching session, assigned by the server (`cs-<hex>`).
    CoachingId,
    "coaching session"
);

/// One websocket session (a browser tab or a device), assigned by the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct SessionId(pub String);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id a client gives a message it sends, so a retried send is stored once.
/// 1 to [`crate::limits::MAX_CLIENT_MSG_ID_LEN`] printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct ClientMsgId(pub String);

impl ClientMsgId {
    /// Whether the id has an acceptable length and alphabet.
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty()
            && self.0.len() <= crate::limits::MAX_CLIENT_MSG_ID_LEN
            && self.0.bytes().all(|b| b.is_ascii_graphic())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        assert!(RoomId::new("trio-1").is_ok());
        assert!(PersonId::new("anna.jensen").is_ok());
        assert!(RoomId::new("").is_err());
        assert!(RoomId::new("Trio 1").is_err());
        assert!(RoomId::new("x".repeat(65)).is_err());
        let parsed: Result<RoomId, _> = serde_json::from_str("\"bad room\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn client_msg_ids_are_checked() {
        assert!(ClientMsgId("a1-b2".into()).is_valid());
        assert!(!ClientMsgId(String::new()).is_valid());
        assert!(!ClientMsgId("has space".into()).is_valid());
        assert!(!ClientMsgId("x".repeat(65)).is_valid());
    }
}
