//! Signing in over real sockets: the refresh token's retry rule (a lost answer retried
//! within the window, the voided token it leaves, a retry after the window), a store that
//! fails in the middle of a refresh (a real `redis-server` paused for writes), the browser's
//! cookie (more than one refused, an earlier sign-in ended by a new one), and which refused
//! sign-ins count against an address.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use triad_server::store::redis::testing::RedisProcess;

use crate::calendar::http;
use crate::harness::TestServer;

/// An answer: status, headers (names in lower case) and body.
type Answer = (u16, Vec<(String, String)>, String);

/// Sends one request with `headers` and a JSON `body`, and reads the whole answer.
async fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn code(body: &str) -> String {
    json(body)["code"].as_str().unwrap_or_default().to_owned()
}

/// An invitation for `person`, created by the coordinator; its code.
async fn invitation(server: &TestServer, person: &str) -> String {
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/api/invitations",
        Some(&server.token("david.coordinator")),
        Some(&format!(r#"{{"person":"{person}"}}"#)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    json(&body)["code"].as_str().unwrap().to_owned()
}

/// Signs `person` in as a program does: their first refresh token.
async fn signed_in(server: &TestServer, person: &str) -> String {
    let code = invitation(server, person).await;
    let (status, _, body) = request(
        server.addr,
        "/api/auth/redeem",
        &[],
        &format!(r#"{{"code":"{code}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    json(&body)["refresh_token"].as_str().unwrap().to_owned()
}

/// Refreshes with `token` as a program does.
async fn refresh(server: &TestServer, token: &str) -> Answer {
    request(
        server.addr,
        "/api/auth/refresh",
        &[],
        &format!(r#"{{"refresh_token":"{token}"}}"#),
    )
    .await
}

/// Refreshes with `token`, which must work; the new refresh token.
async fn refreshed(server: &TestServer, token: &str) -> String {
    let (status, _, body) = refresh(server, token).await;
    assert_eq!(status, 200, "{body}");
    json(&body)["refresh_token"].as_str().unwrap().to_owned()
}

/// Asserts that `token` is refused as revoked or no longer valid.
async fn refused(server: &TestServer, token: &str, why: &str) {
    let (status, _, body) = refresh(server, token).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (401, "token_revoked"),
        "{why}: {body}"
    );
}

#[tokio::test]
async fn a_lost_answer_retried_within_the_window_works_and_its_voided_token_revokes() {
    let server = TestServer::start().await;
    let first = signed_in(&server, "anna.jensen").await;
    // The answer to this refresh never reaches the client...
    let lost = refreshed(&server, &first).await;
    // ...which sends the same token again, and is answered.
    let retried = refreshed(&server, &first).await;
    assert_ne!(lost, retried);
    // The lost answer's token is voided: whoever presents it holds a copy, and the person
    // is signed out everywhere.
    refused(&server, &lost, "the voided token").await;
    refused(
        &server,
        &retried,
        "the honest client's token, after the revocation",
    )
    .await;
    refused(&server, &first, "the first token, after the revocation").await;
}

#[tokio::test]
async fn the_retried_token_keeps_working_and_a_copy_of_it_later_revokes() {
    let server = TestServer::start().await;
    let first = signed_in(&server, "anna.jensen").await;
    let _lost = refreshed(&server, &first).await;
    let retried = refreshed(&server, &first).await;
    // The honest client goes on refreshing with what it was given.
    let next = refreshed(&server, &retried).await;
    let _ = refreshed(&server, &next).await;
    // The first token, presented again once its successor was used, is a copy.
    refused(
        &server,
        &first,
        "the first token, once its successor was used",
    )
    .await;
}

#[tokio::test]
async fn a_retry_after_the_window_revokes() {
    let server = TestServer::start_with(|config| {
        config.refresh_retry_window = Duration::from_secs(1);
    })
    .await;
    let first = signed_in(&server, "anna.jensen").await;
    let lost = refreshed(&server, &first).await;
    // Waits for the window to pass.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    refused(&server, &first, "a retry after the window").await;
    refused(&server, &lost, "the successor, after the revocation").await;
}

/// Pauses every write on `redis` (reads go on) until [`unpause`].
async fn pause_writes(redis: &RedisProcess) -> TcpStream {
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    tcp.write_all(b"CLIENT PAUSE 30000 WRITE\r\n")
        .await
        .unwrap();
    let mut answer = [0_u8; 16];
    let read = tcp.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"+OK"), "CLIENT PAUSE answered");
    tcp
}

/// Lets writes through again, and waits until one from another connection is answered:
/// the writes that waited (sent before it) are done.
async fn unpause(redis: &RedisProcess, mut paused: TcpStream) {
    paused.write_all(b"CLIENT UNPAUSE\r\n").await.unwrap();
    let mut answer = [0_u8; 16];
    let read = paused.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"+OK"),
        "CLIENT UNPAUSE answered"
    );
    let mut probe = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    probe
        .write_all(b"SET triad-test-probe 1\r\n")
        .await
        .unwrap();
    let read = probe.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"+OK"),
        "a write after the pause"
    );
}

#[tokio::test]
async fn a_store_failure_in_the_middle_of_a_refresh_does_not_revoke() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let server = TestServer::start_on_redis(&redis.url, |config| {
        config.store_deadline = Duration::from_millis(500);
    })
    .await;
    let first = signed_in(&server, "anna.jensen").await;
    // The refresh reads what it needs, and its first write waits past the deadline: the
    // client is told to try again, and the write happens once the store is back.
    let paused = pause_writes(&redis).await;
    let (status, _, body) = refresh(&server, &first).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (503, "store_unavailable"),
        "{body}"
    );
    unpause(&redis, paused).await;
    // The client's retry is a retry: new tokens, and the person stays signed in.
    let next = refreshed(&server, &first).await;
    let _ = refreshed(&server, &next).await;
}

/// The refresh cookie of a `Set-Cookie` header among `headers`, if one sets it.
fn set_cookie(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .find_map(|(_, value)| value.strip_prefix("triad_refresh="))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn more_than_one_refresh_cookie_is_refused_and_cleared() {
    let server = TestServer::start().await;
    let code_ = invitation(&server, "anna.jensen").await;
    let origin = format!("http://{}", server.addr);
    let browser = [("X-Triad-CSRF", "1"), ("Origin", origin.as_str())];
    let (status, headers, body) = request(
        server.addr,
        "/api/auth/redeem",
        &browser,
        &format!(r#"{{"code":"{code_}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = set_cookie(&headers).expect("the refresh cookie");
    // Another site on a parent domain tossed in a cookie of the same name.
    let cookies = format!("triad_refresh={token}; triad_refresh=tossed");
    let mut tossed = browser.to_vec();
    tossed.push(("Cookie", cookies.as_str()));
    let (status, headers, body) = request(server.addr, "/api/auth/refresh", &tossed, "{}").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (401, "token_invalid"),
        "{body}"
    );
    assert_eq!(
        set_cookie(&headers).as_deref(),
        Some(""),
        "the cookie is cleared"
    );
    // The real one was not used up.
    let cookie = format!("triad_refresh={token}");
    let mut one = browser.to_vec();
    one.push(("Cookie", cookie.as_str()));
    let (status, _, body) = request(server.addr, "/api/auth/refresh", &one, "{}").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn signing_in_again_in_a_browser_ends_its_earlier_sign_in() {
    let server = TestServer::start().await;
    let origin = format!("http://{}", server.addr);
    let browser = [("X-Triad-CSRF", "1"), ("Origin", origin.as_str())];
    let code_ = invitation(&server, "anna.jensen").await;
    let (status, headers, body) = request(
        server.addr,
        "/api/auth/redeem",
        &browser,
        &format!(r#"{{"code":"{code_}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let earlier = set_cookie(&headers).expect("the refresh cookie");
    let code_ = invitation(&server, "marco.rossi").await;
    let cookie = format!("triad_refresh={earlier}");
    let mut signed_in = browser.to_vec();
    signed_in.push(("Cookie", cookie.as_str()));
    let (status, headers, body) = request(
        server.addr,
        "/api/auth/redeem",
        &signed_in,
        &format!(r#"{{"code":"{code_}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["person"], "marco.rossi");
    assert!(set_cookie(&headers).is_some_and(|t| !t.is_empty() && t != earlier));
    refused(&server, &earlier, "the earlier sign-in's token").await;
}

#[tokio::test]
async fn signed_out_page_loads_and_refused_origins_leave_sign_in_available() {
    let server = TestServer::start_with(|config| {
        config.sign_in_burst = 3;
        config.sign_in_rate_per_minute = 1;
    })
    .await;
    let origin = format!("http://{}", server.addr);
    for i in 0..20 {
        // A signed-out page load: the page asks whether its browser is signed in.
        let (status, _, body) = request(
            server.addr,
            "/api/auth/refresh",
            &[("X-Triad-CSRF", "1"), ("Origin", origin.as_str())],
            "{}",
        )
        .await;
        assert_eq!(
            (status, code(&body).as_str()),
            (401, "not_authenticated"),
            "page load {i}: {body}"
        );
        // Another site's script, refused for its origin.
        let (status, _, body) = request(
            server.addr,
            "/api/auth/refresh",
            &[("X-Triad-CSRF", "1"), ("Origin", "https://evil.example")],
            "{}",
        )
        .await;
        assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
        // Another site's form: no header, and a body that is not JSON.
        let (status, _, body) = request(
            server.addr,
            "/api/auth/sign-out",
            &[
                ("Origin", "https://evil.example"),
                ("Content-Type", "text/plain"),
            ],
            "x",
        )
        .await;
        assert!(
            matches!(code(&body).as_str(), "invalid_request" | "forbidden"),
            "{status}: {body}"
        );
        let (status, _, body) = request(server.addr, "/api/auth/refresh", &[], "{}").await;
        assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
    }
    // Signing in still works, and a wrong code is refused for what it is.
    let _ = signed_in(&server, "anna.jensen").await;
    let (status, _, body) =
        request(server.addr, "/api/auth/redeem", &[], r#"{"code":"wrong"}"#).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (404, "invitation_invalid"),
        "{body}"
    );
}

/// How many refresh grants the store on `redis` holds.
async fn grants_stored(redis: &RedisProcess) -> usize {
    let mut tcp = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    tcp.write_all(b"HLEN triad:docs:grants\r\n").await.unwrap();
    let mut answer = [0_u8; 32];
    let read = tcp.read(&mut answer).await.unwrap();
    let text = std::str::from_utf8(&answer[..read]).unwrap();
    text.trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("HLEN answered {text:?}"))
}

#[tokio::test]
async fn replaced_and_expired_refresh_grants_are_dropped() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let server = TestServer::start_on_redis(&redis.url, |config| {
        config.refresh_retry_window = Duration::ZERO;
        config.refresh_ttl = Duration::from_secs(2);
    })
    .await;
    let mut token = signed_in(&server, "anna.jensen").await;
    // A page load after another: each refresh drops the grant two generations back.
    for _ in 0..10 {
        token = refreshed(&server, &token).await;
    }
    assert_eq!(
        grants_stored(&redis).await,
        2,
        "the newest and the one it replaced"
    );
    // Once those have expired, the next sign-in with an invitation drops them.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let _ = signed_in(&server, "marco.rossi").await;
    assert_eq!(grants_stored(&redis).await, 1, "only the new sign-in's");
}
