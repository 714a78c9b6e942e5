//! What the machine and the processes did, read from `/proc`: CPU seconds per process (and for
//! the whole Postgres server), the machine's busy time, and a process's peak resident memory
//! (`VmHWM`). Every reading is `None` where `/proc` is not available (a remote Postgres).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn field(fields: &[String], n: usize) -> f64 {
    // `n` is the 1-based field number of proc(5); the slice starts at field 3.
    fields
        .get(n - 3)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) a process has used so far, all threads.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((field(&f, 14) + field(&f, 15)) / ticks_per_second())
}

/// CPU seconds of the children this process has reaped (`cutime + cstime` of /proc/self).
pub fn reaped_children_cpu_seconds() -> f64 {
    stat_fields(std::process::id())
        .map(|f| (field(&f, 16) + field(&f, 17)) / ticks_per_second())
        .unwrap_or(0.0)
}

/// Peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds used by a whole Postgres server so far: the postmaster, its live children, and
/// the children it has reaped (backends that ended).
pub fn postgres_cpu_seconds(postmaster: u32) -> Option<f64> {
    let f = stat_fields(postmaster)?;
    let mut total = field(&f, 14) + field(&f, 15) + field(&f, 16) + field(&f, 17);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(child) = stat_fields(pid) {
            if field(&child, 4) as u32 == postmaster {
                total += field(&child, 14) + field(&child, 15);
            }
        }
    }
    Some(total / ticks_per_second())
}

/// The parent of a process (the postmaster of a backend).
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).map(|f| field(&f, 4) as u32)
}

/// Machine-wide CPU seconds so far: (busy, total) over all cores, from `/proc/stat`.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    let t = ticks_per_second();
    Some(((total - idle) / t, total / t))
}

/// The number of cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The 1-minute load average, to show how busy the shared machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `/proc` can be read (Linux).
pub fn have_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// CPU use of the parties of one measured interval.
#[derive(Debug, Clone, Default)]
pub struct CpuSplit {
    /// Wall time of the interval.
    pub wall: Duration,
    /// (label, CPU seconds) of each measured process.
    pub parts: Vec<(String, f64)>,
    /// The whole Postgres server.
    pub postgres: Option<f64>,
    /// All cores together: busy CPU seconds of the machine.
    pub machine_busy: Option<f64>,
}

impl CpuSplit {
    /// `worker 12.3 s, emulator 4.5 s, postgres 20.1 s, other 3.0 s of 40.0 core-s (2 cores x 20.0 s)`
    pub fn describe(&self) -> String {
        let wall = self.wall.as_secs_f64();
        let mut out: Vec<String> = self
            .parts
            .iter()
            .map(|(l, s)| format!("{l} {s:.1}"))
            .collect();
        if let Some(pg) = self.postgres {
            out.push(format!("postgres {pg:.1}"));
        }
        if let Some(busy) = self.machine_busy {
            let known: f64 =
                self.parts.iter().map(|(_, s)| s).sum::<f64>() + self.postgres.unwrap_or(0.0);
            out.push(format!("other {:.1}", (busy - known).max(0.0)));
            out.push(format!(
                "idle {:.1}",
                (wall * cores() as f64 - busy).max(0.0)
            ));
        }
        format!(
            "CPU s: {} (of {:.1} core-s = {} cores x {:.1} s)",
            out.join(", "),
            wall * cores() as f64,
            cores(),
            wall
        )
    }
}
