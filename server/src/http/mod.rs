//! HTTP: the router (the websocket endpoint, health and readiness checks, metrics, the web client)
//! and [`serve`], the accept loop with a header timeout and `TCP_NODELAY`.

pub mod api;
pub mod serve;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::gateway::{self, Gateway};

/// The application's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .merge(web::routes())
        .route("/ws", get(gateway::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api", api::routes())
        .merge(api::calendar::feed_routes())
        .with_state(gateway)
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
