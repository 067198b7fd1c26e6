//! Reading a node from outside, as a monitoring system would: an HTTP GET, one value of
//! the Prometheus text format, and waiting for a condition with a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP GET: the status and the body; `None` if nothing answers (the node is gone).
pub async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let attempt = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// The value of `series` (a name, with its labels if it has any) in a scrape.
pub fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// One series of a node's `/metrics` now; panics if the node does not answer.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, body) = get(addr, "/metrics")
        .await
        .unwrap_or_else(|| panic!("{addr} does not answer /metrics"));
    assert_eq!(status, 200, "/metrics of {addr}");
    value(&body, series).unwrap_or_else(|| panic!("no {series} in the metrics of {addr}:\n{body}"))
}

/// Checks `condition` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn values_are_read_by_series() {
    let scrape = "# TYPE a gauge\na 2\nb{kind=\"x\"} 3.5\nab 7\n";
    assert_eq!(value(scrape, "a"), Some(2.0));
    assert_eq!(value(scrape, "b{kind=\"x\"}"), Some(3.5));
    assert_eq!(value(scrape, "c"), None);
}
