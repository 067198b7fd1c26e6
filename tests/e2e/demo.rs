//! `triad-server demo`: prints how each person signs in, serves the demo programme, stops
//! cleanly on SIGTERM, and reuses its data and secret when run again.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use triad_client::{Client, ClientConfig, RoomId};

use crate::harness::{Node, program};

fn demo(data: &std::path::Path) -> Command {
    let mut command = program();
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stderr(Stdio::null());
    command
}

/// Reads the sign-in lines: (name line, command line) pairs until the closing hint.
async fn sign_ins(node: &mut Node) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut name = None;
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = node.stdout.next_line().await.unwrap() {
            let trimmed = line.trim();
            if trimmed.contains("Stop with Ctrl-C") {
                break;
            }
            if trimmed.ends_with("):") {
                name = Some(trimmed.to_string());
            } else if trimmed.starts_with("cargo run -p triad-cli -- chat") {
                lines.push((
                    name.take().expect("a name before each command"),
                    trimmed.to_string(),
                ));
            }
        }
    })
    .await
    .expect("the demo printed its sign-in lines");
    lines
}

fn arg<'a>(command: &'a str, flag: &str) -> &'a str {
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        if word == flag {
            return words.next().expect("flag value");
        }
    }
    panic!("{flag} missing in {command}");
}

#[tokio::test]
async fn the_demo_prints_working_sign_ins_and_keeps_its_data() {
    let data = tempfile::tempdir().unwrap();
    let mut node = Node::spawn(demo(data.path())).await;
    let printed = sign_ins(&mut node).await;
    assert_eq!(printed.len(), 8, "six heads, a moderator and a coordinator");
    let (name, command) = printed
        .iter()
        .find(|(n, _)| n.starts_with("Anna Jensen"))
        .unwrap();
    assert!(name.contains("head, trio-1"), "{name}");
    let (server, room, token) = (
        arg(command, "--server"),
        arg(command, "--room"),
        arg(command, "--token"),
    );
    assert_eq!(server, node.url());

    let (client, _events) = Client::connect(ClientConfig::new(server, token))
        .await
        .unwrap();
    assert_eq!(client.welcome().person.name, "Anna Jensen");
    let room = RoomId::new(room).unwrap();
    let ack = client.send(&room, "first words in the demo").await.unwrap();
    client.close().await;
    node.terminate().await;

    // Again on the same folder: same secret (the old token works), same data, no re-seeding.
    let mut node = Node::spawn(demo(data.path())).await;
    assert_eq!(sign_ins(&mut node).await.len(), 8);
    let (client, _events) = Client::connect(ClientConfig::new(node.url(), token))
        .await
        .unwrap();
    let history = client.history(&room, None, None, None).await.unwrap();
    assert_eq!(history.events.last().map(|e| e.seq), Some(ack.seq));
    assert_eq!(
        client
            .welcome()
            .rooms
            .iter()
            .filter(|r| r.kind == triad_protocol::RoomKind::Trio)
            .count(),
        1
    );
    node.terminate().await;
}
