//! The three ways the generator talks to a server, behind one small interface: how to sign
//! in and enter a room, how to frame a message, and what an incoming frame means.
//!
//! - [`triad`]: Triad's protocol, through `triad-protocol`'s types.
//! - [`socketio`]: Engine.IO v4 / Socket.IO v5 over a raw websocket, for the peer server in
//!   `peers/socketio`.
//! - [`bare`]: the ceiling server's protocol: raw text, room in the URL.

pub mod bare;
pub mod socketio;
pub mod triad;

use crate::conn::{Outbound, Ws};
use crate::payload::Stamp;

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Triad (`triad.v1`).
    Triad,
    /// Socket.IO; `persist` sends the `durable` event (XADD before emitting) instead of `msg`.
    SocketIo {
        /// Whether messages are stored before they are emitted.
        persist: bool,
    },
    /// The bare websocket ceiling.
    Bare,
}

/// What an incoming frame means to the generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A chat message delivered (possibly the receiver's own).
    Delivery(Stamp),
    /// The server acknowledged a message sent at this intended time.
    Ack(u64),
    /// The server pinged at the protocol level: answer with this frame.
    Reply(String),
    /// The server reported an error.
    Error(String),
    /// Anything else (presence, live, system events).
    Other,
}

/// Who a connection is: the person, their room, and whether they must enter it with `join`.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The person's id.
    pub person: String,
    /// The room.
    pub room: String,
    /// True for a moderator, who must `join` a trio room before taking part.
    pub moderator: bool,
    /// A token for the person.
    pub token: String,
}

impl Dialect {
    /// Opens a connection and enters the identity's room; returns when messages can flow.
    pub async fn connect(&self, url: &str, who: &Identity) -> anyhow::Result<Ws> {
        match self {
            Self::Triad => triad::enter(url, who).await,
            Self::SocketIo { .. } => socketio::enter(url, who).await,
            Self::Bare => bare::enter(url, who).await,
        }
    }

    /// The frame that sends `stamp` to `room`.
    pub fn message(&self, room: &str, stamp: &Stamp) -> String {
        match self {
            Self::Triad => triad::message(room, stamp),
            Self::SocketIo { persist } => socketio::message(*persist, room, stamp),
            Self::Bare => stamp.body(),
        }
    }

    /// What a text frame means.
    pub fn decode(&self, text: &str) -> Inbound {
        match self {
            Self::Triad => triad::decode(text),
            Self::SocketIo { .. } => socketio::decode(text),
            Self::Bare => bare::decode(text),
        }
    }

    /// Sends a message through a connection's writer.
    pub fn send(&self, out: &Outbound, room: &str, stamp: &Stamp) -> bool {
        out.text(self.message(room, stamp))
    }

    /// Its name in results.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Triad => "triad",
            Self::SocketIo { .. } => "socketio",
            Self::Bare => "ceiling",
        }
    }
}
