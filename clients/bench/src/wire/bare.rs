//! The ceiling server's protocol: connect to `ws://host:port/?room=<room>`; every text frame
//! is a message for the room; the server sends it to every member (the sender included) and
//! answers the sender with `ack:<id>`, the id being the text up to its first space.

use super::{Identity, Inbound};
use crate::conn::{self, Ws};
use crate::payload::Stamp;

/// Connects into the identity's room (no sign-in: the ceiling has no authentication).
pub async fn enter(base: &str, who: &Identity) -> anyhow::Result<Ws> {
    let url = format!("{}/?room={}", base.trim_end_matches('/'), who.room);
    conn::open(&url, None).await
}

/// Reads a ceiling frame.
pub fn decode(text: &str) -> Inbound {
    if let Some(id) = text.strip_prefix("ack:") {
        return Stamp::parse(id)
            .map(|s| Inbound::Ack(s.t))
            .unwrap_or(Inbound::Other);
    }
    Stamp::parse(text)
        .map(Inbound::Delivery)
        .unwrap_or(Inbound::Other)
}
