//! The REST API under `/api`: JSON in and out, for the coordinator's programme changes,
//! invitations and sign-in, coaching sessions, preferences, calendars and reports.
//!
//! Every endpoint but sign-in takes `Authorization: Bearer <access token>` ([`Caller`]);
//! every refusal is a JSON [`ApiError`] with a protocol [`ErrorCode`] and, for rosters, each
//! problem with its line. `docs/api.md` documents every endpoint.

pub mod auth;
pub mod calendar;
pub mod coachings;
pub mod me;
pub mod programme;
pub mod reports;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use triad_protocol::limits::MAX_ERROR_MESSAGE_CHARS;
use triad_protocol::{ErrorCode, PersonInfo, Role};

use crate::auth::{GrantError, Verified};
use crate::gateway::Gateway;
use crate::schedule::ScheduleError;
use crate::store::StoreError;

/// The API's routes, nested under `/api` by the caller.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .merge(auth::routes())
        .merge(programme::routes())
        .merge(coachings::routes())
        .merge(calendar::routes())
        .merge(me::routes())
        .merge(reports::routes())
}

/// One problem of a refused roster or programme change.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// 1-based line of the roster, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A refusal: the HTTP status, a protocol code and a message (and problems, for rosters).
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Each problem, for a roster or a programme change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
    /// Seconds to wait before trying again, sent as `Retry-After` (for `rate_limited`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with the status that fits `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
            problems: Vec::new(),
            retry_after: None,
        }
    }

    /// `rate_limited`, to be tried again after `secs` seconds.
    pub fn rate_limited(message: impl Into<String>, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// The caller's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The body is not what the endpoint takes.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

/// The HTTP status of a protocol error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotAuthenticated
        | ErrorCode::TokenExpired
        | ErrorCode::TokenInvalid
        | ErrorCode::TokenRevoked
        | ErrorCode::UnknownPerson => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::NotAMember | ErrorCode::JoinRequired => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::NotFound | ErrorCode::UnknownRoom | ErrorCode::NoCoaching => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::InvitationInvalid => StatusCode::NOT_FOUND,
        ErrorCode::InvitationUsed | ErrorCode::InvitationExpired => StatusCode::GONE,
        ErrorCode::CoachingOverlap | ErrorCode::Conflict | ErrorCode::CoachingCancelled => {
            StatusCode::CONFLICT
        }
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyCoachings => StatusCode::CONFLICT,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// `text` cut to [`MAX_ERROR_MESSAGE_CHARS`], ending with `…` where it was cut: error
/// messages may repeat a client's input, and never more of it than this.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_MESSAGE_CHARS - 1) {
        Some((at, _)) if text[at..].chars().nth(1).is_some() => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        self.message = bounded(&self.message);
        for problem in &mut self.problems {
            problem.field = bounded(&problem.field);
            problem.message = bounded(&problem.message);
        }
        let mut response = (self.status, Json(&self)).into_response();
        // For the middleware in front (which refusals count as failed sign-ins).
        response.extensions_mut().insert(self.code);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UnknownRoom(room) => {
                Self::new(ErrorCode::UnknownRoom, format!("no room {room}"))
            }
            StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            other => {
                tracing::warn!(error = %other, "an API request failed in the store");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the store is not answering; try again shortly",
                )
            }
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(err: GrantError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<ScheduleError> for ApiError {
    fn from(err: ScheduleError) -> Self {
        match err {
            ScheduleError::Store(err) => err.into(),
            err => Self::new(err.code(), err.to_string()),
        }
    }
}

/// The result of an endpoint.
pub type ApiResult<T> = Result<T, ApiError>;

/// JSON body parsing with refusals in the API's own shape.
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// The verified bearer token of a call, put in the request's extensions by the rate limits
/// ([`super::limits`]) so that [`Caller`] need not verify it again.
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub Verified);

/// The person calling, from their bearer token: verified, not revoked, in the programme.
pub struct Caller(pub PersonInfo);

impl Caller {
    /// Refuses anyone but the coordinator.
    pub fn coordinator(&self) -> ApiResult<()> {
        if self.0.role == Role::Coordinator {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the coordinator may do this"))
        }
    }
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gateway: &Arc<Gateway>,
    ) -> Result<Self, ApiError> {
        // Verified once, by the rate limits in front of every endpoint.
        let verified = match parts.extensions.get::<VerifiedToken>() {
            Some(VerifiedToken(verified)) => verified.clone(),
            None => {
                let token = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::NotAuthenticated,
                            "send Authorization: Bearer <access token>",
                        )
                    })?;
                gateway
                    .verifier
                    .verify(token.trim())
                    .map_err(|err| ApiError::new(err.code(), err.to_string()))?
            }
        };
        gateway.grants.check(&verified).await?;
        let person = gateway
            .store
            .person(&verified.person)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownPerson,
                    format!("{} is not in the programme", verified.person),
                )
            })?;
        Ok(Self(person))
    }
}
