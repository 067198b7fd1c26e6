//! `/api/auth`: sign in with an invitation code, refresh, sign out. These take no bearer
//! token: the code or refresh token is the credential.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiResult, Body};
use crate::auth::grants::Tokens;
use crate::gateway::Gateway;

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/auth/redeem", post(redeem))
        .route("/auth/refresh", post(refresh))
        .route("/auth/sign-out", post(sign_out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redeem {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

/// `POST /api/auth/redeem {code}`: an invitation, once, for tokens.
async fn redeem(
    State(gateway): State<Arc<Gateway>>,
    Body(body): Body<Redeem>,
) -> ApiResult<Json<Tokens>> {
    Ok(Json(gateway.grants.redeem(&body.code).await?))
}

/// `POST /api/auth/refresh {refresh_token}`: new tokens; the old refresh token stops
/// working.
async fn refresh(
    State(gateway): State<Arc<Gateway>>,
    Body(body): Body<Refresh>,
) -> ApiResult<Json<Tokens>> {
    Ok(Json(gateway.grants.refresh(&body.refresh_token).await?))
}

/// `POST /api/auth/sign-out {refresh_token}`: forgets the refresh token.
async fn sign_out(
    State(gateway): State<Arc<Gateway>>,
    Body(body): Body<Refresh>,
) -> ApiResult<StatusCode> {
    gateway.grants.sign_out(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
