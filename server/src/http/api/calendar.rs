//! The calendar feed: `POST /api/me/calendar` creates or renews the caller's secret feed
//! URL; `GET /calendar/{key}.ics` (no bearer token: calendar programs cannot send one; the
//! key is the credential) serves the feed. See [`crate::schedule::calendar`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiError, ApiResult, Caller};
use crate::gateway::Gateway;
use crate::schedule::calendar;

/// The API route, nested under `/api`.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/me/calendar", post(rotate))
}

/// The feed route, at the server's root.
pub fn feed_routes() -> Router<Arc<Gateway>> {
    Router::new().route("/calendar/{file}", get(feed))
}

/// The answer to a new feed key.
#[derive(Debug, Serialize)]
struct FeedUrl {
    /// The feed's path on this server, `/calendar/<key>.ics`.
    url: String,
}

/// `POST /api/me/calendar`: a new secret feed URL for the caller; the previous one stops
/// working.
async fn rotate(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<FeedUrl>)> {
    let key = calendar::rotate_key(gateway.store.as_ref(), &caller.0.id).await?;
    tracing::info!(person = %caller.0.id, "calendar feed key renewed");
    Ok((
        StatusCode::CREATED,
        Json(FeedUrl {
            url: format!("/calendar/{key}.ics"),
        }),
    ))
}

/// `GET /calendar/{key}.ics`: the feed of the key's owner; 404 for any other key.
async fn feed(
    State(gateway): State<Arc<Gateway>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("no such calendar");
    let key = file.strip_suffix(".ics").ok_or_else(unknown)?;
    let store = gateway.store.as_ref();
    let person = calendar::key_owner(store, key).await?.ok_or_else(unknown)?;
    let person = store.person(&person).await?.ok_or_else(unknown)?;
    let text = calendar::feed(store, &person, gateway.mailer.public_url()).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        text,
    )
        .into_response())
}
