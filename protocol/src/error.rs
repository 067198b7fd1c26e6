//! Error codes (in `error` frames) and websocket close codes. Codes are stable strings:
//! clients match on them, people read the accompanying message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a request failed. Serialized as a snake_case string, e.g. `"not_a_member"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    BadJson,
    /// The `type` names no request of this protocol version.
    UnknownType,
    /// The request is missing a field or has a field of the wrong type or value.
    InvalidRequest,
    /// A binary frame; the protocol uses text frames only.
    BinaryFrame,
    /// A request other than `hello` before the connection is authenticated.
    NotAuthenticated,
    /// A second `hello` on an authenticated connection.
    AlreadyAuthenticated,
    /// The token has expired.
    TokenExpired,
    /// The token is malformed, signed with another key or algorithm, or has a wrong
    /// audience, issuer or claim type.
    TokenInvalid,
    /// The token names a person who is not in the programme.
    UnknownPerson,
    /// The room does not exist.
    UnknownRoom,
    /// The person is not a member of the room.
    NotAMember,
    /// A moderator must `join` a trio room before speaking in it.
    JoinRequired,
    /// The person's role may not do this.
    Forbidden,
    /// The message body is longer than the limit.
    BodyTooLong,
    /// The message body is empty or only whitespace.
    EmptyBody,
    /// The client message id is empty, too long or not printable ASCII.
    BadClientMsgId,
    /// More requests than the rate limit allows; retry later.
    RateLimited,
    /// A history page larger than the limit was asked for.
    PageTooLarge,
    /// The store did not answer in time or failed; retry later. The outcome is unknown: a
    /// `send` answered with it may have been stored. Retry with the same `client_msg_id`;
    /// it is stored at most once.
    StoreUnavailable,
    /// An unexpected server fault.
    Internal,
    /// The call does not exist (or has ended).
    NoCall,
    /// The session (or the session a signal is addressed to) is not a participant of the
    /// call, or is reconnecting.
    NotInCall,
    /// The call has the most participants it may have.
    CallFull,
    /// The session is already in another call; leave it first.
    AlreadyInCall,
    /// A signal's SDP or candidate is over its size limit.
    SignalTooLarge,
    /// A coaching session cannot start in the past.
    CoachingInPast,
    /// The room already has a coaching session at that time.
    CoachingOverlap,
    /// The time zone is not an IANA time zone name.
    UnknownTimeZone,
    /// The coaching session does not exist.
    NoCoaching,
    /// The coaching session was cancelled; it cannot be moved.
    CoachingCancelled,
    /// No chat message has that sequence number in the room.
    NoMessage,
    /// The invitation code is unknown.
    InvitationInvalid,
    /// The invitation was already used; ask the coordinator for a new one.
    InvitationUsed,
    /// The invitation has expired; ask the coordinator for a new one.
    InvitationExpired,
    /// The token (or refresh token) was revoked: the person signed out, was removed, or their access was withdrawn.
    TokenRevoked,
    /// A roster or programme change has problems; each is listed with its line or field.
    RosterInvalid,
    /// The thing asked for (a person, trio, cycle or report) does not exist.
    NotFound,
    /// The change conflicts with what exists (a duplicate id, say).
    Conflict,
    /// The room holds as many upcoming coaching sessions as it may
    /// ([`crate::limits::MAX_UPCOMING_COACHINGS_PER_ROOM`]); cancel one first.
    TooManyCoachings,
    /// Coaching sessions are booked in a trio room or the commons, not in this room (the
    /// staff room).
    NotBookable,
    /// The request's body did not arrive within the server's deadline.
    RequestTimeout,
    /// The request's body is larger than the server takes.
    RequestTooLarge,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownType => "unknown_type",
            Self::InvalidRequest => "invalid_request",
            Self::BinaryFrame => "binary_frame",
            Self::NotAuthenticated => "not_authenticated",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::TokenExpired => "token_expired",
            Self::TokenInvalid => "token_invalid",
            Self::UnknownPerson => "unknown_person",
            Self::UnknownRoom => "unknown_room",
            Self::NotAMember => "not_a_member",
            Self::JoinRequired => "join_required",
            Self::Forbidden => "forbidden",
            Self::BodyTooLong => "body_too_long",
            Self::EmptyBody => "empty_body",
            Self::BadClientMsgId => "bad_client_msg_id",
            Self::RateLimited => "rate_limited",
            Self::PageTooLarge => "page_too_large",
            Self::StoreUnavailable => "store_unavailable",
            Self::Internal => "internal",
            Self::NoCall => "no_call",
            Self::NotInCall => "not_in_call",
            Self::CallFull => "call_full",
            Self::AlreadyInCall => "already_in_call",
            Self::SignalTooLarge => "signal_too_large",
            Self::CoachingInPast => "coaching_in_past",
            Self::CoachingOverlap => "coaching_overlap",
            Self::UnknownTimeZone => "unknown_time_zone",
            Self::NoCoaching => "no_coaching",
            Self::CoachingCancelled => "coaching_cancelled",
            Self::NoMessage => "no_message",
            Self::InvitationInvalid => "invitation_invalid",
            Self::InvitationUsed => "invitation_used",
            Self::InvitationExpired => "invitation_expired",
            Self::TokenRevoked => "token_revoked",
            Self::RosterInvalid => "roster_invalid",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooManyCoachings => "too_many_coachings",
            Self::NotBookable => "not_bookable",
            Self::RequestTimeout => "request_timeout",
            Self::RequestTooLarge => "request_too_large",
        }
    }

    /// Whether the same request may succeed if sent again later, unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::StoreUnavailable | Self::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A websocket close code the server uses, with its meaning. 1000-1011 are the standard
/// codes; 4000-4999 are Triad's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// Normal closure.
    pub const NORMAL: Self = Self(1000);
    /// The server is going away (shutting down or draining): reconnect, to another node.
    pub const GOING_AWAY: Self = Self(1001);
    /// A text frame that is not valid UTF-8 (RFC 6455 §8.1): reconnect, without that frame.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// A frame larger than [`crate::limits::MAX_FRAME_BYTES`].
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// The server could not go on with the session (e.g. the store failed while replaying
    /// history): reconnect and resume.
    pub const SERVER_ERROR: Self = Self(1011);
    /// The store could not be reached while signing in (after an `error` with
    /// [`ErrorCode::StoreUnavailable`]): nothing is wrong with the token; reconnect with it
    /// later, with backoff.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// No valid `hello` in time.
    pub const HELLO_TIMEOUT: Self = Self(4000);
    /// The `hello` token was refused; do not reconnect with the same token.
    pub const AUTH_FAILED: Self = Self(4001);
    /// The token expired during the session and was not refreshed.
    pub const TOKEN_EXPIRED: Self = Self(4003);
    /// The session fell behind and its outbox filled up: reconnect and resume.
    pub const SLOW_CONSUMER: Self = Self(4008);
    /// The person was removed from the programme or their access revoked.
    pub const REVOKED: Self = Self(4009);

    /// The close reason sent with [`CloseCode::REVOKED`] when the coordinator withdrew the
    /// person's access (or removed them from the programme).
    pub const REASON_WITHDRAWN: &'static str = "access withdrawn";
    /// The close reason sent with [`CloseCode::REVOKED`] when the person signed out on every
    /// device.
    pub const REASON_SIGNED_OUT_EVERYWHERE: &'static str = "signed out everywhere";

    /// Whether a client should reconnect (with resume) after this close.
    pub fn should_reconnect(self) -> bool {
        !matches!(
            self,
            Self::AUTH_FAILED | Self::TOKEN_EXPIRED | Self::REVOKED
        )
    }
}
