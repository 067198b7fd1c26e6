//! Looking at the cluster from outside: free ports, an HTTP GET, a STUN binding request,
//! a Redis `PING`, and waiting for a condition with a deadline.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Where ports are chosen: below the kernel's ephemeral range, so that no `bind` to port 0
/// and no outgoing connection (of a test running alongside, say) can take a port between
/// the moment it is chosen here and the moment its server binds it.
fn range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 12_000 {
        (10_000, ephemeral_low - 1)
    } else {
        // An unusual ephemeral range: pick above it instead.
        (61_000, 65_000)
    }
}

/// A port of the range, chosen at random.
fn candidate(span: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let (low, high) = range();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    let width = u64::from(high.saturating_sub(low).saturating_sub(span).max(1));
    low + u16::try_from(hasher.finish() % width).unwrap_or(0)
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let port = candidate(1);
        if TcpListener::bind((LOOPBACK, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port")
}

/// A loopback port free for both TCP and UDP (STUN and TURN listen on both).
pub fn free_dual_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let port = candidate(1);
        let Ok(_tcp) = TcpListener::bind((LOOPBACK, port)) else {
            continue;
        };
        if UdpSocket::bind((LOOPBACK, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP")
}

/// `count` consecutive loopback UDP ports that were free a moment ago: the TURN relay range.
pub fn free_udp_range(count: u16) -> anyhow::Result<(u16, u16)> {
    for _ in 0..200 {
        let first = candidate(count);
        let Some(last) = first.checked_add(count - 1) else {
            continue;
        };
        let held: Vec<_> = (first..=last)
            .map_while(|port| UdpSocket::bind((LOOPBACK, port)).ok())
            .collect();
        if held.len() == usize::from(count) {
            return Ok((first, last));
        }
    }
    bail!("no range of {count} free UDP ports")
}

/// An HTTP/1.1 GET: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP status line from {addr}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

/// Whether a STUN server at `addr` answers a binding request (RFC 5389) over UDP.
pub fn stun_answers(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let socket = UdpSocket::bind((LOOPBACK, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(300)))?;
        // Binding request, no attributes, the magic cookie, a transaction id.
        let mut request = [0_u8; 20];
        request[..2].copy_from_slice(&0x0001_u16.to_be_bytes());
        request[4..8].copy_from_slice(&0x2112_A442_u32.to_be_bytes());
        request[8..].copy_from_slice(b"triad-probe!");
        socket.send_to(&request, addr)?;
        let mut answer = [0_u8; 512];
        let (read, _) = socket.recv_from(&mut answer)?;
        // A binding success response carrying the same transaction id.
        Ok(read >= 20 && answer[..2] == [0x01, 0x01] && answer[8..20] == request[8..])
    };
    attempt().unwrap_or(false)
}

/// Whether Redis at `addr` answers `PING` with `PONG` (not `LOADING`).
pub fn redis_answers(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(300))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.write_all(b"PING\r\n")?;
        let mut answer = [0_u8; 64];
        let read = stream.read(&mut answer)?;
        Ok(answer[..read].starts_with(b"+PONG"))
    };
    attempt().unwrap_or(false)
}

/// Checks `condition` every 20 ms until it holds; fails after `timeout`, or at once when
/// the condition fails with an error (a process that exited, say).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {} s", timeout.as_secs_f32());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
