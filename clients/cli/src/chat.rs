//! `triad chat`: a room in the terminal. Shows the last messages, then new ones as they come,
//! with typing, presence and the state of the connection as short status lines. What is
//! typed is carried out by [`crate::input`], while this screen keeps showing what happens.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, anyhow};
use tokio::sync::{mpsc, watch};
use triad_client::protocol::{
    ErrorCode, EventBody, History, PersonId, PresenceStatus, RoomId, Seq,
};
use triad_client::{Client, ClientEvent, Welcome};

use crate::ServerArgs;
use crate::display::View;
use crate::input::{self, Note, RECENT};

/// Notes from the input waiting for the screen.
const NOTES_CAPACITY: usize = 64;

/// Runs the chat until `/quit`, the end of the input, or a close by the server.
pub async fn run(server: &ServerArgs, room: RoomId) -> anyhow::Result<()> {
    let (client, mut events) = server.connect().await?;
    let mut screen = Screen::new(&client, room.clone(), &client.welcome())?;
    screen.open(&client).await?;

    let (notes_tx, mut notes) = mpsc::channel(NOTES_CAPACITY);
    let typed = input::read_terminal();
    let input = tokio::spawn(input::run(client.clone(), room, typed, notes_tx));
    let ended = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => {
                    if let Some(end) = screen.on_event(event) {
                        break Some(end);
                    }
                }
                None => break Some(Ok(())),
            },
            note = notes.recv() => match note {
                Some(note) => screen.on_note(note),
                // The input is over (`/quit` or its end): every line was carried out.
                None => break None,
            },
        }
    };
    let outcome = match ended {
        Some(outcome) => {
            input.abort();
            outcome
        }
        None => input
            .await
            .unwrap_or_else(|err| Err(anyhow!("the input task failed: {err}"))),
    };
    client.close().await;
    outcome
}

/// What the screen has shown, and what it knows to show the rest.
struct Screen {
    room: RoomId,
    view: View,
    /// Whether the person is in the room (a moderator of a trio must `/join`).
    joined: bool,
    /// The highest sequence number shown from the room.
    shown: Seq,
    /// Who is typing now, as last said.
    typing: HashSet<PersonId>,
    /// Everyone's presence, as last shown.
    presence: HashMap<PersonId, PresenceStatus>,
    /// Where the server's read marker should be: what the screen has shown.
    read: watch::Sender<Seq>,
    /// Whether the welcome of the first connection was seen among the events.
    welcomed: bool,
}

impl Screen {
    fn new(client: &Client, room: RoomId, welcome: &Welcome) -> anyhow::Result<Self> {
        let Some(info) = welcome.rooms.iter().find(|r| r.id == room) else {
            let yours: Vec<&str> = welcome.rooms.iter().map(|r| r.id.as_str()).collect();
            return Err(anyhow!(
                "{room} is not one of your rooms (yours: {})",
                yours.join(", ")
            ));
        };
        let presence = info
            .members
            .iter()
            .map(|m| (m.person.clone(), m.status))
            .collect();
        let (read, marker) = watch::channel(info.read_seq);
        tokio::spawn(mark_read(client.clone(), room.clone(), marker));
        Ok(Self {
            joined: info.joined,
            room,
            view: View::new(welcome),
            shown: 0,
            typing: HashSet::new(),
            presence,
            read,
            welcomed: false,
        })
    }

    /// The header and the latest events.
    async fn open(&mut self, client: &Client) -> anyhow::Result<()> {
        let welcome = client.welcome();
        let title = welcome
            .rooms
            .iter()
            .find(|r| r.id == self.room)
            .map_or("", |r| r.title.as_str());
        println!(
            "-- {} · {title} · you are {} · times in {}",
            self.room,
            welcome.person.name,
            self.view.tz.name()
        );
        match client.history(&self.room, None, None, Some(RECENT)).await {
            Ok(page) => self.show_recent(&page),
            Err(err) if !self.joined && err.code() == Some(ErrorCode::JoinRequired) => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", self.room)),
        }
        if !self.joined {
            println!(
                "-- you are not in this room: /join to enter it (its members will see that you joined)"
            );
        }
        println!("-- type to send; /help for commands");
        Ok(())
    }

    /// Shows the events of a page the screen has not shown yet.
    fn show_recent(&mut self, page: &History) {
        for event in &page.events {
            if event.seq > self.shown {
                println!("{}", self.view.event(event));
                self.shown = event.seq;
            }
        }
        self.mark_read();
    }

    fn mark_read(&self) {
        if self.joined && self.shown > *self.read.borrow() {
            self.read.send_replace(self.shown);
        }
    }

    /// What came of a typed line.
    fn on_note(&mut self, note: Note) {
        match note {
            Note::Say(line) => println!("{line}"),
            Note::Joined(info) => {
                self.view.learn_room(&info);
                self.joined = true;
                println!("-- you joined {}", self.room);
            }
            Note::Left => {
                self.joined = false;
                println!("-- you left {}", self.room);
            }
            Note::Recent(page) => self.show_recent(&page),
            Note::Page(page) => {
                for event in &page.events {
                    println!("{}", self.view.event(event));
                }
            }
        }
    }

    /// Shows an event of the client; `Some` ends the chat.
    fn on_event(&mut self, event: ClientEvent) -> Option<anyhow::Result<()>> {
        match event {
            ClientEvent::Connected(welcome) => {
                if self.welcomed {
                    println!("-- connected");
                }
                self.welcomed = true;
                self.view.learn(&welcome);
                if let Some(info) = welcome.rooms.iter().find(|r| r.id == self.room) {
                    self.joined = info.joined;
                }
            }
            ClientEvent::Disconnected { .. } => println!("-- reconnecting…"),
            ClientEvent::Event(event) if event.room == self.room && event.seq > self.shown => {
                if matches!(event.body, EventBody::Message { .. }) {
                    self.typing.remove(&event.author);
                }
                println!("{}", self.view.event(&event));
                self.shown = event.seq;
                self.mark_read();
            }
            ClientEvent::Typing {
                room,
                person,
                active,
            } if room == self.room && person != self.view.me => {
                self.on_typing(person, active);
            }
            ClientEvent::Presence {
                room,
                person,
                status,
            } if room == self.room && person != self.view.me => {
                self.on_presence(person, status);
            }
            ClientEvent::Closed { code, reason } => {
                let code = code.map_or_else(|| "no code".to_owned(), |code| code.to_string());
                return Some(Err(anyhow!(
                    "the server closed the connection ({code}): {reason}"
                )));
            }
            _ => {}
        }
        None
    }

    /// Says when someone starts typing (once, until they stop or send).
    fn on_typing(&mut self, person: PersonId, active: bool) {
        if !active {
            self.typing.remove(&person);
        } else if self.typing.insert(person.clone()) {
            println!("-- {} is typing…", self.view.name(&person));
        }
    }

    /// Shows a change of someone's presence, once.
    fn on_presence(&mut self, person: PersonId, status: PresenceStatus) {
        let line = self.view.presence(&person, status);
        if self.presence.insert(person, status) != Some(status) {
            println!("{line}");
        }
    }
}

/// Moves the server's read marker to what the screen has shown, latest first.
async fn mark_read(client: Client, room: RoomId, mut marker: watch::Receiver<Seq>) {
    while marker.changed().await.is_ok() {
        let seq = *marker.borrow_and_update();
        if let Err(err) = client.read(&room, seq).await {
            tracing::debug!(%err, %room, seq, "could not move the read marker");
        }
    }
}
