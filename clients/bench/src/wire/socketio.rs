//! Engine.IO v4 / Socket.IO v5 over a raw websocket, as much as the peer server needs:
//!
//! - `0{...}`: Engine.IO open (the server's first frame); `2` / `3`: ping / pong;
//! - `40{"token":...}`: connect to the main namespace with auth; the server answers `40{...}`
//!   (or `44{...}` when the middleware refuses);
//! - `42["event",...]`: an event; `42<n>[...]` asks for an ack, answered by `43<n>[...]`.
//!
//! The ack number the generator puts on a message is its intended send time, so an ack
//! carries the time to measure from without any table.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::{Identity, Inbound};
use crate::conn::{self, Ws};
use crate::payload::Stamp;

/// The Engine.IO websocket endpoint under a server's base URL (`ws://host:port`).
pub fn endpoint(base: &str) -> String {
    format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.trim_end_matches('/')
    )
}

/// The event frame for a message: `msg` (emitted at once) or `durable` (stored in a Redis
/// stream first), with an ack.
pub fn message(persist: bool, room: &str, stamp: &Stamp) -> String {
    let event = if persist { "durable" } else { "msg" };
    let args = serde_json::json!([event, room, stamp.body()]);
    format!("42{}{}", stamp.t, args)
}

#[derive(Deserialize)]
struct Delivered {
    body: String,
}

/// Reads an Engine.IO frame for the generator.
pub fn decode(text: &str) -> Inbound {
    if text == "2" {
        return Inbound::Reply("3".into());
    }
    if let Some(rest) = text.strip_prefix("42") {
        return match serde_json::from_str::<(String, Delivered)>(rest) {
            Ok((_, d)) => Stamp::parse(&d.body)
                .map(Inbound::Delivery)
                .unwrap_or(Inbound::Other),
            Err(_) => Inbound::Other,
        };
    }
    if let Some(rest) = text.strip_prefix("43") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return digits.parse().map(Inbound::Ack).unwrap_or(Inbound::Other);
    }
    if text.starts_with("44") || text.starts_with('1') {
        return Inbound::Error(format!("socket.io: {text:.120}"));
    }
    Inbound::Other
}

/// Opens the Engine.IO websocket, connects with the token, and joins the room.
pub async fn enter(base: &str, who: &Identity) -> anyhow::Result<Ws> {
    let mut ws = conn::open(&endpoint(base), None).await?;
    let open = next(&mut ws).await?;
    if !open.starts_with('0') {
        bail!("expected the Engine.IO open packet, got {open:.80}");
    }
    let auth = serde_json::json!({ "token": who.token });
    ws.send(Message::text(format!("40{auth}"))).await?;
    loop {
        let frame = next(&mut ws).await?;
        if frame.starts_with("40") {
            break;
        }
        if frame.starts_with("44") {
            bail!("connection refused: {frame:.120}");
        }
    }
    let join = serde_json::json!(["join", who.room]);
    ws.send(Message::text(format!("420{join}"))).await?;
    loop {
        let frame = next(&mut ws).await?;
        if frame.starts_with("430") {
            return Ok(ws);
        }
        if frame == "2" {
            ws.send(Message::text("3")).await?;
        }
    }
}

async fn next(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await.context("closed while connecting")?? {
            Message::Text(text) => return Ok(text.to_string()),
            Message::Close(frame) => bail!("closed while connecting: {frame:?}"),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let stamp = Stamp {
            sender: 1,
            n: 2,
            t: 345,
        };
        let text = message(true, "trio-1", &stamp);
        assert!(text.starts_with("42345[\"durable\",\"trio-1\",\"1-2-345 x"));
        let pushed = format!(
            "42[\"msg\",{{\"room\":\"trio-1\",\"author\":\"a\",\"body\":\"{}\"}}]",
            stamp.body()
        );
        assert_eq!(decode(&pushed), Inbound::Delivery(stamp));
        assert_eq!(decode("43345[{\"seq\":\"1-0\"}]"), Inbound::Ack(345));
        assert_eq!(decode("2"), Inbound::Reply("3".into()));
    }
}
