//! The server's configuration: one documented struct. Values come from defaults, then an
//! optional TOML file, then `TRIAD_*` environment variables, then command-line flags (the
//! later wins). The binary's `serve` flags map onto [`ConfigOverrides`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use triad_protocol::limits;

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (the default).
    #[serde(rename = "HS256")]
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519 signatures: the server holds only the public key.
    #[serde(rename = "EdDSA")]
    #[value(name = "EdDSA")]
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256: the server holds only the public key.
    #[serde(rename = "RS256")]
    #[value(name = "RS256")]
    Rs256,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for the embedded store (`triad.redb`) and generated secrets.
    pub data_dir: PathBuf,
    /// Where history and state live: `embedded` (a file in `data_dir`) or a Redis URL
    /// (`redis://host:port/db`), which several nodes share.
    pub store: String,
    /// How often a node states its presence to the others (Redis only).
    pub heartbeat: Duration,
    /// The URL people use to reach this server (for links), e.g. `http://127.0.0.1:8080`.
    pub public_url: Option<String>,
    /// Token verification settings.
    pub jwt: JwtConfig,
    /// Origins allowed to open websockets, besides the server's own (same host).
    pub allowed_origins: Vec<String>,
    /// Time a client has to send its HTTP request headers.
    pub header_read_timeout: Duration,
    /// Time a websocket has to send `hello`.
    pub hello_timeout: Duration,
    /// Frames queued for one session before it counts as too slow and is closed.
    pub outbox_capacity: usize,
    /// Sends per person per second, sustained.
    pub send_rate_per_second: u32,
    /// Sends per person in a burst.
    pub send_burst: u32,
    /// Requests of any kind per session per second, sustained.
    pub request_rate_per_second: u32,
    /// Requests of any kind per session in a burst.
    pub request_burst: u32,
    /// How long shutdown waits for sessions to close.
    pub shutdown_timeout: Duration,
    /// How long a node stays up answering not-ready after the shutdown signal, before it
    /// stops accepting and closes its sessions, so load balancers stop sending it clients.
    pub drain_delay: Duration,
    /// How long a call participant whose connection was lost stays in the call.
    pub call_grace: Duration,
    /// STUN and TURN URLs handed to call participants (`stun:`, `turn:`, `turns:`).
    pub ice_urls: Vec<String>,
    /// The secret shared with the TURN server, for time-limited credentials.
    pub turn_secret: Option<String>,
    /// How long a TURN credential lasts.
    pub turn_ttl: Duration,
    /// How long an access token issued on sign-in lasts.
    pub access_ttl: Duration,
    /// How long a refresh token lasts.
    pub refresh_ttl: Duration,
    /// How long an invitation link lasts.
    pub invitation_ttl: Duration,
    /// How often the schedule looks for reminders to send and sessions starting.
    pub reminder_interval: Duration,
    /// Where e-mail is sent through: `smtp://host:port` (plain), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://user:password@host:465` (TLS); `None` turns e-mail off.
    pub smtp_url: Option<String>,
    /// The sender of e-mails, e.g. `Triad <triad@school.example>`.
    pub mail_from: String,
    /// How often people who are offline get a digest of their unread messages by e-mail.
    pub digest_interval: Duration,
    /// Log output format.
    pub log_format: LogFormat,
    /// Time a client has to send its whole request body once its headers are in; a body
    /// that is slower is answered 408 and its connection closed.
    pub body_read_timeout: Duration,
    /// The most connections open at once, websockets included; new ones beyond it are
    /// answered 503 and closed. 0: no cap.
    pub max_connections: usize,
    /// The most connections open at once from one peer address. Behind a proxy or load
    /// balancer every connection comes from the proxy: set 0 (no cap) there and cap at the
    /// proxy. 0: no cap.
    pub max_connections_per_peer: usize,
    /// REST requests per second, sustained, per peer address and per signed-in person.
    pub api_rate_per_second: u32,
    /// REST requests in a burst, per peer address and per signed-in person.
    pub api_burst: u32,
    /// Failed sign-in attempts (redeem, refresh, sign-out) per peer address per minute,
    /// sustained; successful ones take nothing. 0: no limit.
    pub sign_in_rate_per_minute: u32,
    /// Failed sign-in attempts per peer address in a burst.
    pub sign_in_burst: u32,
    /// Whether the REST limits take the client's address from the last `X-Forwarded-For`
    /// entry (the one the proxy in front added) instead of the connection's peer. Only
    /// behind a proxy that sets it: otherwise clients choose their own address.
    pub trust_forwarded_for: bool,
    /// Where `/metrics` is served: its own listener, kept off the public port. `None`: no
    /// metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Bookings, moves and cancellations of coaching sessions per person per hour.
    pub coaching_changes_per_hour: u32,
    /// Bookings, moves and cancellations of coaching sessions per person in a burst.
    pub coaching_changes_burst: u32,
    /// The deadline of a websocket request's store calls, from when it was read (and of all
    /// the store calls of signing in together): past it, the request is answered
    /// `store_unavailable`.
    pub store_deadline: Duration,
    /// How long a session closed as too slow (4008) has to read what is already on its
    /// way and the close frame, before its connection is dropped. Only
    /// `gateway::writer::MAX_SLOW_CLOSES` sessions at once wait this long, and a shutdown cuts
    /// it to the short close deadline, so it may be longer than `shutdown_timeout`.
    pub slow_close_deadline: Duration,
    /// How often the store is probed for `/readyz`.
    pub readiness_interval: Duration,
    /// How long after a refresh token was exchanged presenting it again counts as a retry
    /// whose answer was lost (the unused successor is voided and new tokens issued) rather
    /// than as a copy (which revokes the person). 0: every second use revokes.
    pub refresh_retry_window: Duration,
}

/// Token verification (and, with a secret, minting) settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The one algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// The HS256 shared secret.
    pub secret: Option<String>,
    /// A file holding the HS256 secret (used when `secret` is unset).
    pub secret_file: Option<PathBuf>,
    /// PEM public key for EdDSA or RS256.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key for EdDSA or RS256, so the server can issue tokens on sign-in.
    pub private_key_file: Option<PathBuf>,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("triad-data"),
            store: "embedded".into(),
            heartbeat: Duration::from_secs(5),
            public_url: None,
            jwt: JwtConfig {
                algorithm: JwtAlgorithm::Hs256,
                secret: None,
                secret_file: None,
                public_key_file: None,
                private_key_file: None,
                issuer: "triad".into(),
                audience: "triad".into(),
                leeway: Duration::from_secs(30),
            },
            allowed_origins: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(limits::HELLO_TIMEOUT_SECS),
            outbox_capacity: 512,
            send_rate_per_second: limits::SEND_RATE_PER_SECOND,
            send_burst: limits::SEND_BURST,
            request_rate_per_second: limits::REQUEST_RATE_PER_SECOND,
            request_burst: limits::REQUEST_BURST,
            shutdown_timeout: Duration::from_secs(10),
            drain_delay: Duration::from_secs(2),
            call_grace: Duration::from_secs(20),
            ice_urls: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            invitation_ttl: Duration::from_secs(7 * 86_400),
            reminder_interval: Duration::from_secs(15),
            smtp_url: None,
            mail_from: "Triad <triad@localhost>".into(),
            digest_interval: Duration::from_secs(3600),
            log_format: LogFormat::Text,
            body_read_timeout: Duration::from_secs(limits::BODY_READ_TIMEOUT_SECS),
            max_connections: limits::MAX_CONNECTIONS,
            max_connections_per_peer: limits::MAX_CONNECTIONS_PER_PEER,
            api_rate_per_second: limits::API_RATE_PER_SECOND,
            api_burst: limits::API_BURST,
            sign_in_rate_per_minute: limits::SIGN_IN_RATE_PER_MINUTE,
            sign_in_burst: limits::SIGN_IN_BURST,
            trust_forwarded_for: false,
            metrics_listen: None,
            coaching_changes_per_hour: limits::COACHING_CHANGES_PER_HOUR,
            coaching_changes_burst: limits::COACHING_CHANGES_BURST,
            store_deadline: Duration::from_secs(3),
            slow_close_deadline: Duration::from_secs(30),
            readiness_interval: Duration::from_secs(1),
            refresh_retry_window: Duration::from_secs(20),
        }
    }
}

impl Config {
    /// The path of the embedded store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("triad.redb")
    }

    /// The public URL, or one made from the listen address.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Builds the configuration: defaults, then `file` if given, then `overrides` (which
    /// clap fills from flags and `TRIAD_*` variables).
    pub fn load(file: Option<&Path>, overrides: ConfigOverrides) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read(path.to_owned(), e.to_string()))?;
            let file: ConfigOverrides = toml::from_str(&text)
                .map_err(|e| ConfigError::Parse(path.to_owned(), e.to_string()))?;
            config.apply(file);
        }
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings the server cannot run with: a deadline or interval of 0 (a
    /// body deadline of 0 would refuse every request body), a websocket send or request
    /// rate of 0. The REST rates and the connection caps may be 0: that turns them off.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let must_be_positive = [
            ("body_read_timeout_secs", self.body_read_timeout),
            ("header_read_timeout_secs", self.header_read_timeout),
            ("store_deadline_ms", self.store_deadline),
            ("readiness_interval_ms", self.readiness_interval),
            ("reminder_interval_ms", self.reminder_interval),
            ("digest_interval_ms", self.digest_interval),
            ("heartbeat_ms", self.heartbeat),
        ];
        for (setting, value) in must_be_positive {
            if value.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "{setting} must be more than 0"
                )));
            }
        }
        // The websocket's buckets have no "off": at 0 a person could never send again
        // after the burst.
        let rates = [
            ("send_rate_per_second", self.send_rate_per_second),
            ("request_rate_per_second", self.request_rate_per_second),
        ];
        for (setting, rate) in rates {
            if rate == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{setting} must be more than 0"
                )));
            }
        }
        Ok(())
    }

    fn apply(&mut self, o: ConfigOverrides) {
        let secs = Duration::from_secs;
        set(&mut self.listen, o.listen);
        set(&mut self.data_dir, o.data_dir);
        set(&mut self.store, o.store);
        set(
            &mut self.heartbeat,
            o.heartbeat_ms.map(Duration::from_millis),
        );
        set_opt(&mut self.public_url, o.public_url);
        set(&mut self.jwt.algorithm, o.jwt_algorithm);
        set_opt(&mut self.jwt.secret, o.jwt_secret);
        set_opt(&mut self.jwt.secret_file, o.jwt_secret_file);
        set_opt(&mut self.jwt.public_key_file, o.jwt_public_key_file);
        set(&mut self.jwt.issuer, o.jwt_issuer);
        set(&mut self.jwt.audience, o.jwt_audience);
        set(&mut self.jwt.leeway, o.jwt_leeway_secs.map(secs));
        set(&mut self.allowed_origins, o.allowed_origins);
        set(
            &mut self.header_read_timeout,
            o.header_read_timeout_secs.map(secs),
        );
        set(
            &mut self.hello_timeout,
            o.hello_timeout_ms.map(Duration::from_millis),
        );
        set(&mut self.outbox_capacity, o.outbox_capacity);
        set(&mut self.send_rate_per_second, o.send_rate_per_second);
        set(&mut self.send_burst, o.send_burst);
        set(&mut self.request_rate_per_second, o.request_rate_per_second);
        set(&mut self.request_burst, o.request_burst);
        set(
            &mut self.shutdown_timeout,
            o.shutdown_timeout_secs.map(secs),
        );
        set(
            &mut self.drain_delay,
            o.drain_delay_ms.map(Duration::from_millis),
        );
        set(&mut self.log_format, o.log_format);
        set(
            &mut self.call_grace,
            o.call_grace_ms.map(Duration::from_millis),
        );
        set(&mut self.ice_urls, o.ice_urls);
        set_opt(&mut self.turn_secret, o.turn_secret);
        set(&mut self.turn_ttl, o.turn_ttl_secs.map(secs));
        set_opt(&mut self.jwt.private_key_file, o.jwt_private_key_file);
        set(&mut self.access_ttl, o.access_ttl_secs.map(secs));
        set(&mut self.refresh_ttl, o.refresh_ttl_secs.map(secs));
        set(&mut self.invitation_ttl, o.invitation_ttl_secs.map(secs));
        set(
            &mut self.reminder_interval,
            o.reminder_interval_ms.map(Duration::from_millis),
        );
        set_opt(&mut self.smtp_url, o.smtp_url);
        set(&mut self.mail_from, o.mail_from);
        set(
            &mut self.digest_interval,
            o.digest_interval_ms.map(Duration::from_millis),
        );
        set(
            &mut self.body_read_timeout,
            o.body_read_timeout_secs.map(secs),
        );
        set(&mut self.max_connections, o.max_connections);
        set(
            &mut self.max_connections_per_peer,
            o.max_connections_per_peer,
        );
        set(&mut self.api_rate_per_second, o.api_rate_per_second);
        set(&mut self.api_burst, o.api_burst);
        set(&mut self.sign_in_rate_per_minute, o.sign_in_rate_per_minute);
        set(&mut self.sign_in_burst, o.sign_in_burst);
        set(&mut self.trust_forwarded_for, o.trust_forwarded_for);
        if let Some(OptionalListen(listen)) = o.metrics_listen {
            self.metrics_listen = listen;
        }
        set(
            &mut self.coaching_changes_per_hour,
            o.coaching_changes_per_hour,
        );
        set(&mut self.coaching_changes_burst, o.coaching_changes_burst);
        set(
            &mut self.store_deadline,
            o.store_deadline_ms.map(Duration::from_millis),
        );
        set(
            &mut self.slow_close_deadline,
            o.slow_close_deadline_ms.map(Duration::from_millis),
        );
        set(
            &mut self.readiness_interval,
            o.readiness_interval_ms.map(Duration::from_millis),
        );
        set(
            &mut self.refresh_retry_window,
            o.refresh_retry_window_secs.map(secs),
        );
    }

    /// An example configuration file with every setting and its default.
    pub fn example_toml() -> &'static str {
        include_str!("../triad.example.toml")
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn set_opt<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// Settings that override the defaults: the shape of the TOML file and of the flags.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TRIAD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder for the embedded store and generated secrets [default: triad-data].
    #[arg(long, env = "TRIAD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where history lives: `embedded` or a Redis URL such as redis://127.0.0.1:6379
    /// [default: embedded].
    #[arg(long, env = "TRIAD_STORE")]
    pub store: Option<String>,
    /// Milliseconds between presence heartbeats to other nodes [default: 5000].
    #[arg(long, env = "TRIAD_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// The URL people use to reach this server, for links.
    #[arg(long, env = "TRIAD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The one accepted token algorithm [default: HS256].
    #[arg(long, env = "TRIAD_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<JwtAlgorithm>,
    /// The HS256 shared secret.
    #[arg(long, env = "TRIAD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A file holding the HS256 secret [default: <data-dir>/jwt-secret].
    #[arg(long, env = "TRIAD_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key file, for EdDSA or RS256.
    #[arg(long, env = "TRIAD_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// The required token issuer [default: triad].
    #[arg(long, env = "TRIAD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The required token audience [default: triad].
    #[arg(long, env = "TRIAD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock leeway for token times, in seconds [default: 30].
    #[arg(long, env = "TRIAD_JWT_LEEWAY_SECS")]
    pub jwt_leeway_secs: Option<u64>,
    /// Origins allowed to open websockets besides the server's own, comma-separated.
    #[arg(long, env = "TRIAD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Seconds a client has to send its request headers [default: 10].
    #[arg(long, env = "TRIAD_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Milliseconds a websocket has to send hello [default: 5000].
    #[arg(long, env = "TRIAD_HELLO_TIMEOUT_MS")]
    pub hello_timeout_ms: Option<u64>,
    /// Frames queued per session before it is closed as too slow [default: 512].
    #[arg(long, env = "TRIAD_OUTBOX_CAPACITY")]
    pub outbox_capacity: Option<usize>,
    /// Sends per person per second [default: 5].
    #[arg(long, env = "TRIAD_SEND_RATE_PER_SECOND")]
    pub send_rate_per_second: Option<u32>,
    /// Sends per person in a burst [default: 30].
    #[arg(long, env = "TRIAD_SEND_BURST")]
    pub send_burst: Option<u32>,
    /// Requests of any kind per session per second [default: 50].
    #[arg(long, env = "TRIAD_REQUEST_RATE_PER_SECOND")]
    pub request_rate_per_second: Option<u32>,
    /// Requests of any kind per session in a burst [default: 200].
    #[arg(long, env = "TRIAD_REQUEST_BURST")]
    pub request_burst: Option<u32>,
    /// Seconds shutdown waits for sessions [default: 10].
    #[arg(long, env = "TRIAD_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// Milliseconds a shutting-down node answers not-ready before closing its sessions
    /// [default: 2000].
    #[arg(long, env = "TRIAD_DRAIN_DELAY_MS")]
    pub drain_delay_ms: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "TRIAD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Milliseconds a call participant whose connection was lost stays in the call
    /// [default: 20000].
    #[arg(long, env = "TRIAD_CALL_GRACE_MS")]
    pub call_grace_ms: Option<u64>,
    /// STUN and TURN URLs for calls, comma-separated, e.g.
    /// stun:turn.example.org:3478,turns:turn.example.org:443?transport=tcp.
    #[arg(long, env = "TRIAD_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Option<Vec<String>>,
    /// The secret shared with the TURN server (coturn's static-auth-secret).
    #[arg(long, env = "TRIAD_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Seconds a TURN credential lasts [default: 3600].
    #[arg(long, env = "TRIAD_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,
    /// PEM private key file, for EdDSA or RS256, to issue tokens on sign-in.
    #[arg(long, env = "TRIAD_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Seconds an access token issued on sign-in lasts [default: 3600].
    #[arg(long, env = "TRIAD_ACCESS_TTL_SECS")]
    pub access_ttl_secs: Option<u64>,
    /// Seconds a refresh token lasts [default: 2592000, 30 days].
    #[arg(long, env = "TRIAD_REFRESH_TTL_SECS")]
    pub refresh_ttl_secs: Option<u64>,
    /// Seconds an invitation link lasts [default: 604800, 7 days].
    #[arg(long, env = "TRIAD_INVITATION_TTL_SECS")]
    pub invitation_ttl_secs: Option<u64>,
    /// Milliseconds between looks for reminders to send [default: 15000].
    #[arg(long, env = "TRIAD_REMINDER_INTERVAL_MS")]
    pub reminder_interval_ms: Option<u64>,
    /// The SMTP server for e-mail: smtp://host:port, smtp://host?tls=required (STARTTLS)
    /// or smtps://user:password@host:465 [default: none, e-mail off].
    #[arg(long, env = "TRIAD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of e-mails [default: Triad <triad@localhost>].
    #[arg(long, env = "TRIAD_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Milliseconds between digests of unread messages for people who are offline
    /// [default: 3600000].
    #[arg(long, env = "TRIAD_DIGEST_INTERVAL_MS")]
    pub digest_interval_ms: Option<u64>,
    /// Seconds a client has to send its request body once the headers are in [default: 30].
    #[arg(long, env = "TRIAD_BODY_READ_TIMEOUT_SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// The most connections open at once, websockets included; 0 for no cap
    /// [default: 10000].
    #[arg(long, env = "TRIAD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// The most connections open at once from one peer address; 0 for no cap (behind a
    /// proxy, where every connection comes from the proxy) [default: 200].
    #[arg(long, env = "TRIAD_MAX_CONNECTIONS_PER_PEER")]
    pub max_connections_per_peer: Option<usize>,
    /// REST requests per second per peer address and per person [default: 20].
    #[arg(long, env = "TRIAD_API_RATE_PER_SECOND")]
    pub api_rate_per_second: Option<u32>,
    /// REST requests in a burst per peer address and per person [default: 100].
    #[arg(long, env = "TRIAD_API_BURST")]
    pub api_burst: Option<u32>,
    /// Failed sign-in attempts per peer address per minute; 0 for no limit [default: 6].
    #[arg(long, env = "TRIAD_SIGN_IN_RATE_PER_MINUTE")]
    pub sign_in_rate_per_minute: Option<u32>,
    /// Failed sign-in attempts per peer address in a burst [default: 10].
    #[arg(long, env = "TRIAD_SIGN_IN_BURST")]
    pub sign_in_burst: Option<u32>,
    /// Take the client address for the REST limits from the last X-Forwarded-For entry
    /// (only behind a proxy that sets it) [default: false].
    #[arg(long, env = "TRIAD_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: Option<bool>,
    /// Where /metrics is served, e.g. 127.0.0.1:9090, or off [default: off].
    #[arg(long, env = "TRIAD_METRICS_LISTEN")]
    pub metrics_listen: Option<OptionalListen>,
    /// Bookings, moves and cancellations of coaching sessions per person per hour
    /// [default: 60].
    #[arg(long, env = "TRIAD_COACHING_CHANGES_PER_HOUR")]
    pub coaching_changes_per_hour: Option<u32>,
    /// Bookings, moves and cancellations of coaching sessions per person in a burst
    /// [default: 20].
    #[arg(long, env = "TRIAD_COACHING_CHANGES_BURST")]
    pub coaching_changes_burst: Option<u32>,
    /// Milliseconds a websocket request waits for the store before it is answered
    /// store_unavailable [default: 3000].
    #[arg(long, env = "TRIAD_STORE_DEADLINE_MS")]
    pub store_deadline_ms: Option<u64>,
    /// Milliseconds a session closed as too slow has to read its close frame before the
    /// connection is dropped [default: 30000].
    #[arg(long, env = "TRIAD_SLOW_CLOSE_DEADLINE_MS")]
    pub slow_close_deadline_ms: Option<u64>,
    /// Milliseconds between probes of the store for /readyz [default: 1000].
    #[arg(long, env = "TRIAD_READINESS_INTERVAL_MS")]
    pub readiness_interval_ms: Option<u64>,
    /// Seconds after a refresh token's exchange in which presenting it again is taken for
    /// a retry whose answer was lost, not for a copy [default: 20].
    #[arg(long, env = "TRIAD_REFRESH_RETRY_WINDOW_SECS")]
    pub refresh_retry_window_secs: Option<u64>,
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalListen(pub Option<SocketAddr>);

impl std::str::FromStr for OptionalListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" | "" => Ok(Self(None)),
            addr => addr
                .parse()
                .map(|addr| Self(Some(addr)))
                .map_err(|_| format!("{addr:?} is neither an address like 127.0.0.1:9090 nor off")),
        }
    }
}

impl<'de> Deserialize<'de> for OptionalListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, String),
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, String),
    /// A setting has a value the server cannot run with.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let parsed: ConfigOverrides = toml::from_str(Config::example_toml()).unwrap();
        let mut config = Config::default();
        config.apply(parsed);
        assert_eq!(config.listen, Config::default().listen);
        assert_eq!(config.outbox_capacity, Config::default().outbox_capacity);
        assert_eq!(config.drain_delay, Config::default().drain_delay);
        assert_eq!(config.shutdown_timeout, Config::default().shutdown_timeout);
        assert_eq!(config.jwt.issuer, "triad");
        assert_eq!(config.access_ttl, Config::default().access_ttl);
        assert_eq!(config.refresh_ttl, Config::default().refresh_ttl);
        assert_eq!(config.invitation_ttl, Config::default().invitation_ttl);
        assert_eq!(
            config.reminder_interval,
            Config::default().reminder_interval
        );
        assert_eq!(config.smtp_url, Config::default().smtp_url);
        assert_eq!(config.mail_from, Config::default().mail_from);
        assert_eq!(config.digest_interval, Config::default().digest_interval);
        assert_eq!(
            config.body_read_timeout,
            Config::default().body_read_timeout
        );
        assert_eq!(config.max_connections, Config::default().max_connections);
        assert_eq!(
            config.max_connections_per_peer,
            Config::default().max_connections_per_peer
        );
        assert_eq!(config.api_burst, Config::default().api_burst);
        assert_eq!(config.sign_in_burst, Config::default().sign_in_burst);
        assert_eq!(config.metrics_listen, Config::default().metrics_listen);
        assert_eq!(config.store_deadline, Config::default().store_deadline);
        assert_eq!(
            config.slow_close_deadline,
            Config::default().slow_close_deadline
        );
        assert_eq!(
            config.readiness_interval,
            Config::default().readiness_interval
        );
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("triad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nsend_burst = 7\n").unwrap();
        let flags = ConfigOverrides {
            send_burst: Some(9),
            ..Default::default()
        };
        let config = Config::load(Some(&path), flags).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.send_burst, 9);
    }

    #[test]
    fn a_body_deadline_of_zero_is_refused_at_start() {
        let flags = ConfigOverrides {
            body_read_timeout_secs: Some(0),
            ..Default::default()
        };
        let err = Config::load(None, flags).unwrap_err();
        assert!(
            err.to_string()
                .contains("body_read_timeout_secs must be more than 0"),
            "{err}"
        );
        let flags = ConfigOverrides {
            send_rate_per_second: Some(0),
            ..Default::default()
        };
        let err = Config::load(None, flags).unwrap_err();
        assert!(err.to_string().contains("send_rate_per_second"), "{err}");
        // REST rates and caps of 0 turn their limit off and are accepted.
        let flags = ConfigOverrides {
            sign_in_rate_per_minute: Some(0),
            max_connections: Some(0),
            ..Default::default()
        };
        assert!(Config::load(None, flags).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ConfigOverrides>("lisen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
