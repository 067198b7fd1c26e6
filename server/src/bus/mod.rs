//! Delivery across nodes. On one node the hub is all there is; with several nodes sharing
//! Redis, a [`Link`] carries what one node's sessions do to the sessions on the others:
//! ephemeral room frames (typing, a moderator entering), frames for one person's other
//! sessions (read markers), and presence.
//!
//! Stored room events do not travel here: the store's own feed delivers them (for Redis,
//! published by the append script, with gaps filled from the stream), so they keep their
//! sequence order.
//!
//! [`BusMessage`] is the format between nodes. It is internal to Triad's servers (not the
//! client protocol), so it may change between releases; nodes of one cluster run one
//! version.

pub mod message;
pub mod redis;

use std::sync::Arc;

pub use message::{BusMessage, NodeId, PresenceEntry};

/// Carries messages to the other nodes. Must not block: a link queues and sends from its
/// own task, dropping (and counting) what it cannot queue.
pub trait Link: Send + Sync + 'static {
    /// Sends a message to every other node.
    fn publish(&self, message: BusMessage);
}

/// A shared link.
pub type SharedLink = Arc<dyn Link>;
