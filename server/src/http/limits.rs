//! Rate limits on the REST API (`/api`), one middleware in front of every endpoint.
//!
//! - A signed-in call (a bearer token that verifies) counts against its person's bucket
//!   (`api_rate_per_second`, `api_burst`); the peer's address does not matter, so people
//!   behind one school's NAT or one proxy do not share a budget.
//! - Any other call counts against its peer address's bucket, with the same rate.
//! - Sign-in (`/api/auth/redeem`, `/api/auth/refresh`) also counts against a much smaller
//!   bucket per peer address (`sign_in_rate_per_minute`, `sign_in_burst`), so invitation
//!   codes and refresh tokens cannot be guessed at speed.
//!
//! - Booking, moving and cancelling coaching sessions also counts against the person's
//!   bucket of coaching changes (`coaching_changes_per_hour`, `coaching_changes_burst`):
//!   each change is pushed to the room and may be e-mailed to its people.
//!
//! A refused call is answered 429 `rate_limited` with `Retry-After` (seconds). A sign-in
//! that fails (any 4xx answer but 429) is logged as a warning with the peer address (never
//! the code or token sent) and counted in `triad_sign_in_failures_total`.
//!
//! The peer address is the connection's, which behind a proxy is the proxy's: with
//! `trust_forwarded_for` the last `X-Forwarded-For` entry (the address the proxy saw) is
//! used instead. Only set that behind a proxy that appends the header, or clients choose
//! their own address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use triad_protocol::PersonId;

use super::api::ApiError;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::throttle::{Rate, RetryAfter, Throttle};

/// The paths (under `/api`) that take a credential instead of a bearer token.
const SIGN_IN_PATHS: [&str; 2] = ["/auth/redeem", "/auth/refresh"];

/// The REST limits and their buckets.
pub struct ApiLimits {
    peers: Throttle<IpAddr>,
    people: Throttle<PersonId>,
    sign_in: Throttle<IpAddr>,
    coaching_changes: Throttle<PersonId>,
    trust_forwarded_for: bool,
}

impl ApiLimits {
    /// The limits of `config`.
    pub fn from_config(config: &Config) -> Self {
        let api = Rate::per_second(config.api_rate_per_second, config.api_burst);
        Self {
            peers: Throttle::new(api),
            people: Throttle::new(api),
            sign_in: Throttle::new(Rate::new(
                config.sign_in_rate_per_minute,
                Duration::from_secs(60),
                config.sign_in_burst,
            )),
            coaching_changes: Throttle::new(Rate::new(
                config.coaching_changes_per_hour,
                Duration::from_secs(3600),
                config.coaching_changes_burst,
            )),
            trust_forwarded_for: config.trust_forwarded_for,
        }
    }

    /// The client's address: the last `X-Forwarded-For` entry if trusted and present, else
    /// the connection's peer.
    fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer.map(|peer| peer.ip())
    }
}

/// The state of the middleware.
#[derive(Clone)]
pub struct Limited {
    /// The token verifier (for the person of a call).
    pub gateway: Arc<Gateway>,
    /// The buckets.
    pub limits: Arc<ApiLimits>,
}

/// 429 `rate_limited` with `Retry-After`.
fn too_many(retry: RetryAfter, what: &str) -> Response {
    let secs = retry.secs();
    ApiError::rate_limited(format!("too many {what}; try again in {secs} s"), secs).into_response()
}

/// Whether the request books, moves or cancels a coaching session.
fn changes_coaching(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/coachings") else {
        return false;
    };
    match *method {
        Method::POST => {
            rest.is_empty() || (rest.ends_with("/cancel") && rest.matches('/').count() == 2)
        }
        Method::PATCH => rest.starts_with('/') && rest.matches('/').count() == 1,
        _ => false,
    }
}

/// The person of a bearer token that verifies, if the request has one.
fn person(gateway: &Gateway, headers: &HeaderMap) -> Option<PersonId> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    gateway
        .verifier
        .verify(token.trim())
        .ok()
        .map(|verified| verified.person)
}

/// The middleware, on `/api`.
pub async fn limit(State(state): State<Limited>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let client = state.limits.client(request.headers(), peer);
    let path = request.uri().path().to_owned();
    let sign_in = SIGN_IN_PATHS.contains(&path.as_str());
    if sign_in
        && let Some(client) = client
        && let Err(retry) = state.limits.sign_in.check(&client)
    {
        crate::metrics::rate_limited("sign_in");
        tracing::warn!(peer = %client, path, "sign-in attempts rate-limited");
        return too_many(retry, "sign-in attempts");
    }
    let caller = person(&state.gateway, request.headers());
    let checked = match &caller {
        Some(person) => state.limits.people.check(person),
        None => client.map_or(Ok(()), |client| state.limits.peers.check(&client)),
    };
    if let Err(retry) = checked {
        crate::metrics::rate_limited("api");
        return too_many(retry, "requests");
    }
    if let Some(person) = &caller
        && changes_coaching(request.method(), &path)
        && let Err(retry) = state.limits.coaching_changes.check(person)
    {
        crate::metrics::rate_limited("coaching");
        return too_many(retry, "bookings and changes of coaching sessions");
    }
    let response = next.run(request).await;
    let status = response.status();
    if sign_in && status.is_client_error() {
        crate::metrics::sign_in_failed();
        match client {
            Some(client) => {
                tracing::warn!(peer = %client, path, status = status.as_u16(), "sign-in refused");
            }
            None => tracing::warn!(path, status = status.as_u16(), "sign-in refused"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trust_forwarded_for: bool) -> ApiLimits {
        ApiLimits::from_config(&Config {
            trust_forwarded_for,
            ..Config::default()
        })
    }

    #[test]
    fn the_client_is_the_peer_unless_the_proxy_is_trusted() {
        let peer: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "198.51.100.9, 203.0.113.7".parse().unwrap(),
        );
        let own: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(limits(false).client(&headers, Some(peer)), Some(own));
        // The last entry is the one the proxy added; earlier ones the client may have sent.
        let seen: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(limits(true).client(&headers, Some(peer)), Some(seen));
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(limits(true).client(&headers, Some(peer)), Some(own));
    }

    #[test]
    fn coaching_changes_are_told_apart_from_reads() {
        assert!(changes_coaching(&Method::POST, "/coachings"));
        assert!(changes_coaching(&Method::PATCH, "/coachings/cs-1"));
        assert!(changes_coaching(&Method::POST, "/coachings/cs-1/cancel"));
        assert!(!changes_coaching(&Method::GET, "/coachings"));
        assert!(!changes_coaching(&Method::GET, "/coachings/cs-1"));
        assert!(!changes_coaching(&Method::POST, "/me/calendar"));
    }
}
