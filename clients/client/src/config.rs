//! How to reach the server and how patient to be: [`ClientConfig`].

use std::time::Duration;

/// Everything the client needs to connect, with the timing of its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The websocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub url: String,
    /// The JWT sent in `hello`. Replaced by [`crate::Client::refresh`].
    pub token: String,
    /// An `Origin` header for the upgrade request, for servers that check it.
    pub origin: Option<String>,
    /// The largest delay before the first reconnect attempt (full jitter below it).
    pub backoff_initial: Duration,
    /// The largest delay between reconnect attempts.
    pub backoff_max: Duration,
    /// How long a request waits for its answer, and how long connecting (up to the
    /// welcome) may take.
    pub request_timeout: Duration,
    /// How long a send may take in all, across reconnects and retries, before it fails
    /// with [`crate::ClientError::Timeout`].
    pub send_timeout: Duration,
    /// How often a `ping` is sent while connected.
    pub ping_interval: Duration,
    /// A connection with no frame from the server for this long is taken as dropped.
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with the default timing: backoff from 100 ms to 5 s, requests time
    /// out after 10 s and sends after 60 s, a ping every 20 s, a silent connection dropped
    /// after 60 s.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            origin: None,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// The same configuration with an `Origin` header.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
}
