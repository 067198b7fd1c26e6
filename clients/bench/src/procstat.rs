//! CPU time and memory of a process, read from `/proc/<pid>` (Linux): `stat` for user and
//! system time, `status` for the resident set (`VmRSS`) and its peak (`VmHWM`).

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Sample {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads a process; `None` if it is gone (or this is not Linux).
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields we want follow its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ... utime(14) stime(15) ... num_threads(20), 1-based in `man
    // proc`, so 11, 12 and 17 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(Sample {
        cpu_seconds: (utime + stime) / ticks_per_second(),
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
        threads,
    })
}

/// A process to watch during a run, with its role (`server`, `redis`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Watched {
    /// What it is.
    pub role: String,
    /// Its pid.
    pub pid: u32,
}

/// What a process used over an interval.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Usage {
    /// What it is (`server`, `redis`).
    pub role: String,
    /// CPU seconds used over the interval.
    pub cpu_seconds: f64,
    /// CPU used as a share of one core (1.0 = one core busy) over the interval.
    pub cpu_cores: f64,
    /// Resident set at the end, KiB.
    pub rss_kib: u64,
    /// Peak resident set so far, KiB.
    pub peak_rss_kib: u64,
}

/// Readings of several processes at one time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: std::time::Instant,
    samples: Vec<(Watched, Sample)>,
}

impl Snapshot {
    /// Reads every watched process now.
    pub fn take(watched: &[Watched]) -> Self {
        Self {
            at: std::time::Instant::now(),
            samples: watched
                .iter()
                .map(|w| (w.clone(), sample(w.pid).unwrap_or_default()))
                .collect(),
        }
    }

    /// Resident set of the process with this role, KiB.
    pub fn rss_kib(&self, role: &str) -> u64 {
        self.samples
            .iter()
            .find(|(w, _)| w.role == role)
            .map_or(0, |(_, s)| s.rss_kib)
    }

    /// What each process used between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Vec<Usage> {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        self.samples
            .iter()
            .map(|(w, now)| {
                let before = earlier
                    .samples
                    .iter()
                    .find(|(e, _)| e.pid == w.pid)
                    .map(|(_, s)| *s)
                    .unwrap_or_default();
                let cpu = (now.cpu_seconds - before.cpu_seconds).max(0.0);
                Usage {
                    role: w.role.clone(),
                    cpu_seconds: cpu,
                    cpu_cores: cpu / seconds,
                    rss_kib: now.rss_kib,
                    peak_rss_kib: now.peak_rss_kib,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).expect("/proc is readable");
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
    }
}
