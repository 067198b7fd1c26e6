//! Metrics at `/metrics` (on the metrics listener), and the drain: readiness turns first, sessions are served through
//! the drain delay, then closed with 1001.
//!
//! Servers in one test process share one metrics recorder, so these tests compare before
//! and after rather than read absolute values.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use triad_protocol::{PersonId, ServerMessage};
use triad_server::auth::TokenMinter;
use triad_server::programme::{DEMO_ROSTER, Roster};
use triad_server::server::Server;
use triad_server::store::embedded::EmbeddedStore;
use triad_server::store::{NoSink, Store};

use crate::harness::{Raw, SECRET, TestServer, test_config};

/// An HTTP GET: status, headers and body as one text.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response)
}

fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in\n{scrape}"))
}

#[tokio::test]
async fn metrics_count_sessions_messages_and_append_latency() {
    let server = TestServer::start().await;
    let (mut anna, _) = server.signed_in("anna.jensen").await;
    let (status, before) = get(server.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        before.contains("content-type: text/plain; version=0.0.4"),
        "{before}"
    );
    assert!(value(&before, "triad_connections") >= 1.0);
    assert!(value(&before, "triad_sessions{room_kind=\"trio\"}") >= 1.0);
    assert!(value(&before, "triad_sessions{room_kind=\"commons\"}") >= 1.0);

    assert!(matches!(
        anna.send("trio-1", "m-1", "counted").await,
        ServerMessage::Ack(_)
    ));
    let (_, after) = get(server.metrics_addr.unwrap(), "/metrics").await;
    assert!(value(&after, "triad_messages_in_total") > value(&before, "triad_messages_in_total"));
    assert!(value(&after, "triad_messages_out_total") > value(&before, "triad_messages_out_total"));
    assert!(
        value(&after, "triad_store_append_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("triad_store_append_seconds_bucket{le=\"0.005\"}"),
        "a histogram"
    );
}

#[tokio::test]
async fn readiness_turns_first_then_sessions_finish_and_close_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.drain_delay = Duration::from_millis(400);
    {
        let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).unwrap();
        let roster = Roster::parse(DEMO_ROSTER).unwrap();
        store.apply_programme(&roster.programme).await.unwrap();
    }
    let server = Server::bind(config.clone()).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(server.run(async {
        stopped.await.ok();
    }));
    let token = TokenMinter::hs256(SECRET.as_bytes(), &config.jwt)
        .mint(
            &PersonId::new("anna.jensen").unwrap(),
            Duration::from_secs(600),
        )
        .unwrap();
    let mut anna = Raw::connect(&format!("ws://{addr}/ws"), None)
        .await
        .unwrap();
    let welcome = anna.hello(&token, vec![]).await;
    anna.skip_live(&welcome).await;
    assert_eq!(get(addr, "/readyz").await.0, 200);

    stop.send(()).unwrap();
    let signalled = Instant::now();
    while get(addr, "/readyz").await.0 != 503 {
        assert!(
            signalled.elapsed() < Duration::from_millis(300),
            "readiness did not turn"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Not ready, and still serving: a send during the delay is stored and acknowledged.
    match anna.send("trio-1", "d-1", "during the drain delay").await {
        ServerMessage::Ack(ack) => assert_eq!(ack.seq, 1),
        other => panic!("a send during the drain delay was answered with {other:?}"),
    }
    assert!(
        signalled.elapsed() < config.drain_delay,
        "the test was too slow to tell"
    );

    assert_eq!(anna.closed().await, Some(1001));
    assert!(
        signalled.elapsed() >= config.drain_delay,
        "closed before the drain delay"
    );
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("the server stops within its shutdown timeout")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
