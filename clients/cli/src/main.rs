//! `triad`: chat in Triad rooms from a terminal, or read and post once from a script.
//!
//! Modules:
//! - `chat`: the interactive `chat` command: the screen.
//! - `input`: what is typed in the chat: messages and commands, in order.
//! - `commands`: the one-shot commands `history`, `send` and `rooms`.
//! - `display`: times in the viewer's zone, names, one line per event.

mod chat;
mod commands;
mod display;
mod input;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use triad_client::protocol::{RoomId, Seq};
use triad_client::{Client, ClientConfig, Events};

/// Chat in Triad rooms from a terminal.
#[derive(Debug, Parser)]
#[command(name = "triad", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a room's recent messages, then new ones as they come; type to send.
    Chat {
        #[command(flatten)]
        server: ServerArgs,
        /// The room, e.g. `trio-1` or `commons`.
        #[arg(long)]
        room: RoomId,
    },
    /// Print a page of a room's history and exit.
    History {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        #[arg(long)]
        room: RoomId,
        /// How many events (at most 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only events before this sequence number.
        #[arg(long)]
        before: Option<Seq>,
    },
    /// Send one message, print its sequence number and exit.
    Send {
        #[command(flatten)]
        server: ServerArgs,
        /// The room.
        #[arg(long)]
        room: RoomId,
        /// The message.
        text: String,
    },
    /// List your rooms with unread counts and who is online.
    Rooms {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the coaching sessions of your rooms that have not ended, in your time zone.
    Sessions {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this room's.
        #[arg(long)]
        room: Option<RoomId>,
    },
}

/// Where the server is and who you are.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The server's websocket URL.
    #[arg(long, env = "TRIAD_SERVER", default_value = "ws://127.0.0.1:8080/ws")]
    server: String,
    /// Your token (a JWT).
    #[arg(long, env = "TRIAD_TOKEN", hide_env_values = true)]
    token: String,
    /// An `Origin` header, for servers that check it.
    #[arg(long, env = "TRIAD_ORIGIN")]
    origin: Option<String>,
}

impl ServerArgs {
    /// Connects and waits for the welcome.
    async fn connect(&self) -> anyhow::Result<(Client, Events)> {
        let mut config = ClientConfig::new(&self.server, &self.token);
        config.origin.clone_from(&self.origin);
        Client::connect(config)
            .await
            .with_context(|| format!("connecting to {}", self.server))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chat { server, room } => chat::run(&server, room).await,
        Command::History {
            server,
            room,
            limit,
            before,
        } => commands::history(&server, &room, limit, before).await,
        Command::Send { server, room, text } => commands::send(&server, &room, &text).await,
        Command::Rooms { server } => commands::rooms(&server).await,
        Command::Sessions { server, room } => commands::sessions(&server, room.as_ref()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("triad: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "triad",
            "send",
            "--server",
            "ws://h/ws",
            "--token",
            "t",
            "--room",
            "trio-1",
            "hello",
        ])
        .expect("parses");
        assert!(matches!(cli.command, Command::Send { ref text, .. } if text == "hello"));
        let bad_room = Cli::try_parse_from(["triad", "rooms", "--token", "t", "--room", "Trio 1"]);
        assert!(bad_room.is_err());
    }
}
