//! The websocket itself: opening it with the `triad.v1` subprotocol, the `hello` handshake up
//! to the welcome, and turning frames into protocol types and back. Everything above this
//! module speaks [`ClientFrame`] and [`ServerFrame`] only.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::{ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use triad_protocol::limits::MAX_FRAME_BYTES;
use triad_protocol::{
    ClientFrame, CloseCode, ErrorCode, PROTOCOL_VERSION, Request, RequestId, ResumePoint,
    ServerFrame, ServerMessage, Welcome, decode_server,
};

use crate::config::ClientConfig;
use crate::error::ClientError;

/// An open websocket to the server.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long to wait for the server's close frame after ours, or for the close code that
/// follows a refused `hello`.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What one websocket message from the server means.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value at a time, handled at once"
)]
pub(crate) enum Incoming {
    /// A protocol frame.
    Frame(ServerFrame),
    /// The server closed the connection.
    Closed {
        /// The close code, if the close frame had one.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// Nothing for the protocol (websocket ping or pong, or a frame that could not be read).
    Nothing,
}

/// Reads one websocket message.
pub(crate) fn decode(message: Message) -> Incoming {
    match message {
        Message::Text(text) => match decode_server(text.as_str()) {
            Ok(frame) => Incoming::Frame(frame),
            Err(err) => {
                tracing::warn!(%err, "unreadable frame from the server; ignored");
                Incoming::Nothing
            }
        },
        Message::Close(frame) => Incoming::Closed {
            code: frame.as_ref().map(|f| u16::from(f.code)),
            reason: frame
                .map(|f| f.reason.as_str().to_owned())
                .unwrap_or_default(),
        },
        Message::Binary(_) => {
            tracing::warn!("binary frame from the server; ignored");
            Incoming::Nothing
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Incoming::Nothing,
    }
}

/// Encodes a frame, refusing one the server would not read (over
/// [`MAX_FRAME_BYTES`]: it would close the connection, and a resend would close the next).
pub(crate) fn encode(frame: &ClientFrame) -> Result<String, ClientError> {
    let text = serde_json::to_string(frame)
        .map_err(|err| ClientError::Protocol(format!("cannot encode a request: {err}")))?;
    if text.len() > MAX_FRAME_BYTES {
        return Err(ClientError::TooLarge {
            bytes: text.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    Ok(text)
}

/// Writes one encoded frame, giving up after `limit` (a connection that cannot take a frame
/// for that long is as good as dropped).
pub(crate) async fn write(
    socket: &mut Socket,
    text: String,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, socket.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("write failed: {err}")),
        Err(_) => Err("write timed out".to_owned()),
    }
}

/// Closes the websocket cleanly with `1000`, waiting briefly for the server's answer.
pub(crate) async fn close(mut socket: Socket) {
    let frame = CloseFrame {
        code: WsCloseCode::Normal,
        reason: "bye".into(),
    };
    let closing = async {
        if socket.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    };
    // The server may not answer; the socket is dropped either way.
    timeout(CLOSE_GRACE, closing).await.ok();
}

/// The upgrade request: the URL with the `triad.v1` subprotocol and the configured origin.
pub(crate) fn upgrade_request(
    config: &ClientConfig,
) -> Result<tungstenite::handshake::client::Request, ClientError> {
    let mut request =
        config.url.as_str().into_client_request().map_err(|err| {
            ClientError::Connect(format!("bad server URL {:?}: {err}", config.url))
        })?;
    let headers = request.headers_mut();
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOL_VERSION),
    );
    if let Some(origin) = &config.origin {
        let value = HeaderValue::from_str(origin)
            .map_err(|err| ClientError::Connect(format!("bad origin {origin:?}: {err}")))?;
        headers.insert(ORIGIN, value);
    }
    Ok(request)
}

/// Opens the websocket.
pub(crate) async fn open(config: &ClientConfig) -> Result<Socket, ClientError> {
    let request = upgrade_request(config)?;
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(ClientError::Connect(format!(
            "the server refused the upgrade: HTTP {}",
            response.status()
        ))),
        Err(err) => Err(ClientError::Connect(err.to_string())),
    }
}

/// Why a connection attempt did not reach a welcome.
#[derive(Debug)]
pub(crate) struct HelloFailure {
    /// What went wrong, as a request would report it.
    pub error: ClientError,
    /// The close code the server sent, if any.
    pub close: Option<u16>,
    /// Whether trying again later may succeed.
    pub retry: bool,
}

impl HelloFailure {
    fn network(error: ClientError) -> Self {
        Self {
            error,
            close: None,
            retry: true,
        }
    }
}

/// Opens the websocket, says `hello` and waits for the welcome, all within `limit`.
pub(crate) async fn connect(
    config: &ClientConfig,
    token: &str,
    resume: Vec<ResumePoint>,
    hello_id: RequestId,
    limit: Duration,
) -> Result<(Socket, Welcome), HelloFailure> {
    let attempt = async {
        let mut socket = open(config).await.map_err(HelloFailure::network)?;
        let hello = ClientFrame::new(
            hello_id,
            Request::Hello {
                token: token.to_owned(),
                resume,
            },
        );
        let text = encode(&hello).map_err(|error| HelloFailure {
            error,
            close: None,
            retry: false,
        })?;
        write(&mut socket, text, limit)
            .await
            .map_err(|err| HelloFailure::network(ClientError::Connect(err)))?;
        let welcome = await_welcome(&mut socket, hello_id).await?;
        Ok((socket, welcome))
    };
    match timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(HelloFailure::network(ClientError::Timeout)),
    }
}

/// Reads until the answer to `hello`.
async fn await_welcome(socket: &mut Socket, hello_id: RequestId) -> Result<Welcome, HelloFailure> {
    loop {
        let message = match socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                return Err(HelloFailure::network(ClientError::Connect(err.to_string())));
            }
            None => {
                return Err(HelloFailure::network(ClientError::Connect(
                    "the server closed the connection before the welcome".into(),
                )));
            }
        };
        match decode(message) {
            Incoming::Frame(ServerFrame {
                re,
                message: ServerMessage::Welcome(welcome),
            }) if re.is_none() || re == Some(hello_id) => {
                return Ok(welcome);
            }
            Incoming::Frame(ServerFrame {
                message: ServerMessage::Error { code, message, .. },
                ..
            }) => {
                let close = await_close_code(socket).await;
                return Err(refused(code, message, close));
            }
            Incoming::Frame(frame) => {
                tracing::debug!(?frame, "frame before the welcome; ignored");
            }
            Incoming::Closed { code, reason } => {
                let retry = code.is_none_or(|code| CloseCode(code).should_reconnect());
                let error = match code {
                    Some(code) => ClientError::Connect(format!(
                        "the server closed the connection ({code}): {reason}"
                    )),
                    None => ClientError::Connect("the server closed the connection".into()),
                };
                return Err(HelloFailure {
                    error,
                    close: code,
                    retry,
                });
            }
            Incoming::Nothing => {}
        }
    }
}

/// The failure for an `error` in answer to `hello`. A refused token is closed with 4001; a
/// store that is down for a moment (`store_unavailable`, closed with 1013) is no reason to
/// give up: the client tries again later with the same token.
fn refused(code: ErrorCode, message: String, close: Option<u16>) -> HelloFailure {
    let later = close.is_some_and(|c| CloseCode(c) == CloseCode::TRY_AGAIN_LATER);
    HelloFailure {
        error: ClientError::Server { code, message },
        close,
        retry: code.is_retryable() || later,
    }
}

/// After a refused `hello`, the close code that follows it.
async fn await_close_code(socket: &mut Socket) -> Option<u16> {
    let wait = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Incoming::Closed { code, .. } = decode(message) {
                return code;
            }
        }
        None
    };
    timeout(CLOSE_GRACE, wait).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_offers_the_subprotocol_and_origin() {
        let config =
            ClientConfig::new("ws://127.0.0.1:9/ws", "t").with_origin("https://triad.example");
        let request = upgrade_request(&config).expect("valid request");
        assert_eq!(request.headers()[SEC_WEBSOCKET_PROTOCOL], PROTOCOL_VERSION);
        assert_eq!(request.headers()[ORIGIN], "https://triad.example");
        assert!(upgrade_request(&ClientConfig::new("not a url", "t")).is_err());
    }

    #[test]
    fn refusals_say_whether_to_retry() {
        assert!(!refused(ErrorCode::TokenInvalid, String::new(), Some(4001)).retry);
        assert!(refused(ErrorCode::StoreUnavailable, String::new(), None).retry);
        assert!(
            refused(ErrorCode::StoreUnavailable, String::new(), Some(1013)).retry,
            "a store outage at sign-in is retried"
        );
        // The close code decides, whatever the error: 1013 says "try again later".
        assert!(!ErrorCode::UnknownPerson.is_retryable());
        assert!(
            refused(ErrorCode::UnknownPerson, String::new(), Some(1013)).retry,
            "a refusal closed with 1013 is retried"
        );
        assert!(!refused(ErrorCode::UnknownPerson, String::new(), Some(4001)).retry);
        assert!(CloseCode::TRY_AGAIN_LATER.should_reconnect());
        assert!(refused(ErrorCode::Internal, String::new(), Some(4001)).retry);
    }

    #[test]
    fn close_frames_carry_their_code() {
        let frame = CloseFrame {
            code: WsCloseCode::from(4008),
            reason: "slow".into(),
        };
        match decode(Message::Close(Some(frame))) {
            Incoming::Closed { code, reason } => {
                assert_eq!((code, reason.as_str()), (Some(4008), "slow"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
