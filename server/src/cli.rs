//! The `triad-server` command line: `serve`, `demo`, `token`, `import`, `export`,
//! `import-data`, `invite`, `report`, `config`.
//! This module is the body of the binary (hence `anyhow`); it lives in the library so the
//! end-to-end tests can start the very same program.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use triad_protocol::{PersonId, Role, RoomKind};

use crate::auth::TokenMinter;
use crate::backup::{self, Backup};
use crate::config::{Config, ConfigOverrides, LogFormat};
use crate::programme::{DEMO_ROSTER, Roster};
use crate::server::Server;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::{NoSink, SharedStore, Store};

#[derive(Parser)]
#[command(
    name = "triad-server",
    version,
    about = "Triad: real-time collaboration for trio mentoring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// A TOML configuration file (see `triad-server config`).
    #[arg(long, short = 'c', env = "TRIAD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigOverrides,
}

impl Common {
    fn load(self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref(), self.overrides)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Common),
    /// Run the server on the embedded store with a demo programme, printing how each
    /// person signs in. Reuses the data folder if it exists.
    Demo(Common),
    /// Mint a token for a person.
    Token {
        /// The person's id.
        #[arg(long)]
        person: String,
        /// Hours the token is valid.
        #[arg(long, default_value_t = 8)]
        ttl_hours: u64,
        /// PEM private key, for EdDSA or RS256.
        #[arg(long)]
        private_key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Create a single-use sign-in link for a person (the coordinator's first sign-in, say).
    /// With the embedded store, stop the server first; while it runs, use
    /// `POST /api/invitations`.
    Invite {
        /// The person's id.
        #[arg(long)]
        person: String,
        /// Hours the link lasts [default: the configured invitation_ttl_secs].
        #[arg(long)]
        ttl_hours: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Load a programme roster (TOML) into the store. With the embedded store, stop the
    /// server first.
    Import {
        /// The roster file.
        roster: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Write everything in the store (people, rooms, every event, call records, read
    /// markers) as JSON lines to FILE, or to standard output. With the embedded store, stop
    /// the server first.
    Export {
        /// Where to write; standard output if left out.
        file: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Load a file written by `export` into the store: to restore a backup, or to move from
    /// the embedded store to Redis. Checks the whole file first and refuses rooms that
    /// already have events. With the embedded store, stop the server first.
    ImportData {
        /// The file written by `export`.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Write a trio's cycle report (sessions and attendance, messages per member, key
    /// learning) as Markdown, HTML or CSV, to FILE or to standard output. With the embedded
    /// store, stop the server first.
    Report {
        /// The trio room, e.g. `trio-1`.
        #[arg(long)]
        room: String,
        /// The cycle's id, e.g. `cycle-1`.
        #[arg(long)]
        cycle: String,
        /// `md`, `html` or `csv`.
        #[arg(long, default_value = "md")]
        format: crate::report::Format,
        /// Where to write; standard output if left out.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Print an example configuration file with every setting and its default.
    Config,
}

/// Runs the command line.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(common) => {
            let config = common.load()?;
            init_logs(config.log_format);
            runtime.block_on(serve(config))
        }
        Command::Demo(common) => {
            let config = common.load()?;
            init_logs(config.log_format);
            runtime.block_on(demo(config))
        }
        Command::Token {
            person,
            ttl_hours,
            private_key,
            common,
        } => {
            let config = common.load()?;
            let person = PersonId::new(person)?;
            let minter = match private_key {
                Some(path) => {
                    let pem = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    TokenMinter::with_private_key(&pem, &config.jwt)?
                }
                None => TokenMinter::from_config(&config.jwt, &config.data_dir)?,
            };
            println!(
                "{}",
                minter.mint(&person, Duration::from_secs(ttl_hours * 3600))?
            );
            Ok(())
        }
        Command::Import { roster, common } => {
            let config = common.load()?;
            runtime.block_on(import(&config, &roster))
        }
        Command::Invite {
            person,
            ttl_hours,
            common,
        } => {
            let config = common.load()?;
            runtime.block_on(invite(&config, &person, ttl_hours))
        }
        Command::Export { file, common } => {
            let config = common.load()?;
            runtime.block_on(export(&config, file.as_deref()))
        }
        Command::ImportData { file, common } => {
            let config = common.load()?;
            runtime.block_on(import_data(&config, &file))
        }
        Command::Report {
            room,
            cycle,
            format,
            out,
            common,
        } => {
            let config = common.load()?;
            runtime.block_on(report(&config, &room, &cycle, format, out.as_deref()))
        }
        Command::Config => {
            print!("{}", Config::example_toml());
            Ok(())
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    tracing::info!(addr = %server.local_addr(), "listening");
    // Parsed by the end-to-end tests and by people: keep these lines' shape, and the
    // metrics line (when there is one) before the other.
    if let Some(metrics) = server.metrics_addr() {
        println!("triad-server metrics on {metrics}");
    }
    println!("triad-server listening on {}", server.local_addr());
    server.run(shutdown_signal()).await;
    Ok(())
}

/// Opens the configured store without serving (for `import` and the demo's seeding).
async fn open_offline(config: &Config) -> anyhow::Result<SharedStore> {
    if config.store != "embedded" {
        let store = RedisStore::open(&config.store, Arc::new(NoSink))
            .await
            .with_context(|| format!("opening {}", config.store))?;
        return Ok(Arc::new(store));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = EmbeddedStore::open(&config.store_path(), Arc::new(NoSink)).with_context(|| {
        format!(
            "opening {} (is a server running on it?)",
            config.store_path().display()
        )
    })?;
    Ok(Arc::new(store))
}

/// Where the configured store is, for messages.
fn store_name(config: &Config) -> String {
    if config.store == "embedded" {
        config.store_path().display().to_string()
    } else {
        config.store.clone()
    }
}

async fn import(config: &Config, path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let roster = match Roster::parse(&text) {
        Ok(roster) => roster,
        Err(err) => bail!("{}: {err}", path.display()),
    };
    let store = open_offline(config).await?;
    let summary = crate::programme::admin::apply_roster(store.as_ref(), None, &roster).await?;
    println!(
        "imported {} people, {} trios, {} regions and {} cycles into {}",
        summary.people,
        summary.trios,
        summary.regions,
        summary.cycles,
        store_name(config)
    );
    for person in &summary.removed {
        println!("removed {person}: no longer in the roster; their tokens are revoked");
    }
    Ok(())
}

async fn invite(config: &Config, person: &str, ttl_hours: Option<u64>) -> anyhow::Result<()> {
    let person = PersonId::new(person)?;
    let store = open_offline(config).await?;
    let hub = Arc::new(crate::hub::Hub::new(
        config.send_rate_per_second,
        config.send_burst,
    ));
    let grants = crate::auth::Grants::new(
        store,
        hub,
        TokenMinter::for_server(&config.jwt, &config.data_dir),
        crate::auth::GrantSettings {
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            invitation_ttl: config.invitation_ttl,
            revocation_leeway: config.jwt.leeway,
            refresh_retry_window: config.refresh_retry_window,
        },
    );
    let ttl = ttl_hours.map(|hours| Duration::from_secs(hours * 3600));
    let invitation = grants.invite(&person, &person, ttl).await?;
    println!(
        "{}/#invite={}",
        config.public_url().trim_end_matches('/'),
        invitation.code
    );
    eprintln!(
        "a single-use sign-in link for {person}, valid until {} UTC",
        crate::schedule::rules::utc(invitation.expires_at)
    );
    Ok(())
}

async fn export(config: &Config, file: Option<&Path>) -> anyhow::Result<()> {
    if config.store == "embedded" && !config.store_path().exists() {
        bail!("there is no store at {}", config.store_path().display());
    }
    let store = open_offline(config).await?;
    let counts = match file {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            backup::export(store.as_ref(), &mut out).await?
        }
        Some(path) => export_to_file(store.as_ref(), path).await?,
    };
    // Standard output may be the backup itself.
    eprintln!("exported {counts} from {}", store_name(config));
    Ok(())
}

/// Writes the backup next to `path`, then renames it into place once complete and synced,
/// so that `path` never holds part of a backup.
async fn export_to_file(store: &dyn Store, path: &Path) -> anyhow::Result<backup::Counts> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = match backup::export(store, &mut out).await {
        Ok(counts) => out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&partial, path))
            .map(|()| counts)
            .with_context(|| format!("writing {}", path.display())),
        Err(err) => Err(err.into()),
    };
    if written.is_err() && std::fs::remove_file(&partial).is_err() {
        eprintln!("could not remove {}", partial.display());
    }
    written
}

async fn import_data(config: &Config, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let backup = match Backup::parse(std::io::BufReader::new(file)) {
        Ok(backup) => backup,
        Err(err) => bail!("{}: {err}", path.display()),
    };
    let store = open_offline(config).await?;
    let imported = backup::import(store.as_ref(), &backup)
        .await
        .with_context(|| format!("importing {} into {}", path.display(), store_name(config)))?;
    println!("imported {} into {}", imported.counts, store_name(config));
    println!("restored rooms have a new history epoch: clients reload their history");
    for warning in &imported.warnings {
        println!("warning: {warning}");
    }
    Ok(())
}

async fn report(
    config: &Config,
    room: &str,
    cycle: &str,
    format: crate::report::Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    if config.store == "embedded" && !config.store_path().exists() {
        bail!("there is no store at {}", config.store_path().display());
    }
    let room = triad_protocol::RoomId::new(room)?;
    let store = open_offline(config).await?;
    let Some(cycle) = crate::programme::model::cycle(store.as_ref(), cycle).await? else {
        bail!("there is no cycle {cycle:?} in {}", store_name(config));
    };
    let hub = Arc::new(crate::hub::Hub::new(
        config.send_rate_per_second,
        config.send_burst,
    ));
    let schedule = crate::schedule::Schedule::new(store.clone(), hub);
    let report = crate::report::build(
        store.as_ref(),
        &schedule,
        &room,
        &cycle,
        crate::store::now_ms(),
    )
    .await?;
    let text = report.render(format);
    match out {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote the {} report of {room} for {} to {}",
                format.extension(),
                cycle.name,
                path.display()
            );
        }
    }
    Ok(())
}

/// Creates the demo secret once: 32 random bytes, hex, readable only by the owner.
fn ensure_secret(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, hex + "\n").with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

async fn demo(mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    if config.jwt.secret.is_none() && config.jwt.secret_file.is_none() {
        ensure_secret(&config.data_dir.join("jwt-secret"))?;
    }
    let programme = {
        let store = open_offline(&config).await?;
        let mut programme = store.programme().await?;
        if programme.people.is_empty() {
            let roster = Roster::parse(DEMO_ROSTER).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::programme::admin::apply_roster(store.as_ref(), None, &roster).await?;
            programme = roster.programme;
        }
        programme
    };
    let minter = TokenMinter::from_config(&config.jwt, &config.data_dir)?;
    let server = Server::bind(config.clone()).await?;
    config.listen = server.local_addr();
    let base = config.public_url();
    let ws = format!("{}/ws", base.replacen("http", "ws", 1));
    println!(
        "Triad demo running at {base} (data in {})",
        config.data_dir.display()
    );
    println!("triad-server listening on {}", server.local_addr());
    println!();
    println!("Sign in from another terminal as any of these people (tokens valid 30 days):");
    for person in &programme.people {
        let room = programme
            .rooms
            .iter()
            .find(|r| {
                r.kind == RoomKind::Trio
                    && (r.members.contains(&person.id) || r.moderators.contains(&person.id))
            })
            .map_or("commons".to_string(), |r| r.id.to_string());
        let role = match person.role {
            Role::Head => "head",
            Role::Moderator => "moderator",
            Role::Coordinator => "coordinator",
        };
        let token = minter.mint(&person.id, Duration::from_secs(30 * 24 * 3600))?;
        println!();
        println!("  {} ({role}, {room}):", person.name);
        println!("    cargo run -p triad-cli -- chat --server {ws} --room {room} --token {token}");
        // The token rides in the fragment, which browsers never send to the server.
        println!("    browser: {}/#token={token}", base.trim_end_matches('/'));
    }
    println!();
    println!("A moderator types /join in a trio room to enter it. Stop with Ctrl-C.");
    server.run(shutdown_signal()).await;
    Ok(())
}
