//! `/api/reports`: a trio's cycle report, as Markdown, HTML or CSV.
//!
//! `GET /api/reports/{room}/{cycle}?format=md|html|csv` (Markdown when left out). The
//! coordinator may read every trio's report, a moderator the reports of the trios assigned
//! to them; anyone else is refused with `forbidden`. An unknown room or cycle (or a room
//! that is not a trio) is `not_found`. An assigned moderator who has not joined the trio's
//! room gets the report without the pinned messages' text (they cannot read the room).
//!
//! Reports carry a strict Content-Security-Policy (with `sandbox`); the HTML one is shown
//! inline, Markdown and CSV are downloads (`Content-Disposition: attachment`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use triad_protocol::{Role, RoomId};

use super::{ApiError, ApiResult, Caller};
use crate::gateway::Gateway;
use crate::report::{self, Format, ReportError};

/// The policy of a report: nothing may load or run; the page's inline style applies; the
/// document is sandboxed (a unique origin, no scripts, no forms, no top navigation).
pub const REPORT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; sandbox";

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/reports/{room}/{cycle}", get(cycle_report))
}

#[derive(Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::UnknownRoom(_) | ReportError::NotATrio(_) => {
                Self::not_found(err.to_string())
            }
            ReportError::Store(err) => err.into(),
        }
    }
}

/// `GET /api/reports/{room}/{cycle}[?format=md|html|csv]`.
async fn cycle_report(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    Path((room, cycle)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Response> {
    let format: Format = match query.format.as_deref() {
        None => Format::Markdown,
        Some(name) => name
            .parse()
            .map_err(|err: report::UnknownFormat| ApiError::invalid(err.to_string()))?,
    };
    if !matches!(caller.0.role, Role::Coordinator | Role::Moderator) {
        return Err(ApiError::forbidden(
            "reports are for the coordinator and the trio's moderators",
        ));
    }
    let room = RoomId::new(room).map_err(|_| ApiError::not_found("no such room"))?;
    let record = gateway
        .store
        .room(&room)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no room {room}")))?;
    if caller.0.role == Role::Moderator && !record.moderators.contains(&caller.0.id) {
        return Err(ApiError::forbidden(format!(
            "you are not a moderator of {room}"
        )));
    }
    let cycle = crate::programme::model::cycle(gateway.store.as_ref(), &cycle)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cycle {cycle:?}")))?;
    let mut report = report::build(
        gateway.store.as_ref(),
        &gateway.schedule,
        &room,
        &cycle,
        crate::store::now_ms(),
    )
    .await?;
    // An assigned moderator who has not joined the trio's room cannot read it: the report
    // keeps the counts and attendance but not the pinned messages' text.
    if crate::auth::access_to(&record, &caller.0.id)
        == (crate::auth::Access::Moderator { joined: false })
    {
        report.withhold_pins();
    }
    let file = format!(
        "report-{room}-{}.{}",
        file_safe(&cycle.id),
        format.extension()
    );
    // HTML is shown in the browser, on the app's origin: sandboxed, no scripts, no
    // requests, its own inline style only. Markdown and CSV are downloads.
    let disposition = match format {
        Format::Html => "inline",
        Format::Markdown | Format::Csv => "attachment",
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; filename=\"{file}\""),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                REPORT_CONTENT_SECURITY_POLICY.to_string(),
            ),
        ],
        report.render(format),
    )
        .into_response())
}

/// `id` with everything but ASCII letters, digits, `.`, `_` and `-` taken out, for a file
/// name in a header.
fn file_safe(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}
