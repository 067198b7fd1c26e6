//! A real coturn for a test: started on free ports on loopback with a shared secret,
//! ready once it answers a STUN binding request, killed when dropped.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `turnserver`.
pub struct Coturn {
    pub port: u16,
    pub secret: String,
    child: Child,
    dir: tempfile::TempDir,
}

const TURNSERVER: &str = "turnserver";

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
    socket.local_addr().expect("its address").port()
}

impl Coturn {
    /// Starts coturn, or fails the test with how to install it.
    pub fn start() -> Self {
        let installed = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join(TURNSERVER).is_file())
        }) || Path::new("/usr/bin/turnserver").is_file();
        assert!(
            installed,
            "`turnserver` is not installed; the TURN tests need coturn: \
             `apt-get install -y coturn` (Debian/Ubuntu)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        // A relay range of its own; coturn skips ports that are taken.
        let low = 20_000 + (u32::from(port) * 7919 % 30_000) as u16;
        let secret = format!("turn-secret-{port}");
        let pidfile = dir.path().join("turnserver.pid");
        let log = std::fs::File::create(dir.path().join("turnserver.log")).unwrap();
        let child = Command::new(TURNSERVER)
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={low}"),
                &format!("--max-port={}", low + 200),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=triad",
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--log-file=stdout",
                &format!("--pidfile={}", pidfile.display()),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start turnserver");
        let mut coturn = Self {
            port,
            secret,
            child,
            dir,
        };
        coturn.wait_ready();
        coturn
    }

    /// The `turn:` URL (UDP).
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// What coturn has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default()
    }

    /// Waits until coturn answers a STUN binding request (at most 10 s).
    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A binding request: type 0x0001, length 0, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"triad-ready!");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answer = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited ({status}):\n{}", self.log());
            }
            socket
                .send_to(&request, ("127.0.0.1", self.port))
                .expect("send a STUN request");
            if let Ok((n, _)) = socket.recv_from(&mut answer)
                && n >= 20
                && answer[0..2] == [0x01, 0x01]
            {
                return;
            }
        }
        panic!("turnserver did not answer within 10 s:\n{}", self.log());
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if let Err(err) = self.child.kill() {
            eprintln!("turnserver was not killed: {err}");
        }
        // Reaps the process; its status says nothing the test needs.
        self.child.wait().ok();
    }
}
