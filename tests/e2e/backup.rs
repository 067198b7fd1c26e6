//! Moving a programme from the embedded store to Redis: chat on an embedded node, stop it,
//! `export`, `import-data` into a fresh Redis, serve from Redis, and find everything there.

use std::path::Path;
use std::process::Stdio;

use triad_client::{Client, RoomId};
use triad_protocol::{ClientMsgId, RoomInfo, Seq, Timestamp};
use triad_server::store::redis::testing::RedisProcess;

use crate::harness::{Node, SECRET, connect, program};

fn trio() -> RoomId {
    RoomId::new("trio-1").unwrap()
}

/// What a person's welcome says of a room, besides its epoch and who is online.
#[derive(Debug, PartialEq, Eq)]
struct Standing {
    room: RoomId,
    last_seq: Seq,
    last_ts: Option<Timestamp>,
    read_seq: Seq,
    unread: u64,
    joined: bool,
    members: Vec<String>,
}

impl Standing {
    fn of(info: &RoomInfo) -> Self {
        Self {
            room: info.id.clone(),
            last_seq: info.last_seq,
            last_ts: info.last_ts,
            read_seq: info.read_seq,
            unread: info.unread,
            joined: info.joined,
            members: info.members.iter().map(|m| m.person.to_string()).collect(),
        }
    }
}

/// Each person's standing in each of their rooms, from a fresh connection, and the trio's
/// epoch.
async fn standings(node: &Node, people: &[&str]) -> (Vec<Vec<Standing>>, u64) {
    let mut all = Vec::new();
    let mut epoch = 0;
    for person in people {
        let (client, _events) = connect(node, person).await;
        let welcome = client.welcome();
        let mut rooms: Vec<Standing> = welcome.rooms.iter().map(Standing::of).collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        all.push(rooms);
        if let Some(info) = welcome.rooms.iter().find(|info| info.id == trio()) {
            epoch = info.epoch;
        }
        client.close().await;
    }
    (all, epoch)
}

/// The trio's whole history.
async fn history(client: &Client) -> Vec<triad_client::RoomEvent> {
    let page = client
        .history(&trio(), None, None, Some(100))
        .await
        .unwrap();
    assert!(!page.has_more);
    page.events
}

async fn run(command: &mut tokio::process::Command) -> String {
    let output = command
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn export_command(data: &Path, file: &Path) -> tokio::process::Command {
    let mut command = program();
    command
        .arg("export")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .args(["--jwt-secret", SECRET]);
    command
}

fn import_command(redis_url: &str, file: &Path) -> tokio::process::Command {
    let mut command = program();
    command
        .arg("import-data")
        .arg(file)
        .args(["--store", redis_url, "--jwt-secret", SECRET]);
    command
}

#[tokio::test]
async fn a_programme_moves_from_the_embedded_store_to_redis_with_nothing_lost() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path()).await;
    let (anna, _anna_events) = connect(&node, "anna.jensen").await;
    let (marco, _marco_events) = connect(&node, "marco.rossi").await;
    let (sara, _sara_events) = connect(&node, "sara.moderator").await;

    // Messages with known client ids, a moderator who joins and speaks, read markers.
    let mut acks = Vec::new();
    for (client, id) in [(&anna, "a-1"), (&marco, "m-1"), (&anna, "a-2")] {
        let body = format!("message {id}");
        acks.push(
            client
                .send_with_id(&trio(), ClientMsgId(id.into()), &body)
                .await
                .unwrap(),
        );
    }
    assert!(sara.join(&trio()).await.unwrap().joined);
    acks.push(
        sara.send_with_id(&trio(), ClientMsgId("s-1".into()), "welcome, all")
            .await
            .unwrap(),
    );
    marco.read(&trio(), 3).await.unwrap();
    let commons = RoomId::new("commons").unwrap();
    anna.send_with_id(&commons, ClientMsgId("a-3".into()), "hello, commons")
        .await
        .unwrap();

    let before = history(&anna).await;
    assert_eq!(before.len(), 5, "four messages and a join");
    let people = [
        "anna.jensen",
        "marco.rossi",
        "rhian.evans",
        "sara.moderator",
        "lars.nielsen",
    ];
    let (standings_before, epoch_before) = standings(&node, &people).await;
    for client in [anna, marco, sara] {
        client.close().await;
    }
    node.terminate().await;

    // Export the stopped node's store; import it into a fresh Redis.
    let backup = data.path().join("backup.jsonl");
    let said = run(&mut export_command(data.path(), &backup)).await;
    assert!(
        said.is_empty(),
        "the summary goes to standard error: {said}"
    );
    let redis = RedisProcess::start()
        .await
        .expect("redis-server starts (Debian: apt-get install redis-server)");
    let said = run(&mut import_command(&redis.url, &backup)).await;
    assert!(said.contains("6 events"), "{said}");

    // A node on Redis serves the same history, standings, joined moderator and de-duplication.
    let redis_data = tempfile::tempdir().unwrap();
    let node = Node::start_on(&redis.url, redis_data.path()).await;
    let (standings_after, epoch_after) = standings(&node, &people).await;
    assert_eq!(standings_after, standings_before);
    assert_ne!(epoch_after, epoch_before, "a restored room has a new epoch");
    let (anna, _anna_events) = connect(&node, "anna.jensen").await;
    assert_eq!(history(&anna).await, before);
    let sara_trio = standings_after[3]
        .iter()
        .find(|room| room.room == trio())
        .unwrap();
    assert!(sara_trio.joined, "the moderator is still in the trio");
    let marco_trio = standings_after[1]
        .iter()
        .find(|room| room.room == trio())
        .unwrap();
    assert_eq!((marco_trio.read_seq, marco_trio.unread), (3, 2));

    for ack in &acks {
        let again = anna
            .send_with_id(&trio(), ack.client_msg_id.clone(), "sent again")
            .await
            .unwrap();
        assert!(again.duplicate, "{}", ack.client_msg_id.0);
        assert_eq!((again.seq, again.ts), (ack.seq, ack.ts));
    }
    let next = anna.send(&trio(), "after the move").await.unwrap();
    assert_eq!(next.seq, 6);
    anna.close().await;

    // The store has history now: a second import is refused and changes nothing.
    let output = import_command(&redis.url, &backup)
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let refusal = String::from_utf8_lossy(&output.stderr);
    assert!(refusal.contains("already have events"), "{refusal}");
    let (anna, _anna_events) = connect(&node, "anna.jensen").await;
    assert_eq!(history(&anna).await.len(), 6);
    anna.close().await;
    node.terminate().await;
}
