//! HTTP limits over real sockets: a request body that does not arrive in time or cannot be
//! read, the caps on connections (overall and per peer address) and their answer, rate
//! limits on the REST API (answered before the body is read) and on failed sign-ins (and
//! only failed ones), the headers every answer carries, bounded error messages, `/metrics`
//! on its own listener only, and the probes answered there.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use crate::calendar::http;
use crate::harness::TestServer;

/// Reads one HTTP/1.1 answer with a `Content-Length` from `reader`: status, headers (lower
/// case) and body. The connection stays open.
async fn answer(reader: &mut BufReader<TcpStream>) -> (u16, String, String) {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).await.unwrap() > 0,
                "closed in the headers"
            );
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        (status, head, String::from_utf8(body).unwrap())
    })
    .await
    .expect("an answer within 10 s")
}

/// What the server says to a new connection before closing it, if anything.
async fn refused(mut tcp: TcpStream) -> String {
    let mut said = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut said))
        .await
        .expect("the server closes the connection")
        .ok();
    said
}

/// A connection from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: triad\r\n\r\n";

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() {
    let server = TestServer::start_with(|config| {
        config.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /api/auth/redeem HTTP/1.1\r\nHost: triad\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"code\": \"",
    )
    .await
    .unwrap();
    // The rest of the body never comes; the server answers and closes.
    let said = refused(tcp).await;
    assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    assert!(said.contains("\"code\":\"request_timeout\""), "{said}");
    assert!(
        said.to_ascii_lowercase().contains("connection: close"),
        "{said}"
    );

    // A body that comes in time is served as before.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(r#"{"code": "not-a-code"}"#),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("invitation_invalid"), "{body}");
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_invalid_request_with_its_documented_status() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /api/auth/redeem HTTP/1.1\r\nHost: triad\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\n\r\nnot-a-chunk-size\r\n\r\n",
    )
    .await
    .unwrap();
    let said = refused(tcp).await;
    assert!(said.starts_with("HTTP/1.1 422 "), "{said}");
    assert!(said.contains("\"code\":\"invalid_request\""), "{said}");
}

#[tokio::test]
async fn over_a_connection_cap_new_connections_are_refused_and_open_ones_go_on() {
    let server = TestServer::start_with(|config| {
        config.max_connections = 3;
        config.max_connections_per_peer = 2;
    })
    .await;
    // An honest client, keeping its connection.
    let mut honest = BufReader::new(connect_from("127.0.0.1", server.addr).await);
    honest.get_mut().write_all(HEALTHZ).await.unwrap();
    assert_eq!(answer(&mut honest).await.0, 200);
    // One that sends half a request and waits.
    let mut idle = connect_from("127.0.0.1", server.addr).await;
    idle.write_all(b"POST /api/auth/redeem HTTP/1.1\r\n")
        .await
        .unwrap();

    // A third from the same address is over the per-peer cap; its answer arrives even
    // though it sent a request the server does not read (no reset loses it).
    let mut third = connect_from("127.0.0.1", server.addr).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: triad\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(2000)
    );
    third.write_all(request.as_bytes()).await.unwrap();
    let said = refused(third).await;
    assert!(said.starts_with("HTTP/1.1 503 "), "{said:?}");
    assert!(said.contains("Retry-After: 5\r\n"), "{said:?}");
    assert!(said.ends_with("too many connections\r\n"), "{said:?}");
    // Another address still gets in, up to the overall cap.
    let mut other = BufReader::new(connect_from("127.0.0.2", server.addr).await);
    other.get_mut().write_all(HEALTHZ).await.unwrap();
    assert_eq!(answer(&mut other).await.0, 200);
    let said = refused(connect_from("127.0.0.3", server.addr).await).await;
    assert!(said.starts_with("HTTP/1.1 503 "), "{said:?}");

    // The clients already connected are served as before.
    honest.get_mut().write_all(HEALTHZ).await.unwrap();
    let (status, _, body) = answer(&mut honest).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    drop(idle);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let server = TestServer::start_with(|config| {
        config.sign_in_burst = 3;
        config.sign_in_rate_per_minute = 1;
    })
    .await;
    let before = server.metrics().await;
    let failures_before = counter(&before, "triad_sign_in_failures_total");
    let limited_before = counter(&before, SIGN_IN_LIMITED);
    for i in 0..3 {
        let (status, _, body) = http(
            server.addr,
            "POST",
            "/api/auth/redeem",
            None,
            Some(&format!(r#"{{"code": "wrong-{i}"}}"#)),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, headers, body) = http(
        server.addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(r#"{"code": "wrong-4"}"#),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"code\":\"rate_limited\""), "{body}");
    let retry: u64 = headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a Retry-After header");
    assert!((1..=60).contains(&retry), "{retry}");
    // Refresh shares the sign-in budget.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/refresh",
        None,
        Some(r#"{"refresh_token": "x"}"#),
    )
    .await;
    assert_eq!(status, 429, "{body}");

    // Each refused sign-in was counted, and each answer 429 (the recorder is shared by
    // every server of the process: the increase is what counts).
    let metrics = server.metrics().await;
    let failures = counter(&metrics, "triad_sign_in_failures_total") - failures_before;
    assert!(failures >= 3.0, "{metrics}");
    let limited = counter(&metrics, SIGN_IN_LIMITED) - limited_before;
    assert!(limited >= 2.0, "{metrics}");
}

/// The value of the counter `series` (name and labels) in a `/metrics` text; 0 if absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

const SIGN_IN_LIMITED: &str = "triad_rate_limited_total{limit=\"sign_in\"}";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn only_failed_sign_ins_count_against_the_address() {
    let server = TestServer::start_with(|config| {
        config.sign_in_burst = 3;
        config.sign_in_rate_per_minute = 1;
    })
    .await;
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/invitations",
        Some(&server.token("david.coordinator")),
        Some(r#"{"person":"anna.jensen"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let code = json(&body)["code"].as_str().unwrap().to_owned();
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/redeem",
        None,
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut refresh = json(&body)["refresh_token"].as_str().unwrap().to_owned();
    // Every page load of everyone behind one school's NAT refreshes: far over the burst,
    // all from one address, and all answered.
    for i in 0..20 {
        let (status, _, body) = http(
            server.addr,
            "POST",
            "/api/auth/refresh",
            None,
            Some(&format!(r#"{{"refresh_token":"{refresh}"}}"#)),
        )
        .await;
        assert_eq!(status, 200, "refresh {i}: {body}");
        refresh = json(&body)["refresh_token"].as_str().unwrap().to_owned();
    }
    // Guessing is still limited: failures take the budget, then 429.
    let mut answers = Vec::new();
    for i in 0..5 {
        let (status, _, _) = http(
            server.addr,
            "POST",
            "/api/auth/refresh",
            None,
            Some(&format!(r#"{{"refresh_token":"guess-{i}"}}"#)),
        )
        .await;
        answers.push(status);
    }
    assert_eq!(answers[..3], [401, 401, 401], "{answers:?}");
    assert_eq!(answers[3..], [429, 429], "{answers:?}");
    // Signing out with a guessed token counts the same way.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/auth/sign-out",
        None,
        Some(r#"{"refresh_token":"guess"}"#),
    )
    .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn the_metrics_listener_answers_the_probes() {
    let server = TestServer::start_with(|config| {
        // The public listener is full: one connection held open.
        config.max_connections = 1;
    })
    .await;
    let _held = TcpStream::connect(server.addr).await.unwrap();
    let said = refused(TcpStream::connect(server.addr).await.unwrap()).await;
    assert!(said.starts_with("HTTP/1.1 503 "), "{said:?}");
    let metrics = server.metrics_addr.expect("a metrics listener");
    let (status, _, body) = http(metrics, "GET", "/healthz", None, None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = http(metrics, "GET", "/readyz", None, None).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
}

#[tokio::test]
async fn api_calls_are_rate_limited_per_person() {
    let server = TestServer::start_with(|config| {
        config.api_burst = 5;
        config.api_rate_per_second = 1;
    })
    .await;
    let anna = server.token("anna.jensen");
    for _ in 0..5 {
        let (status, _, body) = http(server.addr, "GET", "/api/coachings", Some(&anna), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) =
        http(server.addr, "GET", "/api/coachings", Some(&anna), None).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("\"code\":\"rate_limited\""), "{body}");
    assert!(
        headers.iter().any(|(k, _)| k == "retry-after"),
        "{headers:?}"
    );
    // Over the limit, a call is answered at once, before its body arrives.
    let mut tcp = BufReader::new(TcpStream::connect(server.addr).await.unwrap());
    let request = format!(
        "POST /api/coachings HTTP/1.1\r\nHost: triad\r\nAuthorization: Bearer {anna}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    );
    tcp.get_mut().write_all(request.as_bytes()).await.unwrap();
    let (status, _, body) = answer(&mut tcp).await;
    assert_eq!(status, 429, "{body}");
    // Someone else, from the same address, has their own budget.
    let (status, _, body) = http(
        server.addr,
        "GET",
        "/api/coachings",
        Some(&server.token("marco.rossi")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_answer_says_nosniff_and_the_page_connects_to_its_own_origin_only() {
    let server = TestServer::start().await;
    for path in [
        "/",
        "/healthz",
        "/app/app.js",
        "/api/coachings",
        "/nothing-here",
    ] {
        let (_, headers, _) = http(server.addr, "GET", path, None, None).await;
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-content-type-options" && v == "nosniff"),
            "{path}: {headers:?}"
        );
    }
    let (_, headers, _) = http(server.addr, "GET", "/", None, None).await;
    let policy = headers
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .map(|(_, v)| v.clone())
        .expect("a policy on the page");
    let connect = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("connect-src"))
        .expect("a connect-src");
    assert_eq!(connect, "connect-src 'self'", "{policy}");
}

#[tokio::test]
async fn error_messages_do_not_echo_long_input() {
    let server = TestServer::start().await;
    let long = "x".repeat(1 << 20);
    let body = format!(r#"{{"code": "a", "{long}": 1}}"#);
    let (status, _, answer) =
        http(server.addr, "POST", "/api/auth/redeem", None, Some(&body)).await;
    assert_eq!(status, 422, "{}", &answer[..answer.len().min(500)]);
    assert!(answer.len() < 1024, "{} bytes answered", answer.len());
    let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(error["code"], "invalid_request");
    assert!(
        error["message"].as_str().unwrap().ends_with('…'),
        "{answer}"
    );

    let (status, _, answer) = http(
        server.addr,
        "GET",
        &format!("/api/reports/trio-1/{}", "c".repeat(4000)),
        Some(&server.token("david.coordinator")),
        None,
    )
    .await;
    assert_eq!(status, 404, "{}", &answer[..answer.len().min(500)]);
    assert!(answer.len() < 1024, "{} bytes answered", answer.len());
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = TestServer::start().await;
    let (status, _, _) = http(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 404);
    let metrics = server.metrics().await;
    assert!(metrics.contains("triad_build_info"), "{metrics}");
}
