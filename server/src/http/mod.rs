//! HTTP: the router (the websocket endpoint, health and readiness checks, the start page)
//! and [`serve`], the accept loop with a header timeout and `TCP_NODELAY`.

pub mod serve;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::gateway::{self, Gateway};

/// The application's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ws", get(gateway::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(gateway)
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers and the server is not shutting down.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    if gateway.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !gateway.store.ready().await {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}
