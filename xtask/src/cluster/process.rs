//! The cluster's processes: started in a process group of their own with their output in
//! a log file, signalled with `kill`, and recorded in a pid file so that
//! `cargo xtask cluster down` can stop what `cluster up` left running.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// One running program of the cluster.
#[derive(Debug)]
pub struct Proc {
    /// Its name in the cluster (`redis`, `node-a`, ...).
    pub name: String,
    /// Where its standard output and error go.
    pub log: PathBuf,
    child: Child,
    /// The program's file name, to recognise the process in `/proc` later.
    program: String,
    /// Set once it has exited and been waited for.
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `command` as `name`, its output in `log` (emptied first: a log holds one
    /// run).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let program = Path::new(command.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A group of its own: a Ctrl-C meant for the terminal does not reach it.
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            program,
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Fails with the end of its log if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.exited()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            ),
        }
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) unless it has exited.
    pub fn signal(&mut self, signal: &str) -> anyhow::Result<()> {
        if self.exited()?.is_none() {
            send_signal(self.pid(), signal)?;
        }
        Ok(())
    }

    /// Asks it to stop (SIGTERM); kills it if it is still running after `grace`.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        self.signal("TERM")?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("KILL")?;
        self.wait()
    }

    /// Waits until it has exited.
    pub fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// This process as a line of the pid file.
    fn record(&self) -> String {
        format!("{}\t{}\t{}", self.name, self.pid(), self.program)
    }
}

/// The last `lines` lines of a log file.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed");
    }
    Ok(())
}

/// Writes the pid file: one line per process, `name pid program`, tab-separated.
pub fn write_records(path: &Path, procs: &[Proc]) -> anyhow::Result<()> {
    let lines: Vec<String> = procs.iter().map(Proc::record).collect();
    std::fs::write(path, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// A process recorded in the pid file by an earlier `cluster up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its name in the cluster.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// The program's file name.
    pub program: String,
}

impl Record {
    /// Whether the process still runs and is still that program (a pid can be reused).
    pub fn is_running(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // "pid (comm) state ...": a zombie has exited already.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        let comm = stat
            .split_once(" (")
            .and_then(|(_, rest)| rest.rsplit_once(") "))
            .map(|(comm, _)| comm);
        // The kernel keeps the first 15 bytes of a program's name.
        let short: String = self.program.chars().take(15).collect();
        matches!(state, Some(s) if s != 'Z') && comm == Some(short.as_str())
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`. Does nothing if it is gone.
    pub fn stop(&self, grace: Duration) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        send_signal(self.pid, "TERM")?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_running() {
            send_signal(self.pid, "KILL")?;
        }
        Ok(())
    }
}

/// Reads a pid file; no file means no processes.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            let (Some(name), Some(pid), Some(program)) =
                (fields.next(), fields.next(), fields.next())
            else {
                bail!("{}: bad line {line:?}", path.display());
            };
            Ok(Record {
                name: name.to_string(),
                pid: pid
                    .parse()
                    .with_context(|| format!("bad pid in {line:?}"))?,
                program: program.to_string(),
            })
        })
        .collect()
}

/// Creates (or truncates) a file readable by its owner only, for secrets.
pub fn private_file(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}
