//! Decoding frames once into the closed enums, with an error that says which code applies:
//! malformed JSON, an unknown `type`, or a known type with bad fields.

use crate::client::{ClientFrame, Request};
use crate::error::ErrorCode;
use crate::ids::RequestId;
use crate::limits::{MAX_ECHOED_CHARS, echoed, echoed_to};
use crate::server::ServerFrame;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The error code to answer with.
    pub code: ErrorCode,
    /// The request id, if the frame had a readable one.
    pub id: Option<RequestId>,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a client frame.
pub fn decode_client(text: &str) -> Result<ClientFrame, DecodeError> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => Ok(frame),
        Err(err) => Err(classify(text, err)),
    }
}

/// Decodes a server frame (for clients).
pub fn decode_server(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(text)
}

fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    // Only on the error path: read the envelope loosely to say what was wrong.
    let Ok(serde_json::Value::Object(mut envelope)) = serde_json::from_str(text) else {
        return DecodeError {
            code: ErrorCode::BadJson,
            id: None,
            message: format!("frame is not a JSON object: {err}"),
        };
    };
    let id = envelope.get("id").and_then(serde_json::Value::as_u64);
    match envelope.remove("type") {
        None => DecodeError {
            code: ErrorCode::InvalidRequest,
            id,
            message: "missing field `type`".into(),
        },
        Some(serde_json::Value::String(kind)) if !Request::TYPES.contains(&kind.as_str()) => {
            let shown = echoed(&kind);
            DecodeError {
                code: ErrorCode::UnknownType,
                id,
                message: format!("unknown request type {shown:?}"),
            }
        }
        Some(_) => DecodeError {
            code: ErrorCode::InvalidRequest,
            id,
            message: cap_quotes(&err.to_string()),
        },
    }
}

/// The longest error message built from a decoder's words, in characters.
const MAX_MESSAGE_CHARS: usize = 4 * MAX_ECHOED_CHARS;

/// A decoder's message with every value it quotes from the frame (between `"` or `` ` ``)
/// cut to [`MAX_ECHOED_CHARS`], and the whole cut to [`MAX_MESSAGE_CHARS`], so an error
/// never sends a client's large field back to it.
fn cap_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        let mut quoted = String::new();
        let mut escaped = false;
        let mut closed = false;
        for q in chars.by_ref() {
            if q == c && !escaped {
                closed = true;
                break;
            }
            escaped = c == '"' && q == '\\' && !escaped;
            quoted.push(q);
        }
        out.push_str(&echoed(&quoted));
        if closed {
            out.push(c);
        }
    }
    echoed_to(&out, MAX_MESSAGE_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures() {
        assert_eq!(
            decode_client("{not json").unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(decode_client("[1,2]").unwrap_err().code, ErrorCode::BadJson);
        let unknown = decode_client(r#"{"id":7,"type":"shout"}"#).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.id),
            (ErrorCode::UnknownType, Some(7))
        );
        let bad = decode_client(r#"{"id":8,"type":"send","room":"trio-1"}"#).unwrap_err();
        assert_eq!((bad.code, bad.id), (ErrorCode::InvalidRequest, Some(8)));
        assert_eq!(
            decode_client(r#"{"id":9}"#).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn a_large_field_is_not_sent_back() {
        let long = "y".repeat(100_000);
        let frame = format!(r#"{{"id":3,"type":"ping","x":1,"room":"{long}","seq":"{long}"}}"#);
        let send = format!(r#"{{"id":4,"type":"history","room":"trio-1","limit":"{long}"}}"#);
        for text in [frame, send] {
            if let Err(err) = decode_client(&text) {
                assert!(
                    err.message.chars().count() <= MAX_MESSAGE_CHARS + 1,
                    "{}",
                    err.message
                );
                assert!(!err.message.contains(&"y".repeat(MAX_ECHOED_CHARS + 1)));
            }
        }
        let err = decode_client(&format!(
            r#"{{"type":"history","room":"trio-1","limit":"{long}"}}"#
        ))
        .unwrap_err();
        assert!(err.message.contains('…'), "{}", err.message);
    }

    #[test]
    fn decodes_requests() {
        let frame = decode_client(r#"{"id":1,"type":"ping"}"#).unwrap();
        assert_eq!(frame, ClientFrame::new(1, Request::Ping));
        let frame = decode_client(r#"{"type":"typing","room":"trio-1","active":true}"#).unwrap();
        assert_eq!(frame.id, None);
        assert_eq!(frame.request.type_name(), "typing");
    }

    #[test]
    fn every_type_name_is_listed() {
        for name in Request::TYPES {
            let err = decode_client(&format!(r#"{{"type":"{name}","zzz":1}}"#));
            if let Err(e) = err {
                assert_ne!(e.code, ErrorCode::UnknownType, "{name}");
            }
        }
    }
}
