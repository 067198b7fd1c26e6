//! Every limit of the protocol, defined once. The server enforces them and tells clients
//! their values in the welcome ([`Limits`]).

use serde::{Deserialize, Serialize};

/// The largest websocket frame (and message) the server reads, in bytes. Larger frames close
/// the connection with [`crate::CloseCode::MESSAGE_TOO_BIG`]. Room for the largest body even
/// at its worst JSON escaping (six bytes per character, `\u0001`) plus the envelope.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// The longest message body, in bytes of UTF-8. Longer bodies get
/// [`crate::ErrorCode::BodyTooLong`] and the connection stays open.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

// Any body within the limit fits in a frame, however it is escaped.
const _: () = assert!(MAX_BODY_BYTES * 6 + 1024 <= MAX_FRAME_BYTES);

/// The longest client message id, in bytes.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;

/// The longest token in `hello` or `refresh`, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The most characters of a client's own input that an error message quotes back; a
/// longer value is cut there and ends with `…`.
pub const MAX_ECHOED_CHARS: usize = 64;

/// Cuts `value` to [`MAX_ECHOED_CHARS`] characters, ending with `…` if it was longer: how
/// error messages quote what a client sent.
pub fn echoed(value: &str) -> std::borrow::Cow<'_, str> {
    echoed_to(value, MAX_ECHOED_CHARS)
}

/// Cuts `value` to `max` characters, ending with `…` if it was longer.
pub fn echoed_to(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(value),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &value[..end])),
    }
}

/// The default number of events in a history page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The largest history page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;

/// Sends allowed per person per second, sustained, across all their sessions.
pub const SEND_RATE_PER_SECOND: u32 = 5;

/// Sends a person may make in a burst before the sustained rate applies.
pub const SEND_BURST: u32 = 30;

/// Requests of any kind allowed per session per second, sustained.
pub const REQUEST_RATE_PER_SECOND: u32 = 50;

/// Requests of any kind a session may make in a burst.
pub const REQUEST_BURST: u32 = 200;

/// Requests needing the store that a session may have waiting at once. They are answered
/// one at a time, in order; while this many wait, the server reads no more frames from the
/// session (requests that need no store, such as `typing`, are answered at once otherwise).
/// Call requests wait in a queue of their own, bounded the same way.
pub const MAX_PENDING_STORE_REQUESTS: usize = 16;

/// Bytes of request frames (their text) a session may have waiting at once, over the store
/// and call queues together; while this much waits, the server reads no more frames from
/// the session.
pub const MAX_PENDING_REQUEST_BYTES: usize = 256 * 1024;
const _: () = assert!(MAX_PENDING_REQUEST_BYTES >= MAX_FRAME_BYTES);

/// Seconds a new connection has to send `hello` before it is closed.
pub const HELLO_TIMEOUT_SECS: u64 = 5;

/// Seconds a typing indicator lasts unless repeated.
pub const TYPING_TTL_SECS: u64 = 6;

/// Resume points a `hello` may carry.
pub const MAX_RESUME_POINTS: usize = 256;

/// The most participants a call may have (a full mesh of peer connections).
pub const MAX_CALL_PARTICIPANTS: usize = 5;

/// The longest SDP in an offer or answer, in bytes.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// The longest ICE candidate line, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// The longest media section id (`sdp_mid`) of a candidate, in bytes.
pub const MAX_SDP_MID_BYTES: usize = 64;

/// Signals (offers, answers, candidates) a session may relay per second, sustained.
pub const SIGNAL_RATE_PER_SECOND: u32 = 30;

/// Signals a session may relay in a burst (room for a full mesh's first negotiation).
pub const SIGNAL_BURST: u32 = 120;

// Any signal within the limits fits in a frame, however it is escaped.
const _: () = assert!(MAX_SDP_BYTES * 6 + 1024 <= MAX_FRAME_BYTES);

/// The limits in force on a connection, sent in the welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Limits {
    /// See [`MAX_FRAME_BYTES`].
    pub max_frame_bytes: usize,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// See [`MAX_PAGE_SIZE`].
    pub max_page_size: u32,
    /// See [`SEND_RATE_PER_SECOND`].
    pub send_rate_per_second: u32,
    /// See [`SEND_BURST`].
    pub send_burst: u32,
    /// See [`TYPING_TTL_SECS`].
    pub typing_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: MAX_FRAME_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            max_page_size: MAX_PAGE_SIZE,
            send_rate_per_second: SEND_RATE_PER_SECOND,
            send_burst: SEND_BURST,
            typing_ttl_secs: TYPING_TTL_SECS,
        }
    }
}

/// The longest coaching session title, in bytes.
pub const MAX_COACHING_TITLE_BYTES: usize = 200;

/// The longest coaching session agenda, in bytes.
pub const MAX_COACHING_AGENDA_BYTES: usize = 4 * 1024;

/// The shortest coaching session, in minutes.
pub const MIN_COACHING_MINUTES: u32 = 15;

/// The longest coaching session, in minutes.
pub const MAX_COACHING_MINUTES: u32 = 8 * 60;

/// How far ahead a coaching session may be booked, in days.
pub const MAX_COACHING_DAYS_AHEAD: i64 = 2 * 366;

/// The most pins a room may hold.
pub const MAX_PINS_PER_ROOM: usize = 500;

/// Rooms with more people than this list only those online in the welcome, and get no
/// presence pushes (the programme-wide room of a large programme).
pub const MAX_LISTED_MEMBERS: usize = 100;

/// The most coaching sessions that have not ended a room may hold, cancelled ones included
/// (a cancelled session counts until its planned end).
pub const MAX_UPCOMING_COACHINGS_PER_ROOM: usize = 100;

/// Bookings, moves and cancellations of coaching sessions per person, in a burst.
pub const COACHING_CHANGES_BURST: u32 = 20;

/// Bookings, moves and cancellations of coaching sessions per person per hour, sustained.
pub const COACHING_CHANGES_PER_HOUR: u32 = 60;

/// E-mails about bookings, moves and cancellations one person gets for one room, in a
/// burst; beyond it such changes reach them in the app and the calendar feed only.
pub const COACHING_MAILS_BURST: u32 = 3;

/// E-mails about bookings, moves and cancellations one person gets for one room per hour,
/// sustained.
pub const COACHING_MAILS_PER_HOUR: u32 = 6;

/// REST requests (`/api`) per second, sustained, per peer address and, for signed-in
/// calls, per person.
pub const API_RATE_PER_SECOND: u32 = 20;

/// REST requests (`/api`) in a burst, per peer address and per person.
pub const API_BURST: u32 = 100;

/// Failed sign-in attempts (`/api/auth/redeem`, `/api/auth/refresh`, `/api/auth/sign-out`
/// answered 4xx other than 429) per peer address per minute, sustained, on each node; a
/// successful one takes nothing. Once they are used up, every sign-in call from that
/// address is answered 429 `rate_limited` until `Retry-After`.
pub const SIGN_IN_RATE_PER_MINUTE: u32 = 6;

/// Failed sign-in attempts per peer address in a burst, on each node.
pub const SIGN_IN_BURST: u32 = 10;

/// The longest message of a REST error, in characters. A message that repeats a client's
/// input is cut there and ends with `…`, however long the input was.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// The largest REST request body, in bytes; larger ones are refused with
/// `request_too_large` (413).
pub const MAX_REQUEST_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Seconds a client has, once its request headers are in, to send the whole request body;
/// a slower body is answered 408 `request_timeout` and its connection closed (the default
/// of the server's `body_read_timeout_secs`).
pub const BODY_READ_TIMEOUT_SECS: u64 = 30;

/// The most connections a node keeps open at once, websockets included; one more is
/// answered 503 with `Retry-After` and closed (the default of the server's
/// `max_connections`).
pub const MAX_CONNECTIONS: usize = 10_000;

/// The most connections a node keeps open at once from one peer address (IPv6: one /64);
/// one more is answered 503 with `Retry-After` and closed (the default of the server's
/// `max_connections_per_peer`).
pub const MAX_CONNECTIONS_PER_PEER: usize = 200;

/// The `Retry-After` of the 503 answered to a connection over a connection cap, in seconds.
pub const OVER_CAP_RETRY_AFTER_SECS: u64 = 5;
