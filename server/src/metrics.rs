//! Prometheus metrics: every metric's name, and one small function per thing that is
//! counted, so the rest of the server counts with one line and never spells a name.
//!
//! `GET /metrics`, on its own listener (`metrics_listen`), renders them in the Prometheus text format ([`render`]). The recorder
//! (`metrics-exporter-prometheus`) is installed once per process ([`install`], called by
//! `Server::bind` and by [`render`]); until then every function here does nothing. One
//! process runs one server in production, so no metric carries a per-server label. Tests
//! that run several servers in one process share the recorder: their figures add up, so
//! such tests compare before and after rather than absolute values (the end-to-end tests
//! run each server in its own process and see exact figures).
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `triad_build_info{version}` | gauge | 1; the server's version in the label |
//! | `triad_connections` | gauge | websocket connections open now, signed in or not yet |
//! | `triad_sessions{room_kind}` | gauge | signed-in sessions in rooms of each kind (`trio`, `commons`, `staff`); a session counts once per room it is in |
//! | `triad_sessions_started_total` | counter | sessions signed in (a `welcome` sent) |
//! | `triad_sessions_resumed_total` | counter | of those, sessions that came back with resume points (reconnects) |
//! | `triad_messages_in_total` | counter | chat messages stored for this node's clients (retried duplicates not counted) |
//! | `triad_messages_out_total` | counter | room events written to this node's websockets, live, replayed or gap-filled |
//! | `triad_store_append_seconds` | histogram | time from a `send` reaching the store until it is durable (or failed) |
//! | `triad_outbox_dropped_total` | counter | frames not queued because a session's outbox was full |
//! | `triad_slow_consumer_closes_total` | counter | sessions closed with 4008 because their outbox filled up |
//! | `triad_replayed_events_total` | counter | events written from history when a session starts or resumes a room |
//! | `triad_gaps_filled_total` | counter | gaps in a room's live stream that a session filled from the store |
//! | `triad_redis_errors_total` | counter | Redis requests that failed: refused, dropped, timed out or answered unexpectedly |
//! | `triad_store_deadline_exceeded_total` | counter | websocket requests and sign-ins answered `store_unavailable` because the store deadline passed |
//! | `triad_sessions_closing_slow` | gauge | sessions closed as too slow (4008) whose close frame is still on its way |
//! | `triad_calls` | gauge | calls in progress on this node |
//! | `triad_call_participants` | gauge | participants of this node's calls (one whose connection dropped counts during its grace period) |
//! | `triad_calls_started_total` | counter | calls started on this node |
//! | `triad_draining` | gauge | 1 from the shutdown signal until the server has stopped, else 0 |
//! | `triad_drain_closed_sessions_total` | counter | sessions told to reconnect elsewhere (1001) by a drain |
//! | `triad_sign_in_failures_total` | counter | sign-ins (`/api/auth/redeem`, `/api/auth/refresh`, `/api/auth/sign-out`) refused: unknown, used or expired codes, bad refresh tokens |
//! | `triad_rate_limited_total{limit}` | counter | REST calls answered 429: `api` (per person or peer address), `sign_in` (per peer address), `coaching` (bookings per person) |
//! | `triad_request_timeouts_total` | counter | requests whose body did not arrive in time (408) |
//! | `triad_connections_refused_total{cap}` | counter | connections refused at accept (503): `total` or `per_peer` cap reached |

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use triad_protocol::RoomKind;

use crate::store::{Appended, StoreError};

/// `triad_store_deadline_exceeded_total`.
pub const STORE_DEADLINE_EXCEEDED: &str = "triad_store_deadline_exceeded_total";
/// `triad_sessions_closing_slow`.
pub const SESSIONS_CLOSING_SLOW: &str = "triad_sessions_closing_slow";
/// `triad_build_info{version}`.
pub const BUILD_INFO: &str = "triad_build_info";
/// `triad_connections`.
pub const CONNECTIONS: &str = "triad_connections";
/// `triad_sessions{room_kind}`.
pub const SESSIONS: &str = "triad_sessions";
/// `triad_sessions_started_total`.
pub const SESSIONS_STARTED: &str = "triad_sessions_started_total";
/// `triad_sessions_resumed_total`.
pub const SESSIONS_RESUMED: &str = "triad_sessions_resumed_total";
/// `triad_messages_in_total`.
pub const MESSAGES_IN: &str = "triad_messages_in_total";
/// `triad_messages_out_total`.
pub const MESSAGES_OUT: &str = "triad_messages_out_total";
/// `triad_store_append_seconds`.
pub const APPEND_SECONDS: &str = "triad_store_append_seconds";
/// `triad_outbox_dropped_total`.
pub const OUTBOX_DROPPED: &str = "triad_outbox_dropped_total";
/// `triad_slow_consumer_closes_total`.
pub const SLOW_CONSUMER_CLOSES: &str = "triad_slow_consumer_closes_total";
/// `triad_replayed_events_total`.
pub const REPLAYED_EVENTS: &str = "triad_replayed_events_total";
/// `triad_gaps_filled_total`.
pub const GAPS_FILLED: &str = "triad_gaps_filled_total";
/// `triad_redis_errors_total`.
pub const REDIS_ERRORS: &str = "triad_redis_errors_total";
/// `triad_calls`.
pub const CALLS: &str = "triad_calls";
/// `triad_call_participants`.
pub const CALL_PARTICIPANTS: &str = "triad_call_participants";
/// `triad_calls_started_total`.
pub const CALLS_STARTED: &str = "triad_calls_started_total";
/// `triad_draining`.
pub const DRAINING: &str = "triad_draining";
/// `triad_drain_closed_sessions_total`.
pub const DRAIN_CLOSED_SESSIONS: &str = "triad_drain_closed_sessions_total";

/// `triad_sign_in_failures_total`.
pub const SIGN_IN_FAILURES: &str = "triad_sign_in_failures_total";
/// `triad_rate_limited_total{limit}`.
pub const RATE_LIMITED: &str = "triad_rate_limited_total";
/// `triad_request_timeouts_total`.
pub const REQUEST_TIMEOUTS: &str = "triad_request_timeouts_total";
/// `triad_connections_refused_total{cap}`.
pub const CONNECTIONS_REFUSED: &str = "triad_connections_refused_total";

/// Upper bounds of the append latency buckets, in seconds: an fsync on a local disk takes
/// a millisecond or a few; a Redis round trip with `appendfsync always` a few more.
const APPEND_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(APPEND_SECONDS.into()), &APPEND_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics will stay empty");
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the metrics upkeep thread");
        }
        describe();
        handle
    })
}

/// Every metric, in the Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// Gives every metric its help text and its starting value, so a scrape shows them all
/// from the start (a counter that is absent is not the same as one at 0 for alerts).
fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the server's version is in the label."
    );
    describe_gauge!(CONNECTIONS, "Websocket connections open now.");
    describe_gauge!(
        SESSIONS,
        "Signed-in sessions in rooms of each kind (once per room a session is in)."
    );
    describe_counter!(SESSIONS_STARTED, "Sessions signed in.");
    describe_counter!(
        SESSIONS_RESUMED,
        "Sessions that came back with resume points."
    );
    describe_counter!(MESSAGES_IN, "Chat messages stored for this node's clients.");
    describe_counter!(
        MESSAGES_OUT,
        "Room events written to this node's websockets."
    );
    describe_histogram!(
        APPEND_SECONDS,
        metrics::Unit::Seconds,
        "Time to store a chat message until durable."
    );
    describe_counter!(
        OUTBOX_DROPPED,
        "Frames not queued because a session's outbox was full."
    );
    describe_counter!(
        SLOW_CONSUMER_CLOSES,
        "Sessions closed because their outbox filled up (4008)."
    );
    describe_counter!(
        REPLAYED_EVENTS,
        "Events written from history when a room starts or resumes."
    );
    describe_counter!(GAPS_FILLED, "Gaps in a live stream filled from the store.");
    describe_counter!(REDIS_ERRORS, "Redis requests that failed.");
    describe_counter!(
        STORE_DEADLINE_EXCEEDED,
        "Requests answered store_unavailable because the store deadline passed."
    );
    describe_gauge!(
        SESSIONS_CLOSING_SLOW,
        "Sessions closed as too slow whose close frame is still on its way."
    );
    describe_gauge!(CALLS, "Calls in progress on this node.");
    describe_gauge!(CALL_PARTICIPANTS, "Sessions of this node in a call.");
    describe_counter!(CALLS_STARTED, "Calls started on this node.");
    describe_gauge!(DRAINING, "1 while the node drains before it exits.");
    describe_counter!(
        DRAIN_CLOSED_SESSIONS,
        "Sessions told to reconnect elsewhere by a drain (1001)."
    );

    describe_counter!(SIGN_IN_FAILURES, "Sign-ins refused.");
    describe_counter!(RATE_LIMITED, "REST calls answered 429, per limit.");
    describe_counter!(
        REQUEST_TIMEOUTS,
        "Requests whose body did not arrive in time."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused at accept, per cap reached."
    );

    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for limit in ["api", "sign_in", "coaching"] {
        counter!(RATE_LIMITED, "limit" => limit).increment(0);
    }
    for cap in ["total", "per_peer"] {
        counter!(CONNECTIONS_REFUSED, "cap" => cap).increment(0);
    }
    for kind in [RoomKind::Trio, RoomKind::Commons, RoomKind::Staff] {
        gauge!(SESSIONS, "room_kind" => kind_label(kind)).increment(0.0);
    }
    for name in [
        CONNECTIONS,
        CALLS,
        CALL_PARTICIPANTS,
        DRAINING,
        SESSIONS_CLOSING_SLOW,
    ] {
        gauge!(name).increment(0.0);
    }
    for name in [
        SESSIONS_STARTED,
        SESSIONS_RESUMED,
        MESSAGES_IN,
        MESSAGES_OUT,
        OUTBOX_DROPPED,
        SLOW_CONSUMER_CLOSES,
        REPLAYED_EVENTS,
        GAPS_FILLED,
        REDIS_ERRORS,
        STORE_DEADLINE_EXCEEDED,
        CALLS_STARTED,
        DRAIN_CLOSED_SESSIONS,
        SIGN_IN_FAILURES,
        REQUEST_TIMEOUTS,
    ] {
        counter!(name).increment(0);
    }
}

fn kind_label(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Trio => "trio",
        RoomKind::Commons => "commons",
        RoomKind::Staff => "staff",
    }
}

/// An open websocket connection, counted in `triad_connections` until dropped.
#[derive(Debug)]
#[must_use = "the connection counts only while this is held"]
pub struct Connection(());

impl Drop for Connection {
    fn drop(&mut self) {
        gauge!(CONNECTIONS).decrement(1.0);
    }
}

/// A websocket connection opened; it counts until the returned guard is dropped.
pub fn connection_opened() -> Connection {
    gauge!(CONNECTIONS).increment(1.0);
    Connection(())
}

/// A session signed in; `resumed` if its `hello` carried resume points.
pub fn session_started(resumed: bool) {
    counter!(SESSIONS_STARTED).increment(1);
    if resumed {
        counter!(SESSIONS_RESUMED).increment(1);
    }
}

/// A session entered a room of `kind` (at sign-in, or a moderator's `join`).
pub fn room_entered(kind: RoomKind) {
    gauge!(SESSIONS, "room_kind" => kind_label(kind)).increment(1.0);
}

/// A session left a room of `kind` (a moderator's `leave`, or the session ended).
pub fn room_left(kind: RoomKind) {
    gauge!(SESSIONS, "room_kind" => kind_label(kind)).decrement(1.0);
}

/// Times a chat message's append; counts it in `triad_messages_in_total` once stored
/// (a retried duplicate is not counted again).
pub async fn timed_append(
    append: impl Future<Output = Result<Appended, StoreError>>,
) -> Result<Appended, StoreError> {
    let started = Instant::now();
    let outcome = append.await;
    histogram!(APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    if matches!(&outcome, Ok(appended) if !appended.duplicate) {
        counter!(MESSAGES_IN).increment(1);
    }
    outcome
}

/// `count` room events written to a websocket.
pub fn events_written(count: u64) {
    counter!(MESSAGES_OUT).increment(count);
}

/// A frame was not queued: the session's outbox was full. `closed` if this closed the
/// session (the first drop does).
pub fn outbox_dropped(closed: bool) {
    counter!(OUTBOX_DROPPED).increment(1);
    if closed {
        counter!(SLOW_CONSUMER_CLOSES).increment(1);
    }
}

/// `count` events written from history as a room started (sign-in, resume, join).
pub fn events_replayed(count: u64) {
    counter!(REPLAYED_EVENTS).increment(count);
}

/// A gap in a room's live stream was filled from the store.
pub fn gap_filled() {
    counter!(GAPS_FILLED).increment(1);
}

/// A Redis request failed.
pub fn redis_error() {
    counter!(REDIS_ERRORS).increment(1);
}

/// A call started on this node.
pub fn call_started() {
    counter!(CALLS_STARTED).increment(1);
    gauge!(CALLS).increment(1.0);
}

/// A call on this node ended.
pub fn call_ended() {
    gauge!(CALLS).decrement(1.0);
}

/// A session of this node joined a call.
pub fn call_participant_joined() {
    gauge!(CALL_PARTICIPANTS).increment(1.0);
}

/// A session of this node left a call (or ended while in one).
pub fn call_participant_left() {
    gauge!(CALL_PARTICIPANTS).decrement(1.0);
}

/// The node started draining: readiness is off until it exits.
pub fn drain_started() {
    gauge!(DRAINING).set(1.0);
}

/// The drain is over: the server has stopped.
pub fn drain_finished() {
    gauge!(DRAINING).set(0.0);
}

/// A session was told to reconnect elsewhere (1001) by a drain.
pub fn drain_closed_session() {
    counter!(DRAIN_CLOSED_SESSIONS).increment(1);
}

/// A sign-in was refused.
pub fn sign_in_failed() {
    counter!(SIGN_IN_FAILURES).increment(1);
}

/// A REST call was answered 429 by `limit` (`api`, `sign_in` or `coaching`).
pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// A request's body did not arrive in time.
pub fn request_timed_out() {
    counter!(REQUEST_TIMEOUTS).increment(1);
}

/// A connection was refused at accept because `cap` (`total` or `per_peer`) was reached.
pub fn connection_refused(cap: &'static str) {
    counter!(CONNECTIONS_REFUSED, "cap" => cap).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_after_install() {
        let text = render();
        for name in [
            BUILD_INFO,
            CONNECTIONS,
            SESSIONS,
            SESSIONS_STARTED,
            SESSIONS_RESUMED,
            MESSAGES_IN,
            MESSAGES_OUT,
            OUTBOX_DROPPED,
            SLOW_CONSUMER_CLOSES,
            REPLAYED_EVENTS,
            GAPS_FILLED,
            REDIS_ERRORS,
            CALLS,
            CALL_PARTICIPANTS,
            CALLS_STARTED,
            DRAINING,
            DRAIN_CLOSED_SESSIONS,
            SIGN_IN_FAILURES,
            RATE_LIMITED,
            REQUEST_TIMEOUTS,
            CONNECTIONS_REFUSED,
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing from\n{text}"
            );
        }
        assert!(
            text.contains("triad_sessions{room_kind=\"trio\"}"),
            "{text}"
        );
    }

    #[test]
    fn the_module_doc_lists_every_metric() {
        let source = include_str!("metrics.rs");
        let documented: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `triad_"))
            .collect();
        let defined = source
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"triad_"))
            .count();
        assert_eq!(documented.len(), defined, "one table row per metric");
    }
}

/// A request or a sign-in was answered `store_unavailable` because the store deadline
/// passed. Logged at most once a second: in a stall every session's requests time out
/// together.
pub fn store_deadline_exceeded() {
    static LAST_LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    counter!(STORE_DEADLINE_EXCEEDED).increment(1);
    if once_a_second(&LAST_LOGGED) {
        tracing::warn!(
            "store did not answer within the deadline (counted in {STORE_DEADLINE_EXCEEDED})"
        );
    }
}

/// Whether something last let through at `last` (ms since the Unix epoch) may be logged
/// again: true at most once a second; then `last` is now.
pub fn once_a_second(last: &std::sync::atomic::AtomicU64) -> bool {
    use std::sync::atomic::Ordering;
    let now = u64::try_from(crate::store::now_ms()).unwrap_or(0);
    let before = last.load(Ordering::Relaxed);
    now.saturating_sub(before) >= 1000
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// A session closed as too slow, counted in `triad_sessions_closing_slow` until dropped.
#[derive(Debug)]
#[must_use = "the session counts only while this is held"]
pub struct ClosingSlow(());

impl Drop for ClosingSlow {
    fn drop(&mut self) {
        gauge!(SESSIONS_CLOSING_SLOW).decrement(1.0);
    }
}

/// A session closed as too slow starts waiting for its close frame to go out.
pub fn closing_slow() -> ClosingSlow {
    gauge!(SESSIONS_CLOSING_SLOW).increment(1.0);
    ClosingSlow(())
}
