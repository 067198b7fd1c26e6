//! The local cluster of `cargo xtask cluster up`, started by the same launcher with the same
//! `deploy/` files: Redis, two nodes, nginx and coturn. Clients come in through nginx; one
//! node is drained with SIGTERM under traffic; every client ends on the other node with its
//! history complete and nothing acknowledged lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use triad_client::{Client, ClientConfig, ClientEvent, RoomId};
use triad_protocol::{EventBody, PersonId};
use triad_server::auth::TokenMinter;
use triad_server::config::Config;
use xtask::cluster::{Cluster, Options};

use crate::scrape::{get, metric, value, wait_until};

/// How long the drained node stays up answering not-ready.
const DRAIN_DELAY: Duration = Duration::from_millis(1500);

/// How long it then waits for its sessions.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster in a state folder of its own, removed with it unless the test failed (then
/// its logs and configuration stay for a look).
struct Local {
    cluster: Cluster,
    state: Option<tempfile::TempDir>,
    secret: Vec<u8>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(state) = self.state.take()
        {
            eprintln!(
                "the cluster's state and logs are kept in {}",
                state.keep().display()
            );
        }
    }
}

impl Local {
    async fn start(node_env: &[(&str, String)]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let state = tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let options = Options {
            root,
            state: state.path().to_path_buf(),
            server: PathBuf::from(env!("CARGO_BIN_EXE_triad-node")),
            node_env: node_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&options))
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("the local cluster did not start: {err:#}"));
        let secret = std::fs::read_to_string(&cluster.jwt_secret_file)
            .unwrap()
            .trim()
            .as_bytes()
            .to_vec();
        Self {
            cluster,
            state: Some(state),
            secret,
        }
    }

    async fn connect(&self, person: &str) -> (Client, triad_client::Events) {
        let token = TokenMinter::hs256(&self.secret, &Config::default().jwt)
            .mint(&PersonId::new(person).unwrap(), Duration::from_secs(3600))
            .unwrap();
        let mut config = ClientConfig::new(self.cluster.ws_url(), token);
        config.backoff_max = Duration::from_millis(500);
        Client::connect(config).await.unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.cluster.state.join("logs").join(format!("{name}.log")))
            .unwrap()
    }
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Its room's events: sequence number and message body.
    events: Vec<(u64, Option<String>)>,
    /// The close codes of its disconnections.
    closes: Vec<Option<u16>>,
}

/// One client under traffic: its sender's acknowledgements and what its reader saw.
struct Traffic {
    person: &'static str,
    room: &'static str,
    acks: Arc<Mutex<Vec<(u64, String)>>>,
    seen: Arc<Mutex<Seen>>,
    sender: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(
        person: &'static str,
        room: &'static str,
        client: Client,
        mut events: triad_client::Events,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Some(event) = events.next().await {
                    let mut seen = seen.lock().unwrap();
                    match event {
                        ClientEvent::Event(event) if event.room.as_str() == room => {
                            let body = match event.body {
                                EventBody::Message { body, .. } => Some(body),
                                _ => None,
                            };
                            seen.events.push((event.seq, body));
                        }
                        ClientEvent::Disconnected { code, .. } => seen.closes.push(code),
                        ClientEvent::Closed { .. } => break,
                        _ => {}
                    }
                }
            }
        });
        let acks = Arc::new(Mutex::new(Vec::new()));
        let sender = tokio::spawn({
            let acks = acks.clone();
            async move {
                let room_id = RoomId::new(room).unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A marker that must never appear in a log.
                    let body = format!("{person} note {i} body-marker");
                    let ack = client
                        .send(&room_id, &body)
                        .await
                        .unwrap_or_else(|e| panic!("{person}'s send {i}: {e}"));
                    acks.lock().unwrap().push((ack.seq, body));
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
            }
        });
        Self {
            person,
            room,
            acks,
            seen,
            sender,
        }
    }

    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    fn closes(&self) -> Vec<Option<u16>> {
        self.seen.lock().unwrap().closes.clone()
    }
}

fn total_acks(traffic: &[Traffic]) -> usize {
    traffic.iter().map(Traffic::acked).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drained_under_traffic_hands_its_clients_to_the_other_with_nothing_lost() {
    let mut local = Local::start(&[
        ("TRIAD_DRAIN_DELAY_MS", DRAIN_DELAY.as_millis().to_string()),
        (
            "TRIAD_SHUTDOWN_TIMEOUT_SECS",
            SHUTDOWN_TIMEOUT.as_secs().to_string(),
        ),
        ("TRIAD_SEND_RATE_PER_SECOND", "100".into()),
        ("TRIAD_SEND_BURST", "100".into()),
    ])
    .await;
    let a = local.cluster.node("node-a").unwrap().addr;
    let a_metrics = local.cluster.node("node-a").unwrap().metrics;
    let b_metrics = local.cluster.node("node-b").unwrap().metrics;

    // Metrics are on their own listener, not on the node's public port.
    assert!(matches!(get(a, "/metrics").await, Some((404, _))));
    // Plain HTTP through nginx from another address is redirected to HTTPS (this host
    // itself, as here everywhere else, is served plain HTTP).
    let redirect = plain_http_from("127.0.0.2", local.cluster.entry).await;
    assert!(redirect.starts_with("HTTP/1.1 308"), "{redirect}");
    assert!(redirect.contains("Location: https://"), "{redirect}");

    // The six heads of both trios come in through nginx, which spreads them over the nodes.
    let people = [
        ("anna.jensen", "trio-1"),
        ("marco.rossi", "trio-1"),
        ("rhian.evans", "trio-1"),
        ("lars.nielsen", "trio-2"),
        ("giulia.bianchi", "trio-2"),
        ("owen.price", "trio-2"),
    ];
    let mut clients = Vec::new();
    for (person, room) in people {
        clients.push((person, room, local.connect(person).await));
    }
    // Everyone is in before anyone sends, so each client sees its room from the first
    // message on.
    let stop = Arc::new(AtomicBool::new(false));
    let mut traffic: Vec<Traffic> = clients
        .into_iter()
        .map(|(person, room, (client, events))| {
            Traffic::start(person, room, client, events, stop.clone())
        })
        .collect();
    let on_a = metric(a_metrics, "triad_connections").await;
    let on_b = metric(b_metrics, "triad_connections").await;
    assert_eq!(on_a + on_b, 6.0, "every client has a session");
    assert!(
        on_a >= 1.0 && on_b >= 1.0,
        "nginx spread the clients: {on_a} on a, {on_b} on b"
    );
    wait_until(
        "every client's sends are acknowledged",
        Duration::from_secs(10),
        || {
            let ready = traffic.iter().all(|t| t.acked() >= 3);
            async move { ready }
        },
    )
    .await;

    // SIGTERM under traffic: readiness turns first, while node a still serves.
    let signalled = Instant::now();
    local.cluster.signal("node-a", "TERM").unwrap();
    wait_until("node a answers not-ready", DRAIN_DELAY / 2, || async {
        matches!(get(a, "/readyz").await, Some((503, _)))
    })
    .await;
    let scrape = get(a_metrics, "/metrics")
        .await
        .expect("node a still answers while draining")
        .1;
    assert_eq!(value(&scrape, "triad_draining"), Some(1.0), "{scrape}");
    assert_eq!(
        value(&scrape, "triad_connections"),
        Some(on_a),
        "no session closed before the delay"
    );
    assert!(
        traffic.iter().all(|t| t.closes().is_empty()),
        "no client was told to leave yet"
    );
    let stored_before = value(&scrape, "triad_messages_in_total").unwrap();
    wait_until(
        "node a stores messages during its drain delay",
        DRAIN_DELAY / 2,
        || async {
            let now = get(a_metrics, "/metrics")
                .await
                .and_then(|(_, s)| value(&s, "triad_messages_in_total"));
            now.is_some_and(|n| n > stored_before)
        },
    )
    .await;

    // Then it tells its clients to go, waits for them, and exits cleanly.
    let mut exit = None;
    while exit.is_none() {
        assert!(
            signalled.elapsed() < DRAIN_DELAY + SHUTDOWN_TIMEOUT + Duration::from_secs(5),
            "node a did not exit within its drain delay and shutdown timeout"
        );
        exit = local.cluster.exited("node-a").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exit.unwrap().success(), "node a exited with {exit:?}");
    assert!(
        signalled.elapsed() >= DRAIN_DELAY,
        "node a left before its drain delay"
    );

    // Every client ends on node b: those of node a were closed with 1001 and came back.
    wait_until(
        "every client is on node b",
        Duration::from_secs(20),
        || async {
            get(b_metrics, "/metrics")
                .await
                .and_then(|(_, s)| value(&s, "triad_connections"))
                == Some(6.0)
        },
    )
    .await;
    let moved: Vec<&str> = traffic
        .iter()
        .filter(|t| t.closes().contains(&Some(1001)))
        .map(|t| t.person)
        .collect();
    assert_eq!(
        moved.len() as f64,
        on_a,
        "the clients of node a were told 1001: {moved:?}"
    );
    for t in &traffic {
        assert!(
            t.closes().iter().all(|c| *c == Some(1001)),
            "{} was closed otherwise: {:?}",
            t.person,
            t.closes()
        );
    }
    wait_until("they resume on node b", Duration::from_secs(10), || async {
        metric(b_metrics, "triad_sessions_resumed_total").await >= on_a
    })
    .await;

    // Sends go on on node b; then the traffic stops.
    let after_drain = total_acks(&traffic);
    wait_until(
        "sends are acknowledged on node b",
        Duration::from_secs(10),
        || {
            let more = total_acks(&traffic) >= after_drain + 12;
            async move { more }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in &mut traffic {
        (&mut t.sender)
            .await
            .expect("the sender ends without a failed send");
    }

    // Per room: every acknowledged message stored once, in one contiguous history that
    // each client received complete, in order, each event once.
    for room in ["trio-1", "trio-2"] {
        let in_room: Vec<&Traffic> = traffic.iter().filter(|t| t.room == room).collect();
        let acked: BTreeMap<u64, String> = in_room
            .iter()
            .flat_map(|t| t.acks.lock().unwrap().clone())
            .collect();
        let count: usize = in_room.iter().map(|t| t.acked()).sum();
        assert_eq!(
            acked.len(),
            count,
            "{room}: no two sends got one sequence number"
        );
        let last = *acked.keys().last().unwrap();
        for t in &in_room {
            let deadline = Instant::now() + Duration::from_secs(20);
            while (t.seen.lock().unwrap().events.len() as u64) < last {
                if Instant::now() > deadline {
                    let seen = t.seen.lock().unwrap();
                    let have: BTreeSet<u64> = seen.events.iter().map(|(seq, _)| *seq).collect();
                    let missing: Vec<u64> = (1..=last).filter(|s| !have.contains(s)).collect();
                    panic!(
                        "{} lacks {missing:?} of {room} (1..={last}); closes {:?}",
                        t.person, seen.closes
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let seen = t.seen.lock().unwrap();
            let seqs: Vec<u64> = seen.events.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(
                seqs,
                (1..=last).collect::<Vec<_>>(),
                "{} saw {room} complete and once",
                t.person
            );
            for (seq, body) in &seen.events {
                if let Some(sent) = acked.get(seq) {
                    assert_eq!(body.as_ref(), Some(sent), "{room} #{seq}");
                }
            }
        }
        let stored: BTreeSet<u64> = seen_in_history(&local, room).await;
        assert!(
            acked.keys().all(|seq| stored.contains(seq)),
            "{room}: every acknowledged message is stored"
        );
        assert_eq!(
            stored,
            (1..=last).collect(),
            "{room}: history is contiguous"
        );
    }

    // The drained node's log tells the drain; sessions are logged with person and session
    // ids, and no message body is logged anywhere.
    let log = local.log("node-a");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let closing = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "draining: closing the listener, then the sessions with 1001"
        })
        .expect("node a logs the closing of its sessions");
    assert_eq!(
        closing["fields"]["sessions"].as_f64(),
        Some(on_a),
        "{closing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "drained: every session closed")
    );
    let started: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "session started")
        .collect();
    assert_eq!(started.len() as f64, on_a);
    for line in started {
        assert!(
            line["span"]["person"].is_string() && line["span"]["session"].is_string(),
            "{line}"
        );
    }
    for name in ["node-a", "node-b"] {
        assert!(
            !local.log(name).contains("body-marker"),
            "a message body was logged by {name}"
        );
    }
}

/// The sequence numbers stored in `room`, read page by page through node b.
/// `GET /` from the loopback address `from`; the whole answer.
async fn plain_http_from(from: &str, to: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(to).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer))
        .await
        .expect("nginx answers")
        .unwrap();
    answer
}

async fn seen_in_history(local: &Local, room: &str) -> BTreeSet<u64> {
    let (client, _events) = local.connect("anna.jensen").await;
    let reader = if room == "trio-1" {
        client
    } else {
        local.connect("lars.nielsen").await.0
    };
    let room = RoomId::new(room).unwrap();
    let mut stored = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = reader
            .history(&room, None, Some(after), Some(200))
            .await
            .unwrap();
        for event in &page.events {
            assert!(stored.insert(event.seq), "#{} stored twice", event.seq);
            after = after.max(event.seq);
        }
        if !page.has_more {
            return stored;
        }
    }
}

#[test]
fn cluster_up_then_down_leaves_nothing_running_and_up_again_reuses_the_state() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let state = tempfile::Builder::new()
        .prefix("cluster-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let options = Options {
        root,
        state: state.path().to_path_buf(),
        server: PathBuf::from(env!("CARGO_BIN_EXE_triad-node")),
        node_env: vec![("TRIAD_DRAIN_DELAY_MS".into(), "0".into())],
    };
    let cluster = Cluster::start(&options).unwrap_or_else(|err| panic!("cluster up: {err:#}"));
    let entry = cluster.entry;
    cluster.detach().unwrap();
    let records = xtask::cluster::process::read_records(&state.path().join("pids")).unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["redis", "coturn", "node-a", "node-b", "nginx"]);
    assert!(
        records.iter().all(|r| r.is_running()),
        "detached processes go on running"
    );
    let again = Cluster::start(&options).expect_err("a second cluster on the same state");
    assert!(again.to_string().contains("already runs"), "{again:#}");
    assert!(matches!(
        xtask::cluster::probe::http_get(entry, "/readyz"),
        Ok((200, _))
    ));

    let stopped = xtask::cluster::down(state.path()).unwrap();
    assert_eq!(stopped.len(), 5, "{stopped:?}");
    assert!(
        records.iter().all(|r| !r.is_running()),
        "cluster down stops every process"
    );
    assert!(
        xtask::cluster::probe::http_get(entry, "/healthz").is_err(),
        "nginx is gone"
    );

    // Up again on the same state: the data, secrets and certificate are kept, logs start anew.
    let again = Cluster::start(&options).unwrap_or_else(|err| panic!("cluster up again: {err:#}"));
    assert!(matches!(
        xtask::cluster::probe::http_get(again.entry, "/readyz"),
        Ok((200, _))
    ));
}
