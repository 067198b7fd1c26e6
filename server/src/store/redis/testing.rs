//! A real `redis-server` for tests: started on a free loopback port, killed when dropped.
//!
//! Built for this crate's tests and, with the `testing` feature, for the end-to-end tests.
//! Nothing is mocked: tests that need Redis start one of these, and fail (never skip) when
//! `redis-server` is not installed.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a fresh server may take to answer `PING` (loading an AOF included).
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How many free ports are tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// The message when the binary is missing.
const NOT_FOUND: &str = "redis-server not found: install it (Debian: apt-get install redis-server)";

/// A `redis-server` child process on `127.0.0.1`. Dropping it kills the process.
pub struct RedisProcess {
    /// `redis://127.0.0.1:<port>`, for [`RedisStore::open`](super::RedisStore::open).
    pub url: String,
    /// The port it listens on, kept across restarts.
    port: u16,
    /// Where the append-only file lives, if persistence is on.
    aof_dir: Option<PathBuf>,
    /// The running process; `None` while stopped.
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts a server without persistence (`--save '' --appendonly no`) and waits until it
    /// answers `PING`.
    pub async fn start() -> io::Result<Self> {
        Self::start_on_free_port(None).await
    }

    /// Starts a server that appends every write to an AOF in `dir` and fsyncs it before
    /// answering (`--appendonly yes --appendfsync always`), so a [`RedisProcess::restart`]
    /// finds everything that was acknowledged.
    pub async fn start_with_aof(dir: &Path) -> io::Result<Self> {
        Self::start_on_free_port(Some(dir.to_path_buf())).await
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server at once (SIGKILL, as a crash would) and waits for it to exit.
    /// Does nothing if it is already stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Err(err) = child.kill() {
            eprintln!("cannot kill redis-server {}: {err}", child.id());
        }
        if let Err(err) = child.wait() {
            eprintln!("cannot wait for redis-server {}: {err}", child.id());
        }
    }

    /// Stops the server if it runs, then starts it again on the same port and with the
    /// same directory, and waits until it answers `PING` (after loading its AOF, if any).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let child = spawn(self.port, self.aof_dir.as_deref())?;
        self.child = Some(child);
        self.wait_until_ready().await
    }

    async fn start_on_free_port(aof_dir: Option<PathBuf>) -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let child = spawn(port, aof_dir.as_deref())?;
            let mut process = Self {
                url: format!("redis://127.0.0.1:{port}"),
                port,
                aof_dir: aof_dir.clone(),
                child: Some(child),
            };
            match process.wait_until_ready().await {
                Ok(()) => return Ok(process),
                // Most likely the port was taken in the meantime: try another.
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// Polls with `PING` until the answer is `+PONG`; fails if the process exits or the
    /// deadline passes.
    async fn wait_until_ready(&mut self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited at start: {status}",
                    self.port
                )));
            }
            if ping(self.port).await {
                return Ok(());
            }
            if started.elapsed() > START_DEADLINE {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not answer PING", self.port),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago, chosen below the kernel's ephemeral range: a port
/// handed out for `bind` to port 0 or for an outgoing connection could be taken by another
/// test between now and when Redis binds it (or while a stopped Redis is down before its
/// restart on the same port); one from below that range cannot.
fn free_port() -> io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12_000 {
        (10_000, ephemeral_low)
    } else {
        (61_000, 65_000)
    };
    for attempt in 0..200u32 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u32(attempt);
        let port = low + u16::try_from(hasher.finish() % u64::from(high - low)).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(port: u16, aof_dir: Option<&Path>) -> io::Result<Child> {
    let mut command = Command::new("redis-server");
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
        .args(["--loglevel", "warning", "--enable-debug-command", "local"]);
    match aof_dir {
        Some(dir) => {
            command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir);
        }
        None => {
            command.args(["--appendonly", "no"]);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, NOT_FOUND),
        _ => err,
    })
}

/// Whether a server on `port` answers `PING` with `+PONG` (not `-LOADING`) right now.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0_u8; 64];
        let read = stream.read(&mut answer).await?;
        io::Result::Ok(answer[..read].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}
