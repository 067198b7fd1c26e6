//! Triad's protocol, spoken through `triad-protocol`: `hello` with a token, the welcome,
//! one `live` per room, `join` for a moderator, then `send`, `ack` and `event`.

use std::collections::HashMap;

use anyhow::{Context, bail};
use futures_util::SinkExt;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use triad_protocol::{
    ClientFrame, ClientMsgId, EventBody, Live, PROTOCOL_VERSION, Request, ResumePoint, RoomId,
    ServerFrame, ServerMessage, Welcome, decode_server,
};

use super::{Identity, Inbound};
use crate::conn::{self, Ws};
use crate::payload::Stamp;

/// Request ids used while signing in.
const HELLO_ID: u64 = 1;
const JOIN_ID: u64 = 2;

/// The send request for a stamped message (its request id is the sender's counter).
pub fn message(room: &str, stamp: &Stamp) -> String {
    let frame = ClientFrame::new(
        stamp.n,
        Request::Send {
            room: RoomId::new(room).expect("bench room ids are valid"),
            client_msg_id: ClientMsgId(stamp.id()),
            body: stamp.body(),
        },
    );
    serde_json::to_string(&frame).expect("client frames serialize")
}

/// Reads a server frame for the generator.
pub fn decode(text: &str) -> Inbound {
    let Ok(frame) = decode_server(text) else {
        return Inbound::Error(format!("undecodable frame: {text:.120}"));
    };
    match frame.message {
        ServerMessage::Event { event } => match &event.body {
            EventBody::Message { body, .. } => Stamp::parse(body)
                .map(Inbound::Delivery)
                .unwrap_or(Inbound::Other),
            _ => Inbound::Other,
        },
        ServerMessage::Ack(ack) => Stamp::parse(ack.client_msg_id.as_str())
            .map(|s| Inbound::Ack(s.t))
            .unwrap_or(Inbound::Other),
        ServerMessage::Error { code, message, .. } => Inbound::Error(format!("{code}: {message}")),
        _ => Inbound::Other,
    }
}

/// A signed-in Triad connection and what the server said while it signed in.
pub struct Entered {
    /// The socket, ready.
    pub ws: Ws,
    /// The welcome.
    pub welcome: Welcome,
    /// Frames that arrived before the last `live` or `joined` (a resume's replay).
    pub replay: Vec<ServerFrame>,
    /// The `live` frame of each room (for a room entered with `join`, its position then).
    pub live: HashMap<RoomId, Live>,
}

/// Opens a connection, says `hello` (with resume points), waits for every room's `live`,
/// and `join`s `join` if the welcome shows it not joined yet.
pub async fn sign_in(
    url: &str,
    token: &str,
    resume: Vec<ResumePoint>,
    join: Option<&RoomId>,
) -> anyhow::Result<Entered> {
    let ws = conn::open(url, Some(PROTOCOL_VERSION)).await?;
    let (mut sink, mut stream) = ws.split();
    let hello = ClientFrame::new(
        HELLO_ID,
        Request::Hello {
            token: token.to_string(),
            resume,
        },
    );
    sink.send(Message::text(serde_json::to_string(&hello)?))
        .await?;
    let mut welcome: Option<Welcome> = None;
    let mut live = HashMap::new();
    let mut replay = Vec::new();
    let mut waiting_join = false;
    loop {
        if let Some(w) = &welcome {
            let all_live = w
                .rooms
                .iter()
                .filter(|r| r.joined)
                .all(|r| live.contains_key(&r.id));
            if all_live && !waiting_join {
                let needs_join =
                    join.filter(|room| w.rooms.iter().any(|r| &r.id == *room && !r.joined));
                match needs_join {
                    Some(room) => {
                        let frame = ClientFrame::new(JOIN_ID, Request::Join { room: room.clone() });
                        sink.send(Message::text(serde_json::to_string(&frame)?))
                            .await?;
                        waiting_join = true;
                    }
                    None => break,
                }
            }
        }
        let text = conn::next_text(&mut stream)
            .await
            .context("closed while signing in")??;
        let frame = decode_server(&text).context("undecodable frame while signing in")?;
        match (frame.re, frame.message) {
            (Some(HELLO_ID), ServerMessage::Welcome(w)) => welcome = Some(w),
            (_, ServerMessage::Error { code, message, .. }) => {
                bail!("refused while signing in: {code}: {message}")
            }
            (_, ServerMessage::Live(l)) => {
                live.insert(l.room.clone(), l);
            }
            (Some(JOIN_ID), ServerMessage::Joined { room }) => {
                // Events after the room's `last_seq` follow; no `live` comes for a join.
                let position = Live {
                    room: room.id.clone(),
                    epoch: room.epoch,
                    seq: room.last_seq,
                };
                live.insert(room.id, position);
                break;
            }
            (re, message) => replay.push(ServerFrame { re, message }),
        }
    }
    let ws = sink.reunite(stream).expect("halves of one socket");
    Ok(Entered {
        ws,
        welcome: welcome.expect("loop ends after the welcome"),
        replay,
        live,
    })
}

/// Signs in as the identity and enters its room.
pub async fn enter(url: &str, who: &Identity) -> anyhow::Result<Ws> {
    let room = RoomId::new(who.room.as_str())?;
    let join = who.moderator.then_some(&room);
    Ok(sign_in(url, &who.token, Vec::new(), join).await?.ws)
}
