//! Websocket sessions. [`upgrade`] checks the origin and subprotocol before the upgrade;
//! [`socket`] does the handshake and sends large messages as bounded fragments;
//! [`session`] runs one connection: `hello`, then requests until it closes; [`requests`]
//! answers each request; [`writer`] drains the session's outbox to the socket.
//!
//! Each connection is one task reading and one task writing, joined by a bounded outbox.

pub mod requests;
pub mod session;
pub mod socket;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use triad_protocol::{PROTOCOL_VERSION, limits};

use crate::auth::{Grants, TokenVerifier};
use crate::calls::Calls;
use crate::hub::Hub;
use crate::mail::Mailer;
use crate::programme::cache::ProgrammeCache;
use crate::schedule::Schedule;
use crate::store::SharedStore;
use crate::store::readiness::Readiness;
use socket::Upgrade;

/// Settings a session needs.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Time to send `hello`.
    pub hello_timeout: Duration,
    /// Outbox capacity per session.
    pub outbox_capacity: usize,
    /// Origins allowed besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Requests per session per second, sustained.
    pub request_rate_per_second: u32,
    /// Requests per session in a burst.
    pub request_burst: u32,
    /// The URL people reach the server at, for links.
    pub public_url: String,
    /// The deadline of the store calls a request (or signing in) makes.
    pub store_deadline: Duration,
    /// How long a session closed as too slow has to read its close frame.
    pub slow_close_deadline: Duration,
}

/// What every session shares: the store, the hub, the token verifier.
pub struct Gateway {
    /// History and programme.
    pub store: SharedStore,
    /// Local rooms and presence.
    pub hub: Arc<Hub>,
    /// Video calls: state, signalling relay, TURN credentials.
    pub calls: Arc<Calls>,
    /// Coaching sessions.
    pub schedule: Arc<Schedule>,
    /// The programme as `hello` and `join` read it.
    pub programme: ProgrammeCache,
    /// Token verification.
    pub verifier: TokenVerifier,
    /// Invitations, sign-in tokens and revocation.
    pub grants: Arc<Grants>,
    /// E-mail: reminders and digests.
    pub mailer: Arc<Mailer>,
    /// Session settings.
    pub settings: SessionSettings,
    /// Cancelled at the shutdown signal: readiness turns off while sessions go on for the
    /// drain delay, so load balancers stop sending new clients first.
    pub draining: CancellationToken,
    /// Cancelled when the drain delay is over and the listener has closed: each session
    /// finishes its current request, then closes with 1001.
    pub shutdown: CancellationToken,
    /// The running sessions, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// Whether the store answered its last probe, for `/readyz`.
    pub readiness: Arc<Readiness>,
    next_key: AtomicU64,
}

impl Gateway {
    /// A gateway with no sessions yet.
    pub fn new(
        store: SharedStore,
        hub: Arc<Hub>,
        calls: Arc<Calls>,
        verifier: TokenVerifier,
        grants: Arc<Grants>,
        mailer: Arc<Mailer>,
        settings: SessionSettings,
    ) -> Self {
        let schedule = Schedule::new(store.clone(), hub.clone());
        let programme = ProgrammeCache::new(store.clone(), hub.clone());
        Self {
            programme,
            store,
            hub,
            calls,
            schedule,
            verifier,
            grants,
            mailer,
            settings,
            draining: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            readiness: Arc::new(Readiness::default()),
            next_key: AtomicU64::new(1),
        }
    }

    fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// Whether the `Origin` of an upgrade is acceptable: absent (not a browser), the server's
/// own host, or listed in the configuration.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// `GET /ws`: refuses foreign origins and other subprotocols, then upgrades with limits
/// sized for small chat messages.
pub async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    if !origin_allowed(&headers, &gateway.settings.allowed_origins) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let offered: Vec<&str> = ws.requested_protocols().collect();
    if !offered.is_empty() && !offered.contains(&PROTOCOL_VERSION) {
        return (
            StatusCode::BAD_REQUEST,
            format!("subprotocol {PROTOCOL_VERSION} required"),
        )
            .into_response();
    }
    if gateway.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let tracker = gateway.sessions.clone();
    ws.accept(PROTOCOL_VERSION, socket_config(), move |socket| {
        tracker.track_future(session::run(gateway, socket))
    })
}

/// Buffers sized for chat. The read buffer is allocated up front for every connection and
/// holds several chat frames (a larger frame is read in several chunks). The write buffer
/// collects fed frames until it passes the write size, then writes them out; with
/// fragments of at most [`socket::FRAGMENT_BYTES`] it stays a few KiB on a connection that
/// keeps up.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(socket::FRAGMENT_BYTES)
        .max_write_buffer_size(limits::MAX_FRAME_BYTES * 16)
        .max_frame_size(Some(limits::MAX_FRAME_BYTES))
        .max_message_size(Some(limits::MAX_FRAME_BYTES))
}

/// Bytes read from the socket at a time.
pub const READ_BUFFER_BYTES: usize = 1024;

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://school.example".to_string()];
        assert!(origin_allowed(&headers(None, "triad:8080"), &allowed));
        assert!(origin_allowed(
            &headers(Some("http://triad:8080"), "triad:8080"),
            &allowed
        ));
        assert!(origin_allowed(
            &headers(Some("https://school.example"), "triad:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "triad:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "triad:8080"),
            &allowed
        ));
    }
}
