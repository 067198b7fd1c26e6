//! Wiring: opens the store with the hub as its event sink, builds the gateway and the
//! router, and runs the accept loop until shutdown. One path for every way of stopping:
//! [`Server::run`] takes the shutdown future; the binary passes Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, TokenVerifier};
use crate::bus::redis::{BusError, BusTiming, RedisLink};
use crate::config::Config;
use crate::gateway::{Gateway, SessionSettings};
use crate::http;
use crate::hub::Hub;
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
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    config: Config,
    gateway: Arc<Gateway>,
    /// Stops the bus to other nodes, after the sessions have closed.
    bus_stop: CancellationToken,
}

impl Server {
    /// Opens the store and binds the listen address.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let verifier = TokenVerifier::from_config(&config.jwt, &config.data_dir)?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::DataDir(config.data_dir.display().to_string(), e))?;
        let hub = Arc::new(Hub::new(config.send_rate_per_second, config.send_burst));
        let bus_stop = CancellationToken::new();
        let store: SharedStore = match config.store.as_str() {
            "embedded" => Arc::new(EmbeddedStore::open(&config.store_path(), hub.clone())?),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let store = RedisStore::open(url, hub.clone()).await?;
                let timing = BusTiming { heartbeat: config.heartbeat, expiry: config.heartbeat * 3 };
                RedisLink::start(url, &hub, timing, bus_stop.clone()).await?;
                Arc::new(store)
            }
            other => return Err(ServerError::UnknownStore(other.to_string())),
        };
        hub.watch_with(&store);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServerError::Bind(config.listen, e))?;
        let settings = SessionSettings {
            hello_timeout: config.hello_timeout,
            outbox_capacity: config.outbox_capacity,
            allowed_origins: config.allowed_origins.clone(),
            request_rate_per_second: config.request_rate_per_second,
            request_burst: config.request_burst,
        };
        let gateway = Arc::new(Gateway::new(store, hub, verifier, settings));
        Ok(Self { listener, config, gateway, bus_stop })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Serves until `shutdown` resolves: then readiness turns off, sessions are told to
    /// reconnect elsewhere (close 1001), and the server waits for them up to the configured
    /// shutdown timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, config, gateway, bus_stop } = self;
        let router = http::router(gateway.clone());
        let stop = gateway.shutdown.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            stop.cancel();
        };
        http::serve::serve(
            listener,
            router,
            config.header_read_timeout,
            config.shutdown_timeout,
            signal,
        )
        .await;
        gateway.sessions.close();
        if tokio::time::timeout(config.shutdown_timeout, gateway.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still open at the end of the shutdown timeout");
        }
        bus_stop.cancel();
    }
}
