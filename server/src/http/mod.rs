//! HTTP: the router (the websocket endpoint, health and readiness checks, the REST API, the
//! calendar feeds, the web client), the metrics router for its own listener (metrics and
//! the health and readiness checks again), and
//! [`serve`], the accept loop with a header timeout, connection caps and `TCP_NODELAY`.
//!
//! Every response carries `X-Content-Type-Options: nosniff`; every request's body is read
//! within a deadline ([`body`]); `/api` is rate-limited ([`limits`]).

pub mod api;
pub mod body;
pub mod limits;
pub mod serve;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::gateway::{self, Gateway};

/// The application's routes, with the REST limits and the body deadline. On `/api` the
/// limits come first: a call over its limit is answered before its body is read.
pub fn router(
    gateway: Arc<Gateway>,
    limits: Arc<limits::ApiLimits>,
    body_deadline: body::BodyDeadline,
) -> Router {
    let limited = limits::Limited {
        gateway: gateway.clone(),
        limits,
    };
    let read_body = middleware::from_fn_with_state(body_deadline, body::deadline);
    Router::new()
        .merge(web::routes())
        .route("/ws", get(gateway::upgrade))
        .merge(probes())
        .merge(api::calendar::feed_routes())
        .layer(read_body.clone())
        .nest(
            "/api",
            api::routes()
                .layer(read_body)
                .layer(middleware::from_fn_with_state(limited, limits::limit)),
        )
        .layer(middleware::from_fn(nosniff))
        .with_state(gateway)
}

/// `/healthz` and `/readyz`, served on the public listener and on the metrics listener.
fn probes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The metrics listener's routes: `/metrics`, and the probes (`/healthz`, `/readyz`), so
/// an orchestrator's probes do not go through the public listener's connection caps.
pub fn metrics_router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .merge(probes())
        .layer(middleware::from_fn(nosniff))
        .with_state(gateway)
}

/// `X-Content-Type-Options: nosniff` on every response: browsers take each body for its
/// declared type only.
async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answered its last probe and the server is not draining or shutting
/// down. Answered at once, from the probe's outcome, never by waiting on the store.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    if gateway.draining.is_cancelled() || gateway.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if !gateway.readiness.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Prometheus metrics (see [`crate::metrics`] for what each one means).
async fn metrics() -> impl IntoResponse {
    let text = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, text)], crate::metrics::render())
}
