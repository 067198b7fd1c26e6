//! `/api/programme`, `/api/roster`, `/api/invitations`, `/api/people`: the coordinator's
//! view and changes of the programme.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use triad_protocol::{ErrorCode, PersonId, PersonInfo, RoomId, RoomKind, Timestamp};

use super::{ApiError, ApiResult, Body, Caller, ProblemBody};
use crate::gateway::Gateway;
use crate::programme::admin::{self, ImportSummary};
use crate::programme::edit::{CycleEntry, PersonEntry, RegionEntry, RosterDoc, TrioEntry};
use crate::programme::{Cycle, Region, Roster, model};

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/programme", get(programme))
        .route("/roster", put(roster).get(roster_file))
        .route("/people/{id}", put(put_person).delete(delete_person))
        .route("/trios/{id}", put(put_trio).delete(delete_trio))
        .route("/cycles/{id}", put(put_cycle))
        .route("/regions/{id}", put(put_region))
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
    apply(&gateway, &caller, &text, true).await
}

/// `GET /api/roster` (coordinator): the programme as a roster file, to edit and apply.
async fn roster_file(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> ApiResult<([(header::HeaderName, &'static str); 1], String)> {
    caller.coordinator()?;
    let doc = RosterDoc::current(gateway.store.as_ref()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        doc.to_toml(),
    ))
}

/// Validates a roster text whole and applies it. `lines`: whether the problems' lines
/// mean anything to the caller (not for a roster written from a JSON change).
async fn apply(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    text: &str,
    lines: bool,
) -> ApiResult<Json<ImportSummary>> {
    let roster = Roster::parse(text).map_err(|err| ApiError {
        problems: err
            .problems
            .iter()
            .map(|p| ProblemBody {
                line: lines.then_some(p.line),
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
            format!("the change leaves out {}, who is making it", caller.0.id),
        ));
    }
    let summary = admin::apply_roster(gateway.store.as_ref(), Some(&gateway.grants), &roster).await;
    gateway.programme.invalidate();
    let summary = summary?;
    tracing::info!(by = %caller.0.id, people = summary.people, trios = summary.trios, removed = summary.removed.len(), "programme changed");
    Ok(Json(summary))
}

/// Applies one change to the current programme, through the roster's validation.
async fn change(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    edit: impl FnOnce(&mut RosterDoc) -> ApiResult<()>,
) -> ApiResult<Json<ImportSummary>> {
    caller.coordinator()?;
    let mut doc = RosterDoc::current(gateway.store.as_ref()).await?;
    edit(&mut doc)?;
    apply(gateway, caller, &doc.to_toml(), false).await
}

/// A person as `PUT /api/people/{id}` takes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonBody {
    name: String,
    role: triad_protocol::Role,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    school: String,
    time_zone: String,
    #[serde(default)]
    email: Option<String>,
}

/// `PUT /api/people/{id}` (coordinator): adds or replaces a person.
async fn put_person(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<PersonBody>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        doc.put_person(PersonEntry {
            id,
            name: body.name,
            role: body.role,
            region: body.region,
            school: body.school,
            time_zone: body.time_zone,
            email: body.email,
        });
        Ok(())
    })
    .await
}

/// `DELETE /api/people/{id}` (coordinator): removes a person from the programme (and from
/// their trio, which is then refused as a trio of two until it is changed too); their
/// connections close at once.
async fn delete_person(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        if doc.remove_person(&id) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no person {id}")))
        }
    })
    .await
}

/// A trio as `PUT /api/trios/{id}` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrioBody {
    #[serde(default)]
    title: Option<String>,
    heads: Vec<String>,
    #[serde(default)]
    moderators: Vec<String>,
}

/// `PUT /api/trios/{id}` (coordinator): adds or replaces a trio and its moderators.
async fn put_trio(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<TrioBody>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        doc.put_trio(TrioEntry {
            id,
            title: body.title,
            heads: body.heads,
            moderators: body.moderators,
        });
        Ok(())
    })
    .await
}

/// `DELETE /api/trios/{id}` (coordinator): dissolves a trio; its room keeps its history.
async fn delete_trio(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        if doc.remove_trio(&id) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no trio {id}")))
        }
    })
    .await
}

/// A cycle as `PUT /api/cycles/{id}` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CycleBody {
    name: String,
    starts: String,
    ends: String,
    host_region: String,
}

/// `PUT /api/cycles/{id}` (coordinator): adds or replaces a cycle.
async fn put_cycle(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<CycleBody>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        doc.put_cycle(CycleEntry {
            id,
            name: body.name,
            starts: body.starts,
            ends: body.ends,
            host_region: body.host_region,
        });
        Ok(())
    })
    .await
}

/// A region as `PUT /api/regions/{id}` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionBody {
    name: String,
}

/// `PUT /api/regions/{id}` (coordinator): adds or renames a region.
async fn put_region(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<RegionBody>,
) -> ApiResult<Json<ImportSummary>> {
    change(&gateway, &caller, |doc| {
        doc.put_region(RegionEntry {
            id,
            name: body.name,
        });
        Ok(())
    })
    .await
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
