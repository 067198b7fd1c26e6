//! Rate limits on the REST API (`/api`), one middleware in front of every endpoint.
//!
//! - A signed-in call (a bearer token that verifies) counts against its person's bucket
//!   (`api_rate_per_second`, `api_burst`); the peer's address does not matter, so people
//!   behind one school's NAT or one proxy do not share a budget.
//! - Any other call counts against its peer address's bucket, with the same rate.
//! - Sign-in (`/api/auth/redeem`, `/api/auth/refresh`, `/api/auth/sign-out`) also counts
//!   against a much smaller bucket per peer address (`sign_in_rate_per_minute`,
//!   `sign_in_burst`), so invitation codes and refresh tokens cannot be guessed at speed.
//!   Only a sign-in that refuses a credential that was presented (answered
//!   `invitation_invalid`, `invitation_used`, `invitation_expired`, `token_invalid` or
//!   `token_revoked`) takes a token: a signed-out page load without a cookie, a refused
//!   CSRF header or origin, or a malformed body does not. The bucket is checked before,
//!   charged after. So people behind one school's NAT, refreshing on every
//!   page load, are never refused, while guessing stays limited. Failures let through
//!   together are all charged, the bucket going below empty (down to minus its burst).
//!
//! - Booking, moving and cancelling coaching sessions also counts against the person's
//!   bucket of coaching changes (`coaching_changes_per_hour`, `coaching_changes_burst`):
//!   each change is pushed to the room and may be e-mailed to its people.
//!
//! A refused call is answered 429 `rate_limited` with `Retry-After` (seconds), counted in
//! `triad_rate_limited_total` and logged at debug only. A sign-in that fails (one of the
//! codes above) is counted in `triad_sign_in_failures_total` and logged as a warning
//! with the peer address (never the code or token sent), at most once a minute per
//! address (the others at debug).
//!
//! The peer address is the connection's, which behind a proxy is the proxy's: with
//! `trust_forwarded_for` the last `X-Forwarded-For` entry (the address the proxy saw, as
//! `addr`, `v4:port` or `[v6]:port`) is used instead. Only set that behind a proxy that
//! appends the header, or clients choose their own address. Without it, the first request
//! carrying the header is logged as a warning (once per process): everyone behind that
//! proxy would share one address's budget. Addresses are keyed by
//! [`crate::throttle::client_key`] (IPv6 by its /64).
//!
//! The middleware puts the verified token of a signed-in call in the request's extensions
//! ([`VerifiedToken`]), so the handlers' [`super::api::Caller`] does not verify it again.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use triad_protocol::{ErrorCode, PersonId};

use super::api::{ApiError, VerifiedToken};
use crate::auth::Verified;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::throttle::{Rate, RetryAfter, Throttle, client_key};

/// The paths (under `/api`) that take a credential instead of a bearer token.
const SIGN_IN_PATHS: [&str; 3] = ["/auth/redeem", "/auth/refresh", "/auth/sign-out"];

/// The REST limits and their buckets.
pub struct ApiLimits {
    peers: Throttle<IpAddr>,
    people: Throttle<PersonId>,
    sign_in: Throttle<IpAddr>,
    coaching_changes: Throttle<PersonId>,
    /// Refused sign-ins logged as warnings: one a minute per address.
    sign_in_warnings: Throttle<IpAddr>,
    trust_forwarded_for: bool,
}

/// Warns, once per process, that `X-Forwarded-For` arrives but is not trusted.
static UNTRUSTED_FORWARDED_FOR: Once = Once::new();

/// The address of an `X-Forwarded-For` entry: `addr`, `v4:port` or `[v6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
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
            sign_in_warnings: Throttle::new(Rate::new(1, Duration::from_secs(60), 1)),
            trust_forwarded_for: config.trust_forwarded_for,
        }
    }

    /// The client's address: the last `X-Forwarded-For` entry if trusted and present, else
    /// the connection's peer; as the key its buckets are kept by ([`client_key`]).
    fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(forwarded_address);
            if let Some(forwarded) = forwarded {
                return Some(client_key(forwarded));
            }
        } else if headers.contains_key("x-forwarded-for") {
            UNTRUSTED_FORWARDED_FOR.call_once(|| {
                tracing::warn!(
                    "requests carry X-Forwarded-For but trust_forwarded_for is off: the REST \
                     limits count every client behind the proxy as one address; behind a \
                     proxy that sets the header, set trust_forwarded_for = true and \
                     max_connections_per_peer = 0"
                );
            });
        }
        peer.map(|peer| client_key(peer.ip()))
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

/// Whether a sign-in answered with `code` refused a credential that was presented (a
/// wrong, used or expired code or refresh token): only those count as failed sign-ins. A
/// signed-out page load without a cookie, a refused CSRF header or origin, or a body a
/// cross-site form sent do not, so neither ordinary use nor another site can use up an
/// address's budget.
fn refuses_credential(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvitationInvalid
            | ErrorCode::InvitationUsed
            | ErrorCode::InvitationExpired
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenRevoked
    )
}

/// The bearer token of the request, if it has one that verifies.
fn verified(gateway: &Gateway, headers: &HeaderMap) -> Option<Verified> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    gateway.verifier.verify(token.trim()).ok()
}

/// The middleware, on `/api`, in front of the body deadline: a call over its limit is
/// answered before its body is read.
pub async fn limit(State(state): State<Limited>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let limits = &state.limits;
    let client = limits.client(request.headers(), peer);
    let path = request.uri().path().to_owned();
    let sign_in = SIGN_IN_PATHS.contains(&path.as_str());
    if sign_in
        && let Some(client) = client
        && let Err(retry) = limits.sign_in.peek(&client)
    {
        crate::metrics::rate_limited("sign_in");
        tracing::debug!(peer = %client, path, "sign-in attempts rate-limited");
        return too_many(retry, "failed sign-in attempts");
    }
    let token = verified(&state.gateway, request.headers());
    let caller = token.as_ref().map(|token| token.person.clone());
    let checked = match &caller {
        Some(person) => limits.people.check(person),
        None => client.map_or(Ok(()), |client| limits.peers.check(&client)),
    };
    if let Err(retry) = checked {
        crate::metrics::rate_limited("api");
        tracing::debug!(peer = ?client, person = ?caller, path, "REST calls rate-limited");
        return too_many(retry, "requests");
    }
    if let Some(person) = &caller
        && changes_coaching(request.method(), &path)
        && let Err(retry) = limits.coaching_changes.check(person)
    {
        crate::metrics::rate_limited("coaching");
        tracing::debug!(%person, "coaching changes rate-limited");
        return too_many(retry, "bookings and changes of coaching sessions");
    }
    if let Some(token) = token {
        request.extensions_mut().insert(VerifiedToken(token));
    }
    let response = next.run(request).await;
    let status = response.status();
    if sign_in
        && response
            .extensions()
            .get::<ErrorCode>()
            .is_some_and(|code| refuses_credential(*code))
    {
        crate::metrics::sign_in_failed();
        let status = status.as_u16();
        match client {
            Some(client) => {
                limits.sign_in.charge(&client);
                if limits.sign_in_warnings.check(&client).is_ok() {
                    tracing::warn!(peer = %client, path, status, "sign-in refused (further ones from this address within a minute at debug)");
                } else {
                    tracing::debug!(peer = %client, path, status, "sign-in refused");
                }
            }
            None => tracing::warn!(path, status, "sign-in refused"),
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
        // Entries with a port, and IPv6 keyed by its /64.
        headers.insert("x-forwarded-for", "203.0.113.7:51000".parse().unwrap());
        assert_eq!(limits(true).client(&headers, Some(peer)), Some(seen));
        headers.insert(
            "x-forwarded-for",
            "198.51.100.9, [2001:db8:5:6:7::8]:443".parse().unwrap(),
        );
        let network: IpAddr = "2001:db8:5:6::".parse().unwrap();
        assert_eq!(limits(true).client(&headers, Some(peer)), Some(network));
        let v6_peer: SocketAddr = "[2001:db8:5:6:9::1]:40000".parse().unwrap();
        assert_eq!(limits(false).client(&headers, Some(v6_peer)), Some(network));
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
