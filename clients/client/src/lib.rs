//! An async Rust client for Triad: typed requests over one websocket, room events delivered
//! exactly once and in order, and a connection that reconnects, resumes and resends by
//! itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), triad_client::ClientError> {
//! use triad_client::{Client, ClientConfig, ClientEvent};
//!
//! let config = ClientConfig::new("ws://127.0.0.1:8080/ws", "a-jwt");
//! let (client, mut events) = Client::connect(config).await?;
//! let room = client.welcome().rooms[0].id.clone();
//! client.send(&room, "hello").await?;
//! while let Some(event) = events.next().await {
//!     if let ClientEvent::Event(event) = event {
//!         println!("{} #{}", event.room, event.seq);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`config`]: where the server is and how patient to be.
//! - [`client`]: the [`Client`] handle and its requests.
//! - [`calls`]: the call requests of [`Client`] (start, join, signal, ...) and [`CallJoined`].
//! - [`events`]: what the connection reports, read from [`Events`].
//! - [`error`]: why a request failed.
//! - `connection`: the background task that owns the websocket (reconnect, session, frames).
//! - `socket`: the websocket, the `hello` handshake, frames in and out.
//! - `positions`: per-room positions: de-duplication, ordering, gap filling, resume points.
//! - `outbox`: unacknowledged messages, resent until acknowledged.
//! - `backoff`: exponential backoff with full jitter.

pub mod calls;
pub mod client;
pub mod config;
pub mod error;
pub mod events;

mod backoff;
mod connection;
mod outbox;
mod positions;
mod socket;

pub use calls::CallJoined;
pub use client::{Client, new_client_msg_id};
pub use config::ClientConfig;
pub use error::ClientError;
pub use events::{ClientEvent, Events};
pub use triad_protocol as protocol;
pub use triad_protocol::{
    Ack, ClientMsgId, History, Live, PresenceStatus, Request, RoomEvent, RoomId, RoomInfo, Seq,
    ServerMessage, Welcome,
};
