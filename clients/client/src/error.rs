//! What can go wrong with a request: [`ClientError`].

use triad_protocol::ErrorCode;

/// Why a request or a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{code}: {message}")]
    Server {
        /// The stable error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// No answer in time.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The connection is down, or dropped before the answer came; the client is
    /// reconnecting (or was set offline). The request may be sent again.
    #[error("not connected to the server")]
    Disconnected,
    /// The client has stopped for good: closed, or the server refused to let it reconnect.
    #[error("the client is closed")]
    Closed,
    /// The websocket could not be opened (network, URL, HTTP upgrade).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The request would make a frame larger than the server reads; it was not sent.
    #[error("the request is {bytes} bytes; frames are limited to {limit}")]
    TooLarge {
        /// The size of the encoded frame.
        bytes: usize,
        /// The largest frame the server reads.
        limit: usize,
    },
    /// The server said something the client did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the same request may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Server { code, .. } => code.is_retryable(),
            Self::Timeout | Self::Disconnected | Self::Connect(_) => true,
            Self::Closed | Self::TooLarge { .. } | Self::Protocol(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_code_and_message() {
        let err = ClientError::Server {
            code: ErrorCode::JoinRequired,
            message: "join first".into(),
        };
        assert_eq!(err.to_string(), "join_required: join first");
        assert_eq!(err.code(), Some(ErrorCode::JoinRequired));
        assert!(!err.is_retryable());
        assert!(ClientError::Disconnected.is_retryable());
        assert!(!ClientError::Closed.is_retryable());
    }
}
