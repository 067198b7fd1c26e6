//! The websocket under a session. [`Upgrade`] checks an upgrade request (RFC 6455 §4.2.1)
//! and answers it with `101 Switching Protocols`; the connection then runs on
//! tokio-tungstenite directly.
//!
//! Owning the socket lets the writer send a large message as bounded fragments
//! ([`feed_text`]). That matters for memory: tungstenite formats each frame whole into a
//! per-connection write buffer that never shrinks, so one 9 KiB welcome or a 200-event
//! history page would otherwise stay allocated for the rest of the connection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message, Utf8Bytes};

/// A session's websocket.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;
/// The writing half of a session's websocket.
pub type Sink = SplitSink<Socket, Message>;
/// The reading half of a session's websocket.
pub type Stream = SplitStream<Socket>;

/// The largest frame the writer sends: a longer text goes out as a text frame and
/// continuation frames of at most this size. Chat events are a few hundred bytes and go
/// out whole.
pub const FRAGMENT_BYTES: usize = 2 * 1024;

/// Why an upgrade request was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Not `GET`.
    #[error("a websocket upgrade is a GET request")]
    NotGet,
    /// `Connection` lacks `upgrade`.
    #[error("not a websocket upgrade: the Connection header must include `upgrade`")]
    NoConnectionUpgrade,
    /// `Upgrade` is not `websocket`.
    #[error("not a websocket upgrade: the Upgrade header must be `websocket`")]
    NoUpgradeWebsocket,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("websocket version 13 required")]
    Version,
    /// No `Sec-WebSocket-Key`.
    #[error("Sec-WebSocket-Key missing")]
    NoKey,
    /// The HTTP connection cannot be taken over (not HTTP/1.1, or already taken).
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::Version | Self::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, self.to_string()).into_response();
        let headers = response.headers_mut();
        match self {
            Self::NotGet => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            Self::Version | Self::NotUpgradable => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            _ => {}
        }
        response
    }
}

/// A checked websocket upgrade request, not yet answered.
pub struct Upgrade {
    key: HeaderValue,
    protocols: Vec<String>,
    on_upgrade: OnUpgrade,
}

/// The entries of a comma-separated header, over all its lines, trimmed.
fn tokens(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether a comma-separated header holds `token`, ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = HandshakeError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(HandshakeError::NotGet);
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(HandshakeError::NoUpgradeWebsocket);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(HandshakeError::Version);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(HandshakeError::NoKey)?;
        // The offer may be split over several header lines (RFC 6455 §11.3.4).
        let protocols = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL)
            .map(str::to_owned)
            .collect();
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(HandshakeError::NotUpgradable)?;
        Ok(Self {
            key,
            protocols,
            on_upgrade,
        })
    }
}

impl Upgrade {
    /// The subprotocols the client offered, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(String::as_str)
    }

    /// Answers `101` (naming `protocol` if the client offered it), then runs `session` on
    /// the websocket once the HTTP connection has been handed over.
    pub fn accept<F, Fut>(
        self,
        protocol: &'static str,
        config: WebSocketConfig,
        session: F,
    ) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let offered = self.requested_protocols().any(|p| p == protocol);
        let accept = derive_accept_key(self.key.as_bytes());
        // The handshake's state is boxed and freed once the socket is open, so the
        // connection's task holds only the session.
        let on_upgrade = self.on_upgrade;
        let opening = Box::pin(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
                }
                Err(err) => {
                    tracing::debug!(error = %err, "upgrade not completed");
                    None
                }
            }
        });
        tokio::spawn(async move {
            if let Some(socket) = opening.await {
                session(socket).await;
            }
        });
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        if offered {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// Queues a text message without flushing: whole if it is at most [`FRAGMENT_BYTES`],
/// otherwise as fragments of that size (zero-copy slices of one buffer). The receiver
/// sees one message either way.
pub async fn feed_text<S>(sink: &mut S, text: Utf8Bytes) -> Result<(), Error>
where
    S: futures_util::Sink<Message, Error = Error> + Unpin,
{
    if text.len() <= FRAGMENT_BYTES {
        return sink.feed(Message::Text(text)).await;
    }
    let bytes = Bytes::from(text);
    let mut opcode = OpCode::Data(Data::Text);
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT_BYTES).min(bytes.len());
        let last = end == bytes.len();
        let frame = Frame::message(bytes.slice(start..end), opcode, last);
        sink.feed(Message::Frame(frame)).await?;
        opcode = OpCode::Data(Data::Continue);
        start = end;
    }
    Ok(())
}

/// Whether a read error is tungstenite's "message or frame too large".
pub fn is_capacity_error(err: &Error) -> bool {
    matches!(err, Error::Capacity(_))
}

/// Whether a read failed on a text frame that is not valid UTF-8.
pub fn is_utf8_error(err: &Error) -> bool {
    matches!(err, Error::Utf8(_))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// A server and a client websocket joined by an in-memory pipe; the client refuses any
    /// frame longer than a fragment.
    async fn pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let strict = WebSocketConfig::default().max_frame_size(Some(FRAGMENT_BYTES));
        let client = WebSocketStream::from_raw_socket(b, Role::Client, Some(strict)).await;
        (server, client)
    }

    #[tokio::test]
    async fn a_long_text_arrives_whole_in_frames_no_longer_than_a_fragment() {
        let (mut server, mut client) = pair().await;
        // Multi-byte characters, so fragment edges fall inside characters.
        let long: String = "Käse – 東京 ✓ ".repeat(700);
        assert!(long.len() > 5 * FRAGMENT_BYTES);
        let short = "{\"type\":\"pong\"}".to_string();
        feed_text(&mut server, Utf8Bytes::from(long.clone()))
            .await
            .unwrap();
        feed_text(&mut server, Utf8Bytes::from(short.clone()))
            .await
            .unwrap();
        server.flush().await.unwrap();
        let first = client.next().await.unwrap().unwrap();
        assert_eq!(first, Message::Text(long.into()));
        let second = client.next().await.unwrap().unwrap();
        assert_eq!(second, Message::Text(short.into()));
    }

    #[tokio::test]
    async fn the_strict_client_refuses_a_frame_longer_than_a_fragment() {
        // The check above means something only if an unsplit long frame is refused.
        let (mut server, mut client) = pair().await;
        let long = "x".repeat(FRAGMENT_BYTES + 1);
        server.send(Message::Text(long.into())).await.unwrap();
        let err = client.next().await.unwrap().unwrap_err();
        assert!(is_capacity_error(&err), "{err}");
    }
}
