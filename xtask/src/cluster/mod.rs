//! A local cluster without a container engine: `redis-server`, two `triad-server` nodes
//! sharing it, nginx in front and coturn, as processes on loopback ports that were free,
//! with their state, logs and filled-in configuration under one folder.
//!
//! It runs the configuration files of `deploy/` that the container files use: the node
//! settings `deploy/triad/triad.toml` (what differs comes from `TRIAD_*` variables, as in
//! the compose file), `deploy/redis/redis.conf` (port, address and folder given on the
//! command line), and the templates `deploy/nginx/triad.conf` and
//! `deploy/coturn/turnserver.conf`, whose `${NAME}` placeholders are filled here as the
//! containers fill them. `deploy/local/nginx.conf` is the only file of its own: nginx's main
//! configuration for a process that is not a system service.
//!
//! [`Cluster::start`] is both `cargo xtask cluster up` (which then [`Cluster::detach`]es,
//! leaving a pid file for [`down`]) and the end-to-end tests' cluster (stopped on drop).
//!
//! Files: [`template`] (placeholders), [`process`] (starting, signalling and recording the
//! processes), [`probe`] (ports, HTTP, STUN, Redis, waiting).

pub mod probe;
pub mod process;
pub mod template;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::programs;
use process::{Proc, Record};

/// How long a program may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The node names, in the order nginx lists them.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// What to start and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The repository root: `deploy/` and the demo roster are found from it.
    pub root: PathBuf,
    /// The state folder: filled-in configurations, data, secrets, logs, the pid file.
    pub state: PathBuf,
    /// The `triad-server` program.
    pub server: PathBuf,
    /// `TRIAD_*` settings for every node, over those of `deploy/triad/triad.toml`.
    pub node_env: Vec<(String, String)>,
}

/// A started node.
#[derive(Debug, Clone)]
pub struct Node {
    /// `node-a` or `node-b`.
    pub name: String,
    /// Where it listens (its readiness too).
    pub addr: SocketAddr,
    /// Where it serves `/metrics` (a listener of its own, never behind nginx).
    pub metrics: SocketAddr,
}

/// The running cluster. Dropping it kills whatever still runs, unless detached.
#[derive(Debug)]
pub struct Cluster {
    /// The state folder.
    pub state: PathBuf,
    /// The shared store.
    pub redis_url: String,
    /// The nodes, in nginx's order.
    pub nodes: Vec<Node>,
    /// nginx, plain HTTP: `http://<entry>/`, `ws://<entry>/ws`.
    pub entry: SocketAddr,
    /// nginx, HTTPS with a self-signed certificate.
    pub entry_tls: SocketAddr,
    /// coturn: STUN and TURN over UDP and TCP.
    pub turn: SocketAddr,
    /// coturn: TURN over TLS.
    pub turn_tls: SocketAddr,
    /// The file holding the token signing secret.
    pub jwt_secret_file: PathBuf,
    procs: Vec<Proc>,
}

/// Where the nodes' configuration files are.
struct Deploy {
    triad: PathBuf,
    redis: PathBuf,
    nginx_site: PathBuf,
    nginx_main: PathBuf,
    coturn: PathBuf,
    roster: PathBuf,
}

impl Deploy {
    fn new(root: &Path) -> Self {
        let deploy = root.join("deploy");
        Self {
            triad: deploy.join("triad/triad.toml"),
            redis: deploy.join("redis/redis.conf"),
            nginx_site: deploy.join("nginx/triad.conf"),
            nginx_main: deploy.join("local/nginx.conf"),
            coturn: deploy.join("coturn/turnserver.conf"),
            roster: root.join("server/demo-roster.toml"),
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl Cluster {
    /// Starts Redis, imports the demo programme, starts coturn, the two nodes and nginx,
    /// and waits until each answers. Keeps the data, secrets and certificate of an earlier
    /// run in the same state folder.
    pub fn start(options: &Options) -> anyhow::Result<Self> {
        let state = std::path::absolute(&options.state)?;
        if let Some(running) = process::read_records(&state.join("pids"))?
            .into_iter()
            .find(Record::is_running)
        {
            bail!(
                "a cluster already runs from {} ({} is pid {}): stop it with `cargo xtask cluster down`",
                state.display(),
                running.name,
                running.pid
            );
        }
        for dir in ["logs", "secrets", "tls", "redis", "coturn", "nginx/tmp"]
            .into_iter()
            .chain(NODES)
        {
            std::fs::create_dir_all(state.join(dir))?;
        }
        let deploy = Deploy::new(&options.root);
        let jwt_secret_file = state.join("secrets/jwt-secret");
        ensure_secret(&jwt_secret_file)?;
        let turn_secret_file = state.join("secrets/turn-secret");
        ensure_secret(&turn_secret_file)?;
        let turn_secret = std::fs::read_to_string(&turn_secret_file)?
            .trim()
            .to_string();
        ensure_tls(&state)?;

        let entry = loopback(probe::free_port()?);
        let entry_tls = loopback(probe::free_port()?);
        let turn = loopback(probe::free_dual_port()?);
        let turn_tls = loopback(probe::free_dual_port()?);
        let redis_addr = loopback(probe::free_port()?);
        let mut cluster = Self {
            redis_url: format!("redis://{redis_addr}"),
            nodes: Vec::new(),
            entry,
            entry_tls,
            turn,
            turn_tls,
            jwt_secret_file,
            procs: Vec::new(),
            state,
        };

        cluster.start_redis(&deploy, redis_addr)?;
        let env = cluster.node_env(&turn_secret, &options.node_env);
        cluster.import(&options.server, &deploy, &env)?;
        cluster.start_coturn(&deploy, &turn_secret)?;
        for name in NODES {
            cluster.start_node(name, &options.server, &deploy, &env)?;
        }
        cluster.start_nginx(&deploy)?;
        Ok(cluster)
    }

    fn start_redis(&mut self, deploy: &Deploy, addr: SocketAddr) -> anyhow::Result<()> {
        let mut command = Command::new(programs::find("redis-server")?);
        command
            .arg(&deploy.redis)
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args([
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ])
            .arg("--dir")
            .arg(self.state.join("redis"));
        let index = self.spawn("redis", command)?;
        probe::wait_until("redis answers PING", START_TIMEOUT, || {
            self.procs[index].check_running()?;
            Ok(probe::redis_answers(addr))
        })
    }

    /// The nodes' environment: `deploy/triad/triad.toml`, then what differs here.
    fn node_env(&self, turn_secret: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
        let turn = self.turn;
        let mut env = vec![
            ("TRIAD_LISTEN".into(), "127.0.0.1:0".into()),
            ("TRIAD_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
            // Behind nginx every connection comes from it: cap per client at nginx, and
            // take the client's address for the REST limits from X-Forwarded-For.
            ("TRIAD_MAX_CONNECTIONS_PER_PEER".into(), "0".into()),
            ("TRIAD_TRUST_FORWARDED_FOR".into(), "true".into()),
            ("TRIAD_STORE".into(), self.redis_url.clone()),
            ("TRIAD_PUBLIC_URL".into(), format!("http://{}", self.entry)),
            (
                "TRIAD_JWT_SECRET_FILE".into(),
                self.jwt_secret_file.display().to_string(),
            ),
            ("TRIAD_TURN_SECRET".into(), turn_secret.to_string()),
            (
                "TRIAD_ICE_URLS".into(),
                format!(
                    "stun:{turn},turn:{turn}?transport=udp,turn:{turn}?transport=tcp,turns:{}?transport=tcp",
                    self.turn_tls
                ),
            ),
        ];
        env.extend(extra.iter().cloned());
        env
    }

    fn node_command(
        server: &Path,
        deploy: &Deploy,
        env: &[(String, String)],
        data: &Path,
    ) -> Command {
        let mut command = Command::new(server);
        // Only the settings given here: none leaks in from the caller's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TRIAD_") {
                command.env_remove(name);
            }
        }
        command
            .env("TRIAD_CONFIG", &deploy.triad)
            .env("TRIAD_DATA_DIR", data)
            .envs(env.iter().map(|(k, v)| (k, v)));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        command
    }

    fn import(
        &self,
        server: &Path,
        deploy: &Deploy,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut command = Self::node_command(server, deploy, env, &self.state.join(NODES[0]));
        let output = command
            .arg("import")
            .arg(&deploy.roster)
            .output()
            .with_context(|| format!("running {}", server.display()))?;
        if !output.status.success() {
            bail!(
                "importing the demo programme failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn start_coturn(&mut self, deploy: &Deploy, secret: &str) -> anyhow::Result<()> {
        let (min_port, max_port) = probe::free_udp_range(16)?;
        let tls = self.state.join("tls");
        let values = [
            ("TURN_PORT", self.turn.port().to_string()),
            ("TURN_TLS_PORT", self.turn_tls.port().to_string()),
            ("TURN_MIN_PORT", min_port.to_string()),
            ("TURN_MAX_PORT", max_port.to_string()),
            ("TURN_REALM", "triad".to_string()),
            ("TURN_SECRET", secret.to_string()),
            ("TURN_CERT", tls.join("cert.pem").display().to_string()),
            ("TURN_PKEY", tls.join("key.pem").display().to_string()),
        ];
        let conf = self.state.join("coturn/turnserver.conf");
        let text = std::fs::read_to_string(&deploy.coturn)?;
        process::private_file(&conf)?.write_all(template::render(&text, &values)?.as_bytes())?;
        let coturn = self.state.join("coturn");
        let mut command = Command::new(programs::find("turnserver")?);
        // Loopback only, which the production file forbids as a relay target: here the
        // peers of a call are on this machine.
        command
            .arg("-c")
            .arg(&conf)
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg("--allow-loopback-peers")
            .arg(format!(
                "--pidfile={}",
                coturn.join("turnserver.pid").display()
            ))
            .arg(format!("--db={}", coturn.join("turndb").display()));
        let index = self.spawn("coturn", command)?;
        let turn = self.turn;
        probe::wait_until("coturn answers STUN", START_TIMEOUT, || {
            self.procs[index].check_running()?;
            Ok(probe::stun_answers(turn))
        })
    }

    fn start_node(
        &mut self,
        name: &str,
        server: &Path,
        deploy: &Deploy,
        env: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut command = Self::node_command(server, deploy, env, &self.state.join(name));
        command.arg("serve");
        let index = self.spawn(name, command)?;
        let log = self.procs[index].log.clone();
        let mut addr = None;
        probe::wait_until(&format!("{name} listens"), START_TIMEOUT, || {
            self.procs[index].check_running()?;
            addr = listening_addr(&log);
            Ok(addr.is_some())
        })?;
        let addr = addr.context("no address")?;
        let metrics = metrics_addr(&log).context("no metrics address")?;
        probe::wait_until(&format!("{name} is ready"), START_TIMEOUT, || {
            self.procs[index].check_running()?;
            Ok(matches!(probe::http_get(addr, "/readyz"), Ok((200, _))))
        })?;
        self.nodes.push(Node {
            name: name.to_string(),
            addr,
            metrics,
        });
        Ok(())
    }

    fn start_nginx(&mut self, deploy: &Deploy) -> anyhow::Result<()> {
        let [a, b] = [&self.nodes[0], &self.nodes[1]].map(|n| n.addr);
        let conf = write_nginx_config(deploy, &self.state, self.entry, self.entry_tls, [a, b])?;
        nginx_test(&conf, &self.state)?;
        let mut command = Command::new(programs::find("nginx")?);
        command
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(self.state.join("nginx"))
            .arg("-e")
            .arg(self.state.join("logs/nginx-error.log"));
        let index = self.spawn("nginx", command)?;
        let entry = self.entry;
        probe::wait_until("nginx passes requests to the nodes", START_TIMEOUT, || {
            self.procs[index].check_running()?;
            Ok(matches!(probe::http_get(entry, "/healthz"), Ok((200, _))))
        })
    }

    fn spawn(&mut self, name: &str, command: Command) -> anyhow::Result<usize> {
        let log = self.state.join("logs").join(format!("{name}.log"));
        self.procs.push(Proc::spawn(name, command, &log)?);
        Ok(self.procs.len() - 1)
    }

    /// The process called `name`.
    pub fn process(&mut self, name: &str) -> anyhow::Result<&mut Proc> {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process {name}"))
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> anyhow::Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) to the process called `name`.
    pub fn signal(&mut self, name: &str, signal: &str) -> anyhow::Result<()> {
        self.process(name)?.signal(signal)
    }

    /// The exit status of the process called `name`, once it has exited.
    pub fn exited(&mut self, name: &str) -> anyhow::Result<Option<ExitStatus>> {
        self.process(name)?.exited()
    }

    /// The websocket URL through nginx.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.entry)
    }

    /// What runs where, for people.
    pub fn summary(&self, server: &Path) -> String {
        let mut lines = vec![format!(
            "Triad local cluster (state, logs and secrets in {}):",
            self.state.display()
        )];
        lines.push(format!(
            "  web client     http://{}/  (https://{}/, self-signed)",
            self.entry, self.entry_tls
        ));
        lines.push(format!("  websocket      {}", self.ws_url()));
        for node in &self.nodes {
            lines.push(format!(
                "  {:<14} http://{}  (/readyz), metrics http://{}/metrics",
                node.name, node.addr, node.metrics
            ));
        }
        lines.push(format!("  redis          {}", self.redis_url));
        lines.push(format!(
            "  turn           turn:{} (udp, tcp), turns:{}",
            self.turn, self.turn_tls
        ));
        lines.push(format!(
            "  sign in        {} token --person anna.jensen --jwt-secret-file {}",
            server.display(),
            self.jwt_secret_file.display()
        ));
        lines.join("\n")
    }

    /// Leaves the processes running and records them in the pid file for [`down`].
    pub fn detach(mut self) -> anyhow::Result<()> {
        let procs = std::mem::take(&mut self.procs);
        process::write_records(&self.state.join("pids"), &procs)
    }

    /// Stops everything gracefully, the entry first and the store last.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        for proc in self.procs.iter_mut().rev() {
            proc.stop(Duration::from_secs(30))?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            if let Err(err) = proc.signal("KILL") {
                eprintln!("cannot stop {}: {err:#}", proc.name);
            }
        }
        for proc in &mut self.procs {
            if let Err(err) = proc.wait() {
                eprintln!("cannot wait for {}: {err:#}", proc.name);
            }
        }
    }
}

/// Stops what `cluster up` left running from `state`: nginx first, Redis last; each gets
/// SIGTERM, and SIGKILL after 40 s (a node drains within its drain delay and shutdown
/// timeout).
pub fn down(state: &Path) -> anyhow::Result<Vec<String>> {
    let pids = state.join("pids");
    let records = process::read_records(&pids)?;
    let mut stopped = Vec::new();
    for record in records.iter().rev() {
        if record.is_running() {
            record.stop(Duration::from_secs(40))?;
            stopped.push(record.name.clone());
        }
    }
    if pids.exists() {
        std::fs::remove_file(&pids)?;
    }
    Ok(stopped)
}

/// The address in a node's "triad-server listening on ADDR" line, once written.
fn listening_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("triad-server listening on "))
        .and_then(|addr| addr.trim().parse().ok())
}

/// The address in a node's "triad-server metrics on ADDR" line (written before the
/// listening line).
fn metrics_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("triad-server metrics on "))
        .and_then(|addr| addr.trim().parse().ok())
}

/// Creates a 32-byte random secret, hex, readable by the owner only, unless it exists.
fn ensure_secret(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut bytes = [0_u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(process::private_file(path)?, "{hex}")?;
    Ok(())
}

/// Creates a self-signed certificate for localhost in `<state>/tls` unless it exists.
pub fn ensure_tls(state: &Path) -> anyhow::Result<()> {
    let tls = state.join("tls");
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&tls)?;
    let output = Command::new(programs::find("openssl")?)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    if !output.status.success() {
        bail!(
            "openssl could not make a certificate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Fills `deploy/nginx/triad.conf` and the local main configuration into
/// `<state>/nginx/`; returns the main configuration's path.
fn write_nginx_config(
    deploy: &Deploy,
    state: &Path,
    entry: SocketAddr,
    entry_tls: SocketAddr,
    nodes: [SocketAddr; 2],
) -> anyhow::Result<PathBuf> {
    let nginx = state.join("nginx");
    std::fs::create_dir_all(nginx.join("tmp"))?;
    std::fs::create_dir_all(state.join("logs"))?;
    let tls = state.join("tls");
    let site = template::render(
        &std::fs::read_to_string(&deploy.nginx_site)?,
        &[
            ("NGINX_LISTEN", entry.to_string()),
            ("NGINX_TLS_LISTEN", entry_tls.to_string()),
            ("NGINX_TLS_CERT", tls.join("cert.pem").display().to_string()),
            ("NGINX_TLS_KEY", tls.join("key.pem").display().to_string()),
            ("TRIAD_NODE_A", nodes[0].to_string()),
            ("TRIAD_NODE_B", nodes[1].to_string()),
        ],
    )
    .with_context(|| format!("filling {}", deploy.nginx_site.display()))?;
    std::fs::write(nginx.join("triad.conf"), site)?;
    let main = template::render(
        &std::fs::read_to_string(&deploy.nginx_main)?,
        &[("STATE", state.display().to_string())],
    )
    .with_context(|| format!("filling {}", deploy.nginx_main.display()))?;
    let conf = nginx.join("nginx.conf");
    std::fs::write(&conf, main)?;
    Ok(conf)
}

/// `nginx -t` on a filled configuration.
fn nginx_test(conf: &Path, state: &Path) -> anyhow::Result<()> {
    let output = Command::new(programs::find("nginx")?)
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(state.join("nginx"))
        .arg("-e")
        .arg(state.join("logs/nginx-error.log"))
        .output()?;
    if !output.status.success() {
        bail!(
            "nginx -t refused {}:\n{}",
            conf.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Fills the nginx configuration of `root`'s `deploy/` into `state` (with a fresh
/// certificate and the given node addresses) and checks it with `nginx -t`, as
/// [`Cluster::start`] does before starting nginx.
pub fn check_nginx(root: &Path, state: &Path, nodes: [SocketAddr; 2]) -> anyhow::Result<()> {
    ensure_tls(state)?;
    let deploy = Deploy::new(root);
    let conf = write_nginx_config(
        &deploy,
        state,
        loopback(probe::free_port()?),
        loopback(probe::free_port()?),
        nodes,
    )?;
    nginx_test(&conf, state)
}

/// Fills `deploy/coturn/turnserver.conf` as the compose file's coturn service does in
/// production (ports 3478 and 443), for checks.
pub fn coturn_production_config(root: &Path, realm: &str, secret: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(Deploy::new(root).coturn)?;
    template::render(&text, &coturn_production_values(realm, secret))
}

/// The compose file's values for coturn's placeholders.
pub fn coturn_production_values(realm: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TURN_PORT", "3478".into()),
        ("TURN_TLS_PORT", "443".into()),
        ("TURN_MIN_PORT", "49160".into()),
        ("TURN_MAX_PORT", "49200".into()),
        ("TURN_REALM", realm.into()),
        ("TURN_SECRET", secret.into()),
        ("TURN_CERT", "/etc/coturn/tls/fullchain.pem".into()),
        ("TURN_PKEY", "/etc/coturn/tls/privkey.pem".into()),
    ]
}
