//! Wiring: opens the store with the hub as its event sink, builds the gateway and the
//! router, and runs the accept loop until shutdown. One path for every way of stopping:
//! [`Server::run`] takes the shutdown future; the binary passes Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, GrantSettings, Grants, TokenMinter, TokenVerifier};
use crate::bus::redis::{BusError, BusTiming, RedisLink};
use crate::calls::turn::IceConfig;
use crate::calls::{CallSettings, Calls};
use crate::config::{Config, ConfigError};
use crate::gateway::{Gateway, SessionSettings};
use crate::http;
use crate::hub::Hub;
use crate::mail::{self, MailError, Mailer};
use crate::metrics;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::{SharedStore, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The data folder could not be created.
    #[error("cannot create data folder {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token key could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The bus between nodes could not start.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The `store` setting is neither `embedded` nor a Redis URL.
    #[error("unknown store {0:?}: use \"embedded\" or a redis:// URL")]
    UnknownStore(String),
    /// The e-mail settings are not usable.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// A setting has a value the server cannot run with.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    /// The metrics listener, when `metrics_listen` is set.
    metrics_listener: Option<TcpListener>,
    config: Config,
    gateway: Arc<Gateway>,
    /// Stops the bus to other nodes, after the sessions have closed.
    bus_stop: CancellationToken,
}

impl Server {
    /// Opens the store and binds the listen address.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        metrics::install();
        let verifier = TokenVerifier::from_config(&config.jwt, &config.data_dir)?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::DataDir(config.data_dir.display().to_string(), e))?;
        let hub = Arc::new(Hub::new(config.send_rate_per_second, config.send_burst));
        let bus_stop = CancellationToken::new();
        let store: SharedStore = match config.store.as_str() {
            "embedded" => Arc::new(EmbeddedStore::open(&config.store_path(), hub.clone())?),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let store = RedisStore::open(url, hub.clone()).await?;
                let timing = BusTiming {
                    heartbeat: config.heartbeat,
                    expiry: config.heartbeat * 3,
                };
                RedisLink::start(url, &hub, timing, bus_stop.clone()).await?;
                Arc::new(store)
            }
            other => return Err(ServerError::UnknownStore(other.to_string())),
        };
        hub.watch_with(&store);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Bind(config.listen, e))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServerError::Bind(addr, e))?,
            ),
            None => None,
        };
        let settings = SessionSettings {
            hello_timeout: config.hello_timeout,
            outbox_capacity: config.outbox_capacity,
            allowed_origins: config.allowed_origins.clone(),
            request_rate_per_second: config.request_rate_per_second,
            request_burst: config.request_burst,
            public_url: config.public_url(),
            store_deadline: config.store_deadline,
            slow_close_deadline: config.slow_close_deadline,
        };
        let call_settings = CallSettings {
            grace: config.call_grace,
            ice: IceConfig {
                urls: config.ice_urls.clone(),
                turn_secret: config.turn_secret.clone(),
                ttl: config.turn_ttl,
            },
        };
        let calls = Calls::new(hub.clone(), store.clone(), call_settings);
        let grants = Arc::new(Grants::new(
            store.clone(),
            hub.clone(),
            TokenMinter::for_server(&config.jwt, &config.data_dir),
            GrantSettings {
                access_ttl: config.access_ttl,
                refresh_ttl: config.refresh_ttl,
                invitation_ttl: config.invitation_ttl,
                revocation_leeway: config.jwt.leeway,
                refresh_retry_window: config.refresh_retry_window,
            },
        ));
        let mailer = Arc::new(Mailer::from_config(&config, store.clone())?);
        let gateway = Arc::new(Gateway::new(
            store, hub, calls, verifier, grants, mailer, settings,
        ));
        // Ready from the start if the store answers now; the probe keeps it current.
        gateway
            .readiness
            .probe(&gateway.store, config.store_deadline)
            .await;
        Ok(Self {
            listener,
            metrics_listener,
            config,
            gateway,
            bus_stop,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The node's hub: which of its sessions are in which room (read by tests).
    pub fn hub(&self) -> Arc<Hub> {
        self.gateway.hub.clone()
    }

    /// The node's open websocket sessions (read by tests).
    pub fn sessions(&self) -> tokio_util::task::TaskTracker {
        self.gateway.sessions.clone()
    }

    /// The address `/metrics` is served on, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains:
    ///
    /// 1. readiness (`/readyz`) turns 503 and `triad_draining` 1, while the node goes on
    ///    serving and accepting for `drain_delay`, so load balancers stop sending it
    ///    clients before any is refused;
    /// 2. the listener closes, and each session finishes the request it is handling (an
    ///    append in flight completes and is answered), then closes with 1001 so its client
    ///    reconnects elsewhere and resumes;
    /// 3. the server waits for the sessions and open HTTP requests up to
    ///    `shutdown_timeout`, then stops the bus and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            metrics_listener,
            config,
            gateway,
            bus_stop,
        } = self;
        let router = http::router(
            gateway.clone(),
            Arc::new(http::limits::ApiLimits::from_config(&config)),
            http::body::BodyDeadline(config.body_read_timeout),
        );
        let reminders = crate::schedule::reminders::start(
            gateway.schedule.clone(),
            gateway.mailer.clone(),
            config.reminder_interval,
            gateway.shutdown.clone(),
        );
        let readiness = crate::store::readiness::start(
            gateway.readiness.clone(),
            gateway.store.clone(),
            config.readiness_interval,
            config.store_deadline,
            gateway.shutdown.clone(),
        );
        let digests = mail::start_digests(
            gateway.mailer.clone(),
            gateway.store.clone(),
            gateway.hub.clone(),
            config.digest_interval,
            gateway.shutdown.clone(),
        );
        let signal = {
            let gateway = gateway.clone();
            let delay = config.drain_delay;
            async move {
                shutdown.await;
                gateway.draining.cancel();
                metrics::drain_started();
                tracing::info!(
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "draining: not ready, still serving"
                );
                tokio::time::sleep(delay).await;
                tracing::info!(
                    sessions = gateway.sessions.len(),
                    "draining: closing the listener, then the sessions with 1001"
                );
            }
        };
        let settings = http::serve::ServeSettings {
            header_read_timeout: config.header_read_timeout,
            drain: config.shutdown_timeout,
            max_connections: config.max_connections,
            max_connections_per_peer: config.max_connections_per_peer,
        };
        let serving =
            http::serve::serve(listener, router, settings, signal, gateway.shutdown.clone());
        // Metrics are served through the drain, until the sessions are told to close.
        let metrics_serving = async {
            if let Some(listener) = metrics_listener {
                let settings = http::serve::ServeSettings {
                    max_connections: 64,
                    max_connections_per_peer: 0,
                    ..settings
                };
                http::serve::serve(
                    listener,
                    http::metrics_router(gateway.clone()),
                    settings,
                    gateway.shutdown.clone().cancelled_owned(),
                    CancellationToken::new(),
                )
                .await;
            }
        };
        let closing = async {
            gateway.shutdown.cancelled().await;
            gateway.sessions.close();
            tokio::time::timeout(config.shutdown_timeout, gateway.sessions.wait()).await
        };
        let ((), (), closed) = tokio::join!(serving, metrics_serving, closing);
        match closed {
            Ok(()) => tracing::info!("drained: every session closed"),
            Err(_) => tracing::warn!(
                sessions = gateway.sessions.len(),
                "sessions still open at the end of the shutdown timeout"
            ),
        }
        metrics::drain_finished();
        if let Some(digests) = digests {
            let _ = digests.await;
        }
        let _ = reminders.await;
        if let Err(err) = readiness.await {
            tracing::error!(error = %err, "the store readiness probe ended abnormally");
        }
        bus_stop.cancel();
    }
}
