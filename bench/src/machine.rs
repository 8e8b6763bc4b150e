//! Where the figures came from: the machine, the command line, and the peak memory.

use std::fs;

/// One line naming the machine: CPUs, CPU model, kernel, and the load average right now
/// (figures from a busy machine are worth less).
pub fn describe() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "{cpus} CPUs ({model}), Linux {kernel}, {} {}; load average {load} at start",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The command line this process was started with, quoted for a POSIX shell where needed.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// This process's peak resident set size (`VmHWM` in `/proc/self/status`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time counters, to tell how much of the machine other processes used during a run.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    /// Busy clock ticks of the whole machine (all CPUs), from `/proc/stat`.
    machine_busy: u64,
    /// All clock ticks of the whole machine, busy or idle.
    machine_total: u64,
    /// Clock ticks this process used (user and system), from `/proc/self/stat`.
    process: u64,
}

impl CpuSnapshot {
    /// The counters now; `None` without `/proc`.
    pub fn take() -> Option<CpuSnapshot> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().unwrap_or(0))
            .collect();
        let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
        let total: u64 = ticks.iter().sum();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(CpuSnapshot {
            machine_busy: total - idle,
            machine_total: total,
            process,
        })
    }

    /// Between `self` and the later `end`: the share of the machine's CPU time (all CPUs)
    /// that this process used, and the share other processes (and the kernel on their behalf)
    /// used, in percent.
    pub fn shares_until(&self, end: &CpuSnapshot) -> (f64, f64) {
        let total = end.machine_total.saturating_sub(self.machine_total).max(1) as f64;
        let busy = end.machine_busy.saturating_sub(self.machine_busy);
        let own = end.process.saturating_sub(self.process);
        let others = busy.saturating_sub(own);
        (100.0 * own as f64 / total, 100.0 * others as f64 / total)
    }
}
