//! Triad's wire protocol: every message on the websocket, its limits and its error codes.
//!
//! The protocol is JSON text frames over a websocket negotiated with the subprotocol
//! [`PROTOCOL_VERSION`]. A client sends [`ClientFrame`]s, each a [`Request`] with an optional
//! request id; the server answers with [`ServerFrame`]s that echo the id in `re`, and pushes
//! events (room events, typing, presence) with no `re`.
//!
//! This crate is serde only: no I/O, no runtime. It is the one place that knows the wire format.
//!
//! Modules:
//! - [`ids`]: identifier newtypes (rooms, people, sessions, client message ids).
//! - [`limits`]: every size, rate and page limit, shared by the server and the clients.
//! - [`error`]: the error codes and websocket close codes.
//! - [`event`]: events stored in a room's history.
//! - [`call`]: video calls: call state, signalling, ICE servers.
//! - [`coaching`]: scheduled coaching sessions and pinned key learning.
//! - [`client`]: what a client sends.
//! - [`server`]: what the server sends.
//! - [`codec`]: decoding a frame once into a closed enum, with a typed error.

#![warn(missing_docs)]

pub mod call;
pub mod client;
pub mod coaching;
pub mod codec;
pub mod error;
pub mod event;
pub mod ids;
pub mod limits;
pub mod server;

pub use call::{
    CallChange, CallChangeKind, CallEndReason, CallId, CallParticipant, CallState, IceServer,
    IceServers, Signal,
};
pub use client::{ClientFrame, Request, ResumePoint};
pub use coaching::{CoachingChange, CoachingSession, CoachingStatus, Pin};
pub use codec::{DecodeError, decode_client, decode_server};
pub use error::{CloseCode, ErrorCode};
pub use event::{EventBody, RoomEvent};
pub use ids::{
    ClientMsgId, CoachingId, Epoch, IdError, PersonId, RequestId, RoomId, Seq, SessionId, Timestamp,
};
pub use limits::Limits;
pub use server::{
    Ack, History, Live, MemberInfo, PersonInfo, PresenceStatus, Role, RoomInfo, RoomKind,
    ServerFrame, ServerMessage, Welcome,
};

/// The protocol version, offered by clients as the websocket subprotocol and echoed in
/// the welcome.
pub const PROTOCOL_VERSION: &str = "triad.v1";
