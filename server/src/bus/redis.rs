//! The bus over Redis pub/sub: every node publishes [`BusMessage`]s as JSON on one channel,
//! [`CHANNEL`], and subscribes to it. Three tasks per node: a publisher draining a bounded
//! queue (what cannot be queued is dropped and counted: these messages are ephemeral), a
//! subscriber that hands what it receives to the hub and resubscribes after a lost
//! connection, and a heartbeat that sends this node's presence and expires silent nodes.
//!
//! Pub/sub is at-most-once; nothing here needs more: presence is restated by every
//! heartbeat, and typing indicators expire by themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BusMessage, Link};
use crate::hub::Hub;

/// The pub/sub channel of the bus.
pub const CHANNEL: &str = "triad:bus";

/// Messages waiting to be published before new ones are dropped.
const QUEUE: usize = 4096;

/// Timing of the bus.
#[derive(Debug, Clone, Copy)]
pub struct BusTiming {
    /// How often a node states its presence.
    pub heartbeat: Duration,
    /// How long a silent node's presence is kept.
    pub expiry: Duration,
}

impl Default for BusTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            expiry: Duration::from_secs(15),
        }
    }
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis for the bus: {0}")]
pub struct BusError(String);

/// A [`Link`] over Redis pub/sub.
pub struct RedisLink {
    queue: mpsc::Sender<BusMessage>,
    dropped: AtomicU64,
}

impl Link for RedisLink {
    fn publish(&self, message: BusMessage) {
        if self.queue.try_send(message).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "bus queue full: ephemeral messages dropped");
            }
        }
    }
}

impl RedisLink {
    /// Connects to Redis, links `hub` to the other nodes, and runs until `stop` is
    /// cancelled; then says goodbye so the others forget this node's presence at once.
    pub async fn start(
        url: &str,
        hub: &Arc<Hub>,
        timing: BusTiming,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError(e.to_string()))?;
        let publisher = client
            .get_connection_manager()
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let link = Arc::new(Self {
            queue,
            dropped: AtomicU64::new(0),
        });
        hub.link_with(link.clone());
        hub.expire_after(timing.expiry);
        tokio::spawn(publish(publisher, rx, stop.clone(), hub.gone()));
        tokio::spawn(subscribe(client, Arc::downgrade(hub), stop.clone()));
        tokio::spawn(heartbeat(Arc::downgrade(hub), link.clone(), timing, stop));
        Ok(link)
    }
}

async fn publish(
    mut conn: redis::aio::ConnectionManager,
    mut rx: mpsc::Receiver<BusMessage>,
    stop: CancellationToken,
    goodbye: BusMessage,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = rx.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        send(&mut conn, &message).await;
    }
    send(&mut conn, &goodbye).await;
}

async fn send(conn: &mut redis::aio::ConnectionManager, message: &BusMessage) {
    let payload = match serde_json::to_string(message) {
        Ok(payload) => payload,
        Err(err) => return tracing::error!(error = %err, "bus message not serializable"),
    };
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async::<i64>(conn),
    )
    .await;
    if !matches!(sent, Ok(Ok(_))) {
        crate::metrics::redis_error();
    }
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "bus publish failed"),
        Err(_) => tracing::warn!("bus publish timed out"),
    }
}

async fn subscribe(client: redis::Client, hub: Weak<Hub>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            connected = connected => connected,
        };
        let mut stream = match pubsub {
            Ok(pubsub) => pubsub.into_on_message(),
            Err(err) => {
                crate::metrics::redis_error();
                tracing::warn!(error = %err, "bus subscription failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tracing::debug!("bus subscribed");
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = stream.next() => message,
            };
            let Some(message) = message else {
                tracing::warn!("bus subscription lost; resubscribing");
                break;
            };
            let Some(hub) = hub.upgrade() else { return };
            match message
                .get_payload::<String>()
                .map(|p| serde_json::from_str::<BusMessage>(&p))
            {
                Ok(Ok(message)) => hub.receive(message),
                Ok(Err(err)) => tracing::warn!(error = %err, "undecodable bus message"),
                Err(err) => tracing::warn!(error = %err, "unreadable bus message"),
            }
        }
    }
}

async fn heartbeat(
    hub: Weak<Hub>,
    link: Arc<RedisLink>,
    timing: BusTiming,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(timing.heartbeat);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        link.publish(hub.heartbeat());
        hub.expire_nodes(timing.expiry);
    }
}
