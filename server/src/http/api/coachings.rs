//! `/api/coachings`: book, list, move and cancel coaching sessions.
//!
//! A session of a room the caller does not see is answered 404 `no_coaching`, exactly as
//! one that does not exist, whether it is read, moved or cancelled.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use triad_protocol::{CoachingChange, CoachingId, CoachingSession, ErrorCode, RoomId};

use super::{ApiError, ApiResult, Body, Caller};
use crate::gateway::Gateway;
use crate::schedule::{Booking, Change, ScheduleError};

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/coachings", get(list).post(book))
        .route("/coachings/{id}", get(one).patch(change))
        .route("/coachings/{id}/cancel", post(cancel))
}

#[derive(Deserialize)]
struct ListQuery {
    room: Option<RoomId>,
}

fn parse_id(id: &str) -> ApiResult<CoachingId> {
    CoachingId::new(id).map_err(|err| ApiError::new(ErrorCode::NoCoaching, err.to_string()))
}

/// `GET /api/coachings[?room=]`: sessions of the rooms the caller sees (every room, for
/// the coordinator), soonest first, ended and cancelled ones included.
async fn list(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<CoachingSession>>> {
    let programme = gateway.store.programme().await?;
    let visible: Vec<RoomId> = programme
        .rooms
        .iter()
        .filter(|room| {
            caller.0.role == triad_protocol::Role::Coordinator
                || crate::auth::access_to(room, &caller.0.id) != crate::auth::Access::None
        })
        .filter(|room| query.room.as_ref().is_none_or(|wanted| &room.id == wanted))
        .map(|room| room.id.clone())
        .collect();
    if let Some(room) = &query.room
        && visible.is_empty()
    {
        return Err(ApiError::forbidden(format!("you are not in {room}")));
    }
    let mut sessions = Vec::new();
    for room in &visible {
        sessions.extend(gateway.schedule.of_room(room).await?);
    }
    sessions.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    Ok(Json(sessions))
}

/// `GET /api/coachings/{id}`.
async fn one(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CoachingSession>> {
    let id = parse_id(&id)?;
    let session = gateway
        .schedule
        .find(&id)
        .await?
        .ok_or_else(|| ScheduleError::NoCoaching(id.clone()))?;
    let room = gateway.store.room(&session.room).await?;
    if !room.is_some_and(|room| crate::schedule::sees(&caller.0, &room)) {
        // The same answer as for a session that does not exist.
        return Err(ScheduleError::NoCoaching(id).into());
    }
    Ok(Json(session))
}

/// `POST /api/coachings`: books a session.
async fn book(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Body(booking): Body<Booking>,
) -> ApiResult<(StatusCode, Json<CoachingSession>)> {
    let session = gateway.schedule.book(&caller.0, booking).await?;
    mail_members(&gateway, &session, CoachingChange::Booked);
    Ok((StatusCode::CREATED, Json(session)))
}

/// `PATCH /api/coachings/{id}`: moves a session or changes its details.
async fn change(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(change): Body<Change>,
) -> ApiResult<Json<CoachingSession>> {
    let id = parse_id(&id)?;
    let session = gateway.schedule.change(&caller.0, &id, change).await?;
    mail_members(&gateway, &session, CoachingChange::Moved);
    Ok(Json(session))
}

/// `POST /api/coachings/{id}/cancel`: cancels a session.
async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CoachingSession>> {
    let id = parse_id(&id)?;
    let session = gateway.schedule.cancel(&caller.0, &id).await?;
    mail_members(&gateway, &session, CoachingChange::Cancelled);
    Ok(Json(session))
}

/// E-mails the session's people about a booking, move or cancellation (those who want
/// e-mail), after the answer: the change is made whether or not the mail goes out.
fn mail_members(gateway: &Arc<Gateway>, session: &CoachingSession, change: CoachingChange) {
    if !gateway.mailer.enabled() {
        return;
    }
    let gateway = gateway.clone();
    let session = session.clone();
    tokio::spawn(async move {
        let store = gateway.store.as_ref();
        let Ok(Some(room)) = store.room(&session.room).await else {
            return;
        };
        for person in crate::schedule::audience(&room) {
            let Ok(Some(info)) = store.person(&person).await else {
                continue;
            };
            if let Err(err) = gateway
                .mailer
                .reminder(&info, &session, &room.title, change)
                .await
            {
                tracing::warn!(%person, error = %err, "a coaching e-mail was not sent");
            }
        }
    });
}
