//! What the person types in `triad chat`: messages and commands, carried out one line after
//! the other, so that a message typed after `/join` is sent after the join. What comes of
//! each line goes to the screen as a [`Note`].
//!
//! The terminal is read by a thread of its own: a blocking read cannot be cancelled, and in
//! the runtime it would hold up the exit until the next key press.

use std::io::BufRead;

use anyhow::Context;
use tokio::sync::mpsc;
use triad_client::protocol::{ErrorCode, History, RoomId, RoomInfo};
use triad_client::{Client, ClientError};

/// How many events `/join` and `/history` show unless told.
pub const RECENT: u32 = 20;

/// Lines read from the terminal and not yet carried out.
const LINES_CAPACITY: usize = 64;

const HELP: &str = "-- /join enters the room (its members see it), /leave leaves it, \
/history N shows the last N messages, /quit ends the chat; //text sends /text";

/// What the screen should show after a line.
#[derive(Debug)]
pub enum Note {
    /// A status line.
    Say(String),
    /// The person entered the room.
    Joined(RoomInfo),
    /// The person left the room.
    Left,
    /// The latest events, to show where the screen has not shown them yet.
    Recent(History),
    /// A page asked for with `/history`, to show as it is.
    Page(History),
}

/// What a typed line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing (an empty line).
    Empty,
    /// Send this text.
    Send(String),
    /// `/join`.
    Join,
    /// `/leave`.
    Leave,
    /// `/history [N]`.
    History(u32),
    /// `/help`.
    Help,
    /// `/quit` or `/exit`.
    Quit,
    /// Something that looks like a command but is none, with why.
    Unknown(String),
}

impl Line {
    /// Reads a typed line.
    pub fn parse(line: &str) -> Self {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Self::Empty;
        }
        if let Some(text) = trimmed.strip_prefix("//") {
            return Self::Send(format!("/{text}"));
        }
        if !trimmed.starts_with('/') {
            return Self::Send(line.trim_end().to_owned());
        }
        let mut words = trimmed.split_whitespace();
        match (words.next().unwrap_or_default(), words.next()) {
            ("/quit" | "/exit", _) => Self::Quit,
            ("/help", _) => Self::Help,
            ("/join", _) => Self::Join,
            ("/leave", _) => Self::Leave,
            ("/history", None) => Self::History(RECENT),
            ("/history", Some(count)) => match count.parse() {
                Ok(count) => Self::History(count),
                Err(_) => {
                    Self::Unknown("/history takes a number of messages, e.g. /history 50".into())
                }
            },
            (other, _) => Self::Unknown(format!("unknown command {other}; /help lists them")),
        }
    }
}

/// Starts the thread that reads the terminal; its lines arrive on the receiver, which
/// closes at the end of the input.
pub fn read_terminal() -> mpsc::Receiver<std::io::Result<String>> {
    let (lines, received) = mpsc::channel(LINES_CAPACITY);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if lines.blocking_send(line).is_err() {
                // The chat is over; nobody reads any more.
                return;
            }
        }
    });
    received
}

/// Carries out the typed lines until `/quit` or the end of the input.
pub async fn run(
    client: Client,
    room: RoomId,
    mut lines: mpsc::Receiver<std::io::Result<String>>,
    notes: mpsc::Sender<Note>,
) -> anyhow::Result<()> {
    let input = Input {
        client,
        room,
        notes,
    };
    while let Some(line) = lines.recv().await {
        let line = line.context("reading the terminal")?;
        let more = input.carry_out(Line::parse(&line)).await;
        if !more {
            break;
        }
    }
    Ok(())
}

struct Input {
    client: Client,
    room: RoomId,
    notes: mpsc::Sender<Note>,
}

impl Input {
    /// Carries out one line; `false` when the chat is over.
    async fn carry_out(&self, line: Line) -> bool {
        let room = &self.room;
        let note = match line {
            Line::Empty => return true,
            Line::Quit => return false,
            Line::Help => Note::Say(HELP.into()),
            Line::Unknown(why) => Note::Say(format!("-- {why}")),
            Line::Send(text) => match self.client.send(room, &text).await {
                Ok(_) => return true,
                Err(err) if err.code() == Some(ErrorCode::JoinRequired) => Note::Say(format!(
                    "-- not sent: /join {room} first (its members will see that you joined)"
                )),
                Err(err) => Note::Say(format!("-- not sent ({err}): {text}")),
            },
            Line::Join => match self.client.join(room).await {
                Ok(info) => {
                    if !self.note(Note::Joined(info)).await {
                        return false;
                    }
                    match self.client.history(room, None, None, Some(RECENT)).await {
                        Ok(page) => Note::Recent(page),
                        Err(err) => failed("read the history", &err),
                    }
                }
                Err(err) => failed("join", &err),
            },
            Line::Leave => match self.client.leave(room).await {
                Ok(()) => Note::Left,
                Err(err) => failed("leave", &err),
            },
            Line::History(count) => {
                match self.client.history(room, None, None, Some(count)).await {
                    Ok(page) => Note::Page(page),
                    Err(err) => failed("read the history", &err),
                }
            }
        };
        self.note(note).await
    }

    /// Tells the screen; `false` when the screen is gone.
    async fn note(&self, note: Note) -> bool {
        self.notes.send(note).await.is_ok()
    }
}

fn failed(what: &str, err: &ClientError) -> Note {
    Note::Say(format!("-- could not {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_messages_or_commands() {
        assert_eq!(Line::parse("  "), Line::Empty);
        assert_eq!(
            Line::parse("  hello there  "),
            Line::Send("  hello there".into())
        );
        assert_eq!(Line::parse("//join"), Line::Send("/join".into()));
        assert_eq!(Line::parse("/join"), Line::Join);
        assert_eq!(Line::parse("/leave"), Line::Leave);
        assert_eq!(Line::parse("/history"), Line::History(RECENT));
        assert_eq!(Line::parse("/history 5"), Line::History(5));
        assert!(matches!(Line::parse("/history five"), Line::Unknown(_)));
        assert!(matches!(Line::parse("/dance"), Line::Unknown(_)));
        assert_eq!(Line::parse("/quit"), Line::Quit);
    }
}
