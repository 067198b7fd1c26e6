//! The accept loop. `axum::serve` installs no timer, so a client could trickle its headers
//! forever; here each connection is served by hyper with a header-read timeout (the body
//! has its own deadline, [`super::body`]), and every accepted socket gets `TCP_NODELAY`.
//! Shutdown closes the listener first, then lets open requests end.
//!
//! Connections are capped, overall and per peer address ([`ConnectionCaps`]; IPv6 peers by
//! their /64, [`client_key`]). A connection holds its slot for as long as its socket is
//! open, across a websocket upgrade. One over a cap is answered `503` at once, so the node
//! keeps serving the clients it has: the answer is written, the write side shut, and what
//! the client sends read and dropped for a moment (at most [`REFUSAL_DRAIN_BYTES`] within
//! [`REFUSAL_DRAIN`]), so closing does not reset the connection and lose the answer. At most
//! [`MAX_REFUSALS_DRAINING`] refused sockets are drained at once; beyond that, they are
//! answered and closed at once. Each request carries its peer address (`ConnectInfo`) for
//! the REST limits.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use triad_protocol::limits::OVER_CAP_RETRY_AFTER_SECS;

use crate::throttle::client_key;

/// What the accept loop allows.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open HTTP connections.
    pub drain: Duration,
    /// The most connections open at once; 0: no cap.
    pub max_connections: usize,
    /// The most connections open at once from one peer address; 0: no cap.
    pub max_connections_per_peer: usize,
}

/// The answer to a connection over a cap, written straight to the socket.
fn over_cap() -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
         Retry-After: {OVER_CAP_RETRY_AFTER_SECS}\r\nContent-Type: text/plain\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Length: 22\r\n\r\ntoo many connections\r\n"
    )
    .into_bytes()
}

/// How long a refused connection's input is read and dropped before it is closed.
pub const REFUSAL_DRAIN: Duration = Duration::from_secs(1);

/// How much of a refused connection's input is read and dropped before it is closed.
pub const REFUSAL_DRAIN_BYTES: usize = 4096;

/// Refused connections drained at once; more are answered and closed at once.
pub const MAX_REFUSALS_DRAINING: usize = 256;

/// Answers a refused connection, shuts its write side, and reads (and drops) what the
/// client sends for a moment, so the close does not reset the connection before the
/// client has read the answer.
async fn refuse(mut stream: TcpStream, answer: Arc<[u8]>) {
    let drained = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 1024];
        let mut read = 0;
        while read < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        io::Result::Ok(())
    };
    match tokio::time::timeout(REFUSAL_DRAIN, drained).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "cannot answer a refused connection"),
    }
}

/// The open connections, overall and per peer address.
#[derive(Debug)]
pub struct ConnectionCaps {
    total: usize,
    per_peer: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// A connection's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    peer: IpAddr,
}

impl ConnectionCaps {
    /// Caps of `total` connections and `per_peer` from one address (0: no cap).
    pub fn new(total: usize, per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_peer,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for a connection from `peer` (counted by its [`client_key`]), or which cap
    /// is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, &'static str> {
        let peer = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.total > 0 && open.total >= self.total {
            return Err("total");
        }
        let from_peer = open.by_peer.get(&peer).copied().unwrap_or(0);
        if self.per_peer > 0 && from_peer >= self.per_peer {
            return Err("per_peer");
        }
        open.total += 1;
        open.by_peer.insert(peer, from_peer + 1);
        Ok(Slot {
            caps: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// A socket with its slot: the slot lives as long as the socket, upgrades included.
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves. Then it closes the listener,
/// cancels `stop` (open HTTP connections finish their request and close; the gateway's
/// websocket sessions, which it tracks itself, may watch the same token), and waits up to
/// `settings.drain` for the open HTTP connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
    stop: CancellationToken,
) {
    let caps = ConnectionCaps::new(settings.max_connections, settings.max_connections_per_peer);
    let connections = TaskTracker::new();
    let answer: Arc<[u8]> = over_cap().into();
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_DRAINING));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                crate::metrics::connection_refused(cap);
                tracing::debug!(%peer, cap, "connection refused: cap reached");
                match refusals.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let answer = answer.clone();
                        connections.spawn(async move {
                            refuse(stream, answer).await;
                            drop(permit);
                        });
                    }
                    // Too many being drained: an answer without waiting (the socket is new,
                    // so its send buffer has room), then the close.
                    Err(_) => {
                        if let Err(err) = stream.try_write(&answer) {
                            tracing::debug!(%peer, error = %err, "cannot answer a refused connection");
                        }
                    }
                }
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = router
            .clone()
            .map_request(move |mut request: axum::extract::Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .serve_connection(
                TokioIo::new(Counted {
                    stream,
                    _slot: slot,
                }),
                TowerToHyperService::new(service),
            )
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = outcome {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(settings.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!("open connections did not finish in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_overall_and_per_peer_and_give_slots_back() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), "per_peer");
        let _third = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).unwrap_err(), "total");
        drop(first);
        assert!(caps.admit(a).is_ok());
    }

    #[test]
    fn ipv6_peers_are_capped_by_their_64_and_mapped_v4_as_v4() {
        let caps = ConnectionCaps::new(0, 1);
        let _one = caps.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            caps.admit("2001:db8:1:2:ffff::7".parse().unwrap())
                .unwrap_err(),
            "per_peer"
        );
        assert!(caps.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = caps.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            caps.admit("::ffff:192.0.2.1".parse().unwrap()).unwrap_err(),
            "per_peer"
        );
    }
}
