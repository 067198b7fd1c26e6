//! HTTP: the router (the websocket endpoint, health and readiness checks, the REST API, the
//! calendar feeds, the web client), the metrics router for its own listener, and
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

/// The application's routes, with the REST limits and the body deadline.
pub fn router(
    gateway: Arc<Gateway>,
    limits: Arc<limits::ApiLimits>,
    body_deadline: body::BodyDeadline,
) -> Router {
    let limited = limits::Limited {
        gateway: gateway.clone(),
        limits,
    };
    Router::new()
        .merge(web::routes())
        .route("/ws", get(gateway::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest(
            "/api",
            api::routes().layer(middleware::from_fn_with_state(limited, limits::limit)),
        )
        .merge(api::calendar::feed_routes())
        .layer(middleware::from_fn_with_state(
            body_deadline,
            body::deadline,
        ))
        .layer(middleware::from_fn(nosniff))
        .with_state(gateway)
}

/// The metrics listener's routes: `/metrics` only.
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(nosniff))
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
