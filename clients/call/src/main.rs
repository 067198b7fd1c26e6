//! `triad-call`: joins a room's call and checks that a peer connection with every other
//! participant connects and carries data. Prints each peer's connection state and the data
//! channel's round trips; exits with 1 if a peer never connects within the timeout, 2 if
//! the server refuses.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use triad_call::{AgentSettings, AgentStatus, CallAgent, NetworkSettings, PeerState};
use triad_protocol::{PersonId, RoomId};

#[derive(Parser)]
#[command(
    name = "triad-call",
    version,
    about = "Join a Triad room's call and check WebRTC connectivity to every participant"
)]
struct Cli {
    /// The server's websocket URL, e.g. ws://127.0.0.1:8080/ws.
    #[arg(long, env = "TRIAD_SERVER")]
    server: String,
    /// A token for the person to join as (`triad-server token --person ID`).
    #[arg(long, env = "TRIAD_TOKEN", hide_env_values = true)]
    token: String,
    /// The room whose call to join (or start).
    #[arg(long)]
    room: RoomId,
    /// Enter the room first, as a moderator must (announced to the room's members).
    #[arg(long)]
    join: bool,
    /// Use only relayed candidates: checks the TURN server and its credentials.
    #[arg(long)]
    relay_only: bool,
    /// Gather loopback candidates only (peers on this machine).
    #[arg(long)]
    loopback: bool,
    /// How long to stay in the call, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// How long a peer may take to connect before it counts as failed.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

/// `500ms`, `30s`, `2m`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("unknown unit {unit:?}: use ms, s or m")),
    }
}

/// The default log filter: the agent's warnings, webrtc-rs's errors.
const QUIET: &str = "warn,webrtc=error,webrtc_ice=error,webrtc_sctp=error,webrtc_dtls=error,\
                     webrtc_srtp=error,webrtc_mdns=error,webrtc_data=error";

/// What the report remembers of one peer.
struct Seen {
    since: Instant,
    state: PeerState,
    channel_open: bool,
    gave_up: bool,
    /// Connected, with at least one answered ping.
    worked: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // webrtc-rs warns about ordinary events (a closed agent, early checks).
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(QUIET)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("triad-call: cannot start: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let mut settings = AgentSettings::new(&cli.server, &cli.token, cli.room.clone());
    settings.join_room = cli.join;
    settings.network = NetworkSettings {
        relay_only: cli.relay_only,
        loopback: cli.loopback,
    };
    let agent = match CallAgent::start(settings).await {
        Ok(agent) => agent,
        Err(err) => {
            eprintln!("triad-call: {err}");
            return ExitCode::from(2);
        }
    };
    let status = agent.status();
    let call = status
        .call
        .as_ref()
        .map_or("?".into(), |c| c.id.to_string());
    println!(
        "joined call {call} in {} as session {}{}",
        cli.room,
        status.session,
        if cli.relay_only { " (relay only)" } else { "" }
    );
    let end = Instant::now() + cli.duration;
    let mut seen: BTreeMap<PersonId, Seen> = BTreeMap::new();
    let mut next_report = Instant::now() + Duration::from_secs(5);
    loop {
        let status = agent.status();
        observe(&status, &mut seen, cli.connect_timeout, cli.relay_only);
        if Instant::now() >= next_report {
            report(&status);
            next_report += Duration::from_secs(5);
        }
        if let Some(reason) = status.ended {
            println!("the call ended ({reason:?})");
            break;
        }
        if Instant::now() >= end {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let status = agent.status();
    report(&status);
    agent.leave().await;
    let failed: Vec<&PersonId> = seen
        .iter()
        .filter(|(_, s)| !s.worked)
        .map(|(person, _)| person)
        .collect();
    if seen.is_empty() {
        println!("nobody else joined the call: start another agent to check a connection");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED: no working connection to {}",
            failed
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        ExitCode::from(1)
    }
}

/// Prints each peer's changes, and gives up on peers that take too long.
fn observe(
    status: &AgentStatus,
    seen: &mut BTreeMap<PersonId, Seen>,
    limit: Duration,
    relay_only: bool,
) {
    for (person, peer) in &status.peers {
        let entry = seen.entry(person.clone()).or_insert_with(|| {
            let role = if peer.offerer {
                "offering"
            } else {
                "answering"
            };
            println!("{person} ({}): {role}", peer.session);
            Seen {
                since: Instant::now(),
                state: PeerState::Unspecified,
                channel_open: false,
                gave_up: false,
                worked: false,
            }
        });
        if entry.state != peer.state {
            let after = entry.since.elapsed();
            println!("{person}: {} after {after:.1?}", peer.state);
            entry.state = peer.state;
        }
        entry.worked |= peer.round_trips > 0;
        if peer.channel_open && !entry.channel_open {
            println!("{person}: data channel open");
            entry.channel_open = true;
        }
        if let Some(error) = &peer.error {
            println!("{person}: {error}");
        }
        if !entry.gave_up && peer.connected_at.is_none() && entry.since.elapsed() >= limit {
            entry.gave_up = true;
            let hint = if relay_only {
                "the TURN server refused the credentials, is unreachable, or cannot relay \
                 between the peers (webrtc reports no error for a refused credential)"
            } else {
                "no candidate pair works: try --relay-only to check the TURN server"
            };
            println!(
                "{person}: no connection after {:.0?} ({}): {hint}",
                limit, peer.state
            );
        }
    }
}

fn report(status: &AgentStatus) {
    for (person, peer) in &status.peers {
        let rtt = peer.last_rtt.map_or("-".into(), |rtt| {
            format!("{:.1} ms", rtt.as_secs_f64() * 1000.0)
        });
        println!(
            "{person}: {}, {} round trips, last {rtt}",
            peer.state, peer.round_trips
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
