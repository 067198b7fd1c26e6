//! `/api/programme`, `/api/roster`, `/api/invitations`, `/api/people`: the coordinator's
//! view and changes of the programme.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use triad_protocol::{ErrorCode, PersonId, PersonInfo, RoomId, RoomKind, Timestamp};

use super::{ApiError, ApiResult, Body, Caller, ProblemBody};
use crate::gateway::Gateway;
use crate::programme::admin::{self, ImportSummary};
use crate::programme::{Cycle, Region, Roster, model};

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/programme", get(programme))
        .route("/roster", put(roster))
        .route("/invitations", post(invite))
        .route("/people/{id}/revoke", post(revoke))
}

/// A room as the coordinator sees it.
#[derive(Serialize)]
struct RoomView {
    id: RoomId,
    kind: RoomKind,
    title: String,
    members: Vec<PersonId>,
    moderators: Vec<PersonId>,
}

/// A person as the coordinator sees them.
#[derive(Serialize)]
struct PersonView {
    #[serde(flatten)]
    info: PersonInfo,
    email: Option<String>,
    removed: bool,
}

/// The whole programme.
#[derive(Serialize)]
struct ProgrammeView {
    regions: Vec<Region>,
    cycles: Vec<Cycle>,
    people: Vec<PersonView>,
    rooms: Vec<RoomView>,
}

/// `GET /api/programme` (coordinator): regions, cycles, people and rooms.
async fn programme(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> ApiResult<Json<ProgrammeView>> {
    caller.coordinator()?;
    let store = gateway.store.as_ref();
    let programme = store.programme().await?;
    let mut people = Vec::with_capacity(programme.people.len());
    for info in programme.people {
        let email = model::preferences(store, &info.id).await?.email;
        let removed = admin::is_removed(store, &info.id).await?;
        people.push(PersonView {
            info,
            email,
            removed,
        });
    }
    people.sort_by(|a, b| a.info.id.cmp(&b.info.id));
    let mut rooms: Vec<RoomView> = programme
        .rooms
        .into_iter()
        .map(|room| RoomView {
            id: room.id,
            kind: room.kind,
            title: room.title,
            members: room.members,
            moderators: room.moderators,
        })
        .collect();
    rooms.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(ProgrammeView {
        regions: model::regions(store).await?,
        cycles: model::cycles(store).await?,
        people,
        rooms,
    }))
}

/// `PUT /api/roster` (coordinator), the roster TOML as the body: validates it whole and
/// applies it, or refuses it with every problem and its line.
async fn roster(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    text: String,
) -> ApiResult<Json<ImportSummary>> {
    caller.coordinator()?;
    let roster = Roster::parse(&text).map_err(|err| ApiError {
        problems: err
            .problems
            .iter()
            .map(|p| ProblemBody {
                line: Some(p.line),
                field: p.field.clone(),
                message: p.message.clone(),
            })
            .collect(),
        ..ApiError::new(
            ErrorCode::RosterInvalid,
            format!("the roster has {} problem(s)", err.problems.len()),
        )
    })?;
    if !roster.programme.people.iter().any(|p| p.id == caller.0.id) {
        return Err(ApiError::new(
            ErrorCode::RosterInvalid,
            format!("the roster leaves out {}, who is applying it", caller.0.id),
        ));
    }
    let summary = admin::apply_roster(gateway.store.as_ref(), Some(&gateway.grants), &roster).await;
    gateway.programme.invalidate();
    let summary = summary?;
    tracing::info!(by = %caller.0.id, people = summary.people, trios = summary.trios, removed = summary.removed.len(), "roster applied");
    Ok(Json(summary))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    person: PersonId,
    /// Hours the link lasts [default: the server's setting, 7 days].
    #[serde(default)]
    ttl_hours: Option<u64>,
}

#[derive(Serialize)]
struct Invited {
    person: PersonId,
    code: String,
    /// The sign-in link: the web client redeems the code in the fragment.
    url: String,
    expires_at: Timestamp,
}

/// `POST /api/invitations {person, ttl_hours?}` (coordinator): a single-use sign-in link.
async fn invite(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Body(body): Body<InviteBody>,
) -> ApiResult<(StatusCode, Json<Invited>)> {
    caller.coordinator()?;
    let ttl = match body.ttl_hours {
        Some(0) | Some(10_000..) => {
            return Err(ApiError::invalid("ttl_hours must be 1 to 9999"));
        }
        Some(hours) => Some(Duration::from_secs(hours * 3600)),
        None => None,
    };
    let invitation = match gateway.grants.invite(&body.person, &caller.0.id, ttl).await {
        Err(crate::auth::GrantError::UnknownPerson(person)) => {
            return Err(ApiError::not_found(format!(
                "no person {person} in the programme"
            )));
        }
        other => other?,
    };
    let url = format!(
        "{}/#invite={}",
        gateway.settings.public_url.trim_end_matches('/'),
        invitation.code
    );
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            person: invitation.person,
            code: invitation.code,
            url,
            expires_at: invitation.expires_at,
        }),
    ))
}

/// `POST /api/people/{id}/revoke` (coordinator): voids the person's tokens and closes
/// their connections now.
async fn revoke(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.coordinator()?;
    let person = PersonId::new(id).map_err(|err| ApiError::not_found(err.to_string()))?;
    if gateway.store.person(&person).await?.is_none() {
        return Err(ApiError::not_found(format!("no person {person}")));
    }
    gateway.grants.revoke(&person).await?;
    Ok(StatusCode::NO_CONTENT)
}
