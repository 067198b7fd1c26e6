//! `/api/auth`: sign in with an invitation code, refresh, sign out (of one device or of
//! every device). These take no bearer token, except signing out everywhere: the code or
//! the refresh token is the credential.
//!
//! Two kinds of client use them. A program (the CLI, the Rust client) sends the refresh
//! token in the JSON body and gets the new one back in the answer. A browser asks for the
//! refresh token to be kept in an `HttpOnly` cookie instead, by sending the
//! [`CSRF_HEADER`]: the cookie is scoped to `/api/auth`, `SameSite=Strict`, and `Secure`
//! unless the configured public URL is plain HTTP on a loopback address (the demo); more
//! than one such cookie in a request is refused and cleared; its answers
//! never carry the refresh token, so script on the page can never read it. A request that
//! uses the cookie must carry the header and come from the site's own `Origin`, so another
//! site cannot make a browser refresh or sign out (a cross-site form cannot set a header,
//! and a cross-site script that does triggers a CORS preflight this server never allows).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use triad_protocol::{ErrorCode, PersonId, Timestamp};

use super::{ApiError, ApiResult, Body, Caller};
use crate::auth::grants::Tokens;
use crate::gateway::Gateway;

/// The header a browser sends on every `/api/auth` request: it asks for the cookie, and its
/// presence proves the request was made by script of an allowed origin, not by a form.
pub const CSRF_HEADER: &str = "x-triad-csrf";
/// The cookie that holds a browser's refresh token.
pub const REFRESH_COOKIE: &str = "triad_refresh";
/// The path the cookie is sent to: the sign-in endpoints only.
pub const COOKIE_PATH: &str = "/api/auth";

/// The routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/auth/redeem", post(redeem))
        .route("/auth/refresh", post(refresh))
        .route("/auth/sign-out", post(sign_out))
        .route("/auth/sign-out-everywhere", post(sign_out_everywhere))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redeem {
    code: String,
}

/// A refresh or sign-out: the token in the body (programs), or none (the browser's cookie).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Refresh {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Tokens as a browser gets them: the refresh token stays in the cookie.
#[derive(Serialize)]
struct BrowserTokens {
    person: PersonId,
    access_token: String,
    access_expires_at: Timestamp,
    refresh_expires_at: Timestamp,
}

impl From<Tokens> for BrowserTokens {
    fn from(tokens: Tokens) -> Self {
        Self {
            person: tokens.person,
            access_token: tokens.access_token,
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
        }
    }
}

/// Whether the request asks for the browser's way (the cookie).
fn browser(headers: &HeaderMap) -> bool {
    headers.contains_key(CSRF_HEADER)
}

/// Refuses a cookie request that lacks the header or comes from another origin.
fn check_browser(headers: &HeaderMap, gateway: &Gateway) -> ApiResult<()> {
    if headers.get(CSRF_HEADER).map(HeaderValue::as_bytes) != Some(b"1".as_slice()) {
        return Err(ApiError::forbidden(
            "send X-Triad-CSRF: 1 to sign in with the cookie",
        ));
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::forbidden("a request with the cookie needs an Origin"))?;
    if !same_origin(origin, headers, gateway) {
        return Err(ApiError::forbidden("this origin may not use the cookie"));
    }
    Ok(())
}

/// Whether `origin` is the site's own: the public URL's origin or one of the allowed
/// origins, or an origin with the public URL's scheme whose host is the request's `Host`
/// (the same server reached under another name, such as a node's own address).
fn same_origin(origin: &str, headers: &HeaderMap, gateway: &Gateway) -> bool {
    origin_allowed(
        origin,
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        &gateway.settings.public_url,
        &gateway.settings.allowed_origins,
    )
}

fn origin_allowed(origin: &str, host: Option<&str>, public_url: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    let public = public_url.trim_end_matches('/');
    if origin.eq_ignore_ascii_case(public)
        || allowed
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let scheme = |url: &str| {
        url.split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
    };
    if scheme(origin).is_none() || scheme(origin) != scheme(public) {
        return false;
    }
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Whether the cookie gets `Secure`, from the configuration only: always, except when the
/// public URL is plain `http:` on a loopback address (`localhost`, `127.0.0.0/8`,
/// `[::1]`; the demo), where a browser would drop a `Secure` cookie set over HTTP.
fn secure(gateway: &Gateway) -> bool {
    secure_for(&gateway.settings.public_url)
}

fn secure_for(public_url: &str) -> bool {
    match public_url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !is_loopback_host(host)
        }
        _ => true,
    }
}

/// Whether a `Host` header names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(name, _)| name)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `Set-Cookie` value that keeps `token` until `expires_at` (or clears the cookie).
fn cookie(token: Option<&str>, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = match token {
        Some(token) => format!(
            "{REFRESH_COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
        ),
        None => format!(
            "{REFRESH_COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        ),
    };
    // Tokens are URL-safe base64: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The refresh tokens in the request's cookies: none, one, or several (a cookie set for
/// the same name by another site on a parent domain or another path, "cookie tossing").
fn cookie_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

/// What the request's cookies hold.
enum CookieToken {
    /// No refresh cookie.
    Absent,
    /// Exactly one.
    One(String),
    /// More than one: refused, since the server cannot tell which one it set.
    Several,
}

fn cookie_token(headers: &HeaderMap) -> CookieToken {
    let mut tokens = cookie_tokens(headers);
    match tokens.len() {
        0 => CookieToken::Absent,
        1 => CookieToken::One(tokens.remove(0)),
        _ => CookieToken::Several,
    }
}

/// The refusal of a request that carries more than one refresh cookie.
fn several_cookies() -> ApiError {
    ApiError::new(
        ErrorCode::TokenInvalid,
        "this browser holds more than one sign-in cookie; open a sign-in link",
    )
}

/// Whether a refusal of a refresh means the cookie is no good (and is cleared): a server
/// fault or an outage keeps it, since it may still be good.
fn clears_cookie(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::TokenRevoked
            | ErrorCode::TokenInvalid
            | ErrorCode::UnknownPerson
            | ErrorCode::NotAuthenticated
    )
}

/// A browser's answer: the tokens without the refresh token, and the cookie that holds it.
fn browser_answer(tokens: Tokens, gateway: &Gateway) -> Response {
    let now = crate::store::now_ms();
    let max_age = (tokens.refresh_expires_at - now).max(0) / 1000;
    let set = cookie(Some(&tokens.refresh_token), max_age, secure(gateway));
    let mut response = Json(BrowserTokens::from(tokens)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, set);
    response
}

/// A response with the cookie cleared.
fn clearing(mut response: Response, gateway: &Gateway) -> Response {
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(None, 0, secure(gateway)));
    response
}

/// `POST /api/auth/redeem {code}`: an invitation, once, for tokens (in the cookie, for a
/// browser).
async fn redeem(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Body(body): Body<Redeem>,
) -> ApiResult<Response> {
    if browser(&headers) {
        check_browser(&headers, &gateway)?;
        let tokens = gateway.grants.redeem(&body.code).await?;
        // Signing in over an earlier sign-in of this browser ends that one.
        for earlier in cookie_tokens(&headers) {
            if let Err(err) = gateway.grants.sign_out(&earlier).await {
                tracing::warn!(error = %err, "the earlier sign-in of a browser was not ended");
            }
        }
        return Ok(browser_answer(tokens, &gateway));
    }
    Ok(Json(gateway.grants.redeem(&body.code).await?).into_response())
}

/// `POST /api/auth/refresh {refresh_token}` (or `{}` with the cookie): new tokens; the old
/// refresh token stops working. A refused cookie is cleared.
async fn refresh(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Body(body): Body<Refresh>,
) -> Response {
    if let Some(token) = body.refresh_token {
        return match gateway.grants.refresh(&token).await {
            Ok(tokens) => Json(tokens).into_response(),
            Err(err) => ApiError::from(err).into_response(),
        };
    }
    if let Err(refused) = check_browser(&headers, &gateway) {
        return refused.into_response();
    }
    let token = match cookie_token(&headers) {
        CookieToken::One(token) => token,
        CookieToken::Absent => {
            return ApiError::new(
                ErrorCode::NotAuthenticated,
                "this browser is not signed in; open a sign-in link",
            )
            .into_response();
        }
        CookieToken::Several => {
            return clearing(several_cookies().into_response(), &gateway);
        }
    };
    match gateway.grants.refresh(&token).await {
        Ok(tokens) => browser_answer(tokens, &gateway),
        Err(err) => {
            let code = err.code();
            let refused = ApiError::from(err).into_response();
            if clears_cookie(code) {
                clearing(refused, &gateway)
            } else {
                refused
            }
        }
    }
}

/// `POST /api/auth/sign-out {refresh_token}` (or `{}` with the cookie): forgets the refresh
/// token and clears the cookie.
async fn sign_out(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Body(body): Body<Refresh>,
) -> ApiResult<Response> {
    if let Some(token) = body.refresh_token {
        gateway.grants.sign_out(&token).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    check_browser(&headers, &gateway)?;
    // Every refresh cookie presented is signed out, however many there are.
    for token in cookie_tokens(&headers) {
        gateway.grants.sign_out(&token).await?;
    }
    Ok(clearing(StatusCode::NO_CONTENT.into_response(), &gateway))
}

/// `POST /api/auth/sign-out-everywhere` (bearer token): voids every token of the caller on
/// every device, closes their connections (4009) and clears this browser's cookie.
async fn sign_out_everywhere(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
) -> ApiResult<Response> {
    gateway.grants.sign_out_everywhere(&caller.0.id).await?;
    Ok(clearing(StatusCode::NO_CONTENT.into_response(), &gateway))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "triad.example.org",
            "10.0.0.1:80",
            "[2001:db8::1]:443",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; triad_refresh=abc-DEF_1; b=2"),
        );
        assert!(matches!(cookie_token(&headers), CookieToken::One(t) if t == "abc-DEF_1"));
        headers.insert(header::COOKIE, HeaderValue::from_static("triad_refresh="));
        assert!(matches!(cookie_token(&headers), CookieToken::Absent));
    }

    #[test]
    fn several_refresh_cookies_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("triad_refresh=mine; triad_refresh=tossed"),
        );
        assert!(matches!(cookie_token(&headers), CookieToken::Several));
        // Also across two Cookie headers (HTTP/2 sends one per cookie).
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("triad_refresh=mine"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("triad_refresh=tossed"),
        );
        assert!(matches!(cookie_token(&headers), CookieToken::Several));
        assert_eq!(cookie_tokens(&headers), ["mine", "tossed"]);
        assert!(clears_cookie(several_cookies().code));
    }

    #[test]
    fn a_server_fault_keeps_the_cookie() {
        for code in [
            ErrorCode::TokenRevoked,
            ErrorCode::TokenInvalid,
            ErrorCode::UnknownPerson,
            ErrorCode::NotAuthenticated,
        ] {
            assert!(clears_cookie(code), "{code:?}");
        }
        for code in [
            ErrorCode::Internal,
            ErrorCode::StoreUnavailable,
            ErrorCode::RateLimited,
            ErrorCode::InvalidRequest,
            ErrorCode::Forbidden,
        ] {
            assert!(!clears_cookie(code), "{code:?}");
        }
    }

    #[test]
    fn secure_is_decided_by_the_public_url() {
        assert!(secure_for("https://triad.example.org"));
        assert!(secure_for("https://127.0.0.1:8443"));
        assert!(secure_for("http://triad.example.org"));
        assert!(secure_for("http://0.0.0.0:8080"));
        assert!(!secure_for("http://127.0.0.1:8080"));
        assert!(!secure_for("http://localhost:8080/"));
        assert!(!secure_for("http://[::1]:8080"));
        assert!(secure_for("http://localhost.evil:8080"));
    }

    #[test]
    fn the_host_fallback_compares_the_scheme() {
        let public = "https://triad.example.org";
        let allowed = ["https://other.example.org".to_owned()];
        let host = Some("node-1.example.org:8443");
        assert!(origin_allowed(
            "https://triad.example.org",
            None,
            public,
            &allowed
        ));
        assert!(origin_allowed(
            "https://other.example.org/",
            None,
            public,
            &allowed
        ));
        assert!(origin_allowed(
            "https://node-1.example.org:8443",
            host,
            public,
            &allowed
        ));
        // The same host over plain HTTP is another origin.
        assert!(!origin_allowed(
            "http://node-1.example.org:8443",
            host,
            public,
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            host,
            public,
            &allowed
        ));
        assert!(!origin_allowed("null", host, public, &allowed));
        let demo = "http://127.0.0.1:8080";
        assert!(origin_allowed(
            "http://127.0.0.1:9000",
            Some("127.0.0.1:9000"),
            demo,
            &[]
        ));
        assert!(!origin_allowed(
            "https://127.0.0.1:9000",
            Some("127.0.0.1:9000"),
            demo,
            &[]
        ));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let set = cookie(Some("tok"), 60, true);
        assert_eq!(
            set.to_str().unwrap(),
            "triad_refresh=tok; Path=/api/auth; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let cleared = cookie(None, 0, false);
        assert_eq!(
            cleared.to_str().unwrap(),
            "triad_refresh=; Path=/api/auth; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }
}
