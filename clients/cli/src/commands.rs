//! The one-shot commands: print a page of history, send one message, list the rooms. Each
//! connects, does its one thing, closes cleanly and exits.

use anyhow::Context;
use triad_client::ClientError;
use triad_client::protocol::{ErrorCode, PresenceStatus, RoomId, RoomKind, Seq};

use crate::ServerArgs;
use crate::display::View;

/// `triad history`: a page of a room's history, oldest first.
pub async fn history(
    server: &ServerArgs,
    room: &RoomId,
    limit: u32,
    before: Option<Seq>,
) -> anyhow::Result<()> {
    let (client, _events) = server.connect().await?;
    let view = View::new(&client.welcome());
    let page = client.history(room, before, None, Some(limit)).await;
    client.close().await;
    let page = page
        .map_err(|err| explain(err, room))
        .with_context(|| format!("reading {room}"))?;
    for event in &page.events {
        println!("{}", view.event(event));
    }
    Ok(())
}

/// `triad send`: one message; prints its sequence number.
pub async fn send(server: &ServerArgs, room: &RoomId, text: &str) -> anyhow::Result<()> {
    let (client, _events) = server.connect().await?;
    let ack = client.send(room, text).await;
    client.close().await;
    let ack = ack
        .map_err(|err| explain(err, room))
        .with_context(|| format!("sending to {room}"))?;
    println!("{}", ack.seq);
    Ok(())
}

/// `triad rooms`: every room of the welcome, its unread count and who is online.
pub async fn rooms(server: &ServerArgs) -> anyhow::Result<()> {
    let (client, _events) = server.connect().await?;
    let welcome = client.welcome();
    client.close().await;
    let view = View::new(&welcome);
    let id_width = welcome
        .rooms
        .iter()
        .map(|r| r.id.as_str().len())
        .max()
        .unwrap_or(0);
    let title_width = welcome
        .rooms
        .iter()
        .map(|r| r.title.chars().count())
        .max()
        .unwrap_or(0);
    for room in &welcome.rooms {
        let kind = match room.kind {
            RoomKind::Trio => "trio",
            RoomKind::Commons => "commons",
            RoomKind::Staff => "staff",
        };
        let present: Vec<String> = room
            .members
            .iter()
            .filter(|m| m.person != view.me && m.status != PresenceStatus::Offline)
            .map(|m| match m.status {
                PresenceStatus::Away => format!("{} (away)", m.name),
                _ => m.name.clone(),
            })
            .collect();
        let online = if present.is_empty() {
            "nobody".to_owned()
        } else {
            present.join(", ")
        };
        let joined = if room.joined {
            ""
        } else {
            "  (not joined: /join in the chat to enter)"
        };
        println!(
            "{:<id_width$}  {kind:<7}  {:<title_width$}  {:>4} unread  online: {online}{joined}",
            room.id.as_str(),
            room.title,
            room.unread,
        );
    }
    Ok(())
}

/// `triad sessions`: the coaching sessions not yet ended, soonest first, in the viewer's zone.
pub async fn sessions(server: &ServerArgs, room: Option<&RoomId>) -> anyhow::Result<()> {
    let (client, _events) = server.connect().await?;
    let welcome = client.welcome();
    let sessions = client.coachings(room).await;
    client.close().await;
    let view = View::new(&welcome);
    let sessions = sessions.context("listing the coaching sessions")?;
    if sessions.is_empty() {
        println!("no coaching sessions coming up");
    }
    for session in &sessions {
        println!("{}", view.coaching(session));
    }
    Ok(())
}

/// Adds advice to the errors a person can act on.
pub fn explain(err: ClientError, room: &RoomId) -> anyhow::Error {
    match err.code() {
        Some(ErrorCode::JoinRequired) => anyhow::Error::new(err)
            .context(format!("join {room} first (`triad chat --room {room}`, then /join); its members will see that you joined")),
        Some(ErrorCode::NotAMember | ErrorCode::UnknownRoom) => {
            anyhow::Error::new(err).context(format!("{room} is not one of your rooms (see `triad rooms`)"))
        }
        _ => anyhow::Error::new(err),
    }
}
