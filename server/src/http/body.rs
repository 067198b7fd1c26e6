//! The request-body deadline. Hyper times out a client's headers but not its body, so a
//! client that announces a body and sends it slowly, or never, would hold its connection
//! (and a slot of the connection cap) forever. Every request that announces a body has it
//! read here, whole, within `body_read_timeout` of its headers; a slower one is answered
//! 408 `request_timeout` and its connection closed, and one over
//! [`MAX_REQUEST_BODY_BYTES`] 413 `request_too_large`. The handlers then get the body
//! already in memory.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use triad_protocol::ErrorCode;
use triad_protocol::limits::MAX_REQUEST_BODY_BYTES;

use super::api::ApiError;

/// How long a body may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Whether the request announces a body: a non-zero `Content-Length`, or chunks.
fn announces_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() != "0")
}

/// Why a body was not taken.
enum Refused {
    TooLarge,
    Broken,
}

/// Reads `body` whole, refusing it once it grows over the limit.
async fn read(body: Body) -> Result<Bytes, Refused> {
    let mut stream = body.into_data_stream();
    let mut whole = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Refused::Broken)?;
        if whole.len() + chunk.len() > MAX_REQUEST_BODY_BYTES {
            return Err(Refused::TooLarge);
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(whole))
}

/// A refusal after which the connection is closed (the rest of the body is not read), with
/// the status of its code.
fn refuse(code: ErrorCode, message: String) -> Response {
    let mut response = ApiError::new(code, message).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The middleware: reads the body within the deadline, then hands the request on.
pub async fn deadline(
    State(BodyDeadline(limit)): State<BodyDeadline>,
    request: Request,
    next: Next,
) -> Response {
    if !announces_body(&request) {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_REQUEST_BODY_BYTES) {
        return refuse(
            ErrorCode::RequestTooLarge,
            format!("the body is over {MAX_REQUEST_BODY_BYTES} bytes"),
        );
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(limit, read(body)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(Refused::TooLarge)) => refuse(
            ErrorCode::RequestTooLarge,
            format!("the body is over {MAX_REQUEST_BODY_BYTES} bytes"),
        ),
        Ok(Err(Refused::Broken)) => refuse(
            ErrorCode::InvalidRequest,
            "the body could not be read".into(),
        ),
        Err(_) => {
            crate::metrics::request_timed_out();
            refuse(
                ErrorCode::RequestTimeout,
                format!(
                    "the body did not arrive within {} s of the headers",
                    limit.as_secs_f64()
                ),
            )
        }
    }
}
