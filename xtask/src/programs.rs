//! The outside programs the tests and the local cluster start, found on the `PATH` (or in
//! the `sbin` folders, where Debian puts nginx), each with the command that installs it.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// A program the tests need and the Debian package (or pip package) that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The command's name.
    pub name: &'static str,
    /// How to install it.
    pub install: &'static str,
}

/// Every program the test run starts.
pub const NEEDED: &[Program] = &[
    Program {
        name: "redis-server",
        install: "apt-get install redis-server",
    },
    Program {
        name: "nginx",
        install: "apt-get install nginx-light",
    },
    Program {
        name: "turnserver",
        install: "apt-get install coturn",
    },
    Program {
        name: "openssl",
        install: "apt-get install openssl",
    },
    Program {
        name: "docker-compose",
        install: "apt-get install docker-compose",
    },
    Program {
        name: "systemd-analyze",
        install: "apt-get install systemd",
    },
    Program {
        name: "kubernetes-validate",
        install: "pip install kubernetes-validate",
    },
];

/// Where `name` is installed; an error saying how to install it otherwise.
pub fn find(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let folders = std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    for folder in folders {
        let candidate = folder.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    match NEEDED.iter().find(|p| p.name == name) {
        Some(program) => bail!("{name} not found: install it ({})", program.install),
        None => bail!("{name} not found"),
    }
}

/// Every needed program that is missing, with its install hint.
pub fn missing() -> Vec<String> {
    NEEDED
        .iter()
        .filter_map(|p| find(p.name).err().map(|e| e.to_string()))
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
