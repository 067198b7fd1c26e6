//! `/api/me/preferences`: the caller's e-mail choices. The address itself comes from the
//! roster and is not changed here.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiResult, Body, Caller};
use crate::gateway::Gateway;
use crate::programme::Preferences;
use crate::programme::model::preferences;
use crate::store::Collection;
use crate::store::docs::{Docs, UpdateError};

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/me/preferences", get(read).put(change))
}

/// A change of preferences; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesChange {
    /// Reminders of coaching sessions by e-mail.
    #[serde(default)]
    email_reminders: Option<bool>,
    /// A digest of unread messages by e-mail while offline.
    #[serde(default)]
    email_digest: Option<bool>,
}

/// `GET /api/me/preferences`.
async fn read(State(gateway): State<Arc<Gateway>>, caller: Caller) -> ApiResult<Json<Preferences>> {
    Ok(Json(
        preferences(gateway.store.as_ref(), &caller.0.id).await?,
    ))
}

/// `PUT /api/me/preferences`: changes the given switches; answers the preferences now.
async fn change(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Body(change): Body<PreferencesChange>,
) -> ApiResult<Json<Preferences>> {
    let docs: Docs<'_, Preferences> = Docs::new(gateway.store.as_ref(), Collection::Preferences);
    let now = docs
        .update(caller.0.id.as_str(), |current| {
            let mut next = current.unwrap_or_default();
            if let Some(on) = change.email_reminders {
                next.email_reminders = on;
            }
            if let Some(on) = change.email_digest {
                next.email_digest = on;
            }
            Ok::<_, std::convert::Infallible>((Some(next.clone()), next))
        })
        .await
        .map_err(|err| match err {
            UpdateError::Store(err) => ApiError::from(err),
            UpdateError::Refused(never) => match never {},
        })?;
    tracing::info!(person = %caller.0.id, reminders = now.email_reminders, digest = now.email_digest, "preferences changed");
    Ok(Json(now))
}
