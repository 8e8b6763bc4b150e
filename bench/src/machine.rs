//! Where the figures came from and what each process used: the machine, the command line,
//! CPU time and memory of a process (from `/proc`), and the open-files limit.

use std::fs;

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// One line naming the machine: CPUs, CPU model, kernel, and the load average right now
/// (figures from a busy machine are worth less).
pub fn describe() -> String {
    let cpus = cpu_count();
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
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| field_kib(&m, "MemTotal:"))
        .map_or_else(String::new, |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    format!(
        "{cpus} CPUs ({model}){memory}, Linux {kernel}, {} {}; load average {load} at start",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// CPUs this machine has (all of them, whatever this thread is pinned to).
pub fn cpu_count() -> usize {
    let listed = fs::read_to_string("/proc/stat").map_or(0, |stat| {
        stat.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
    });
    if listed > 0 {
        listed
    } else {
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    }
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

/// A `kB` field of a `/proc` status-like text, e.g. `VmHWM:`.
fn field_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process: `None` for this one, else its pid.
fn proc_dir(pid: Option<u32>) -> String {
    pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"))
}

/// Peak resident set size (`VmHWM`) of a process (`None`: this one), in KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    field_kib(
        &fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?,
        "VmHWM:",
    )
}

/// Resident set size now (`VmRSS`) of a process (`None`: this one), in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    field_kib(
        &fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?,
        "VmRSS:",
    )
}

/// CPU time a process (`None`: this one) has used, user plus system, all threads, in clock
/// ticks ([`TICKS_PER_SECOND`]).
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = fs::read_to_string(format!("{}/stat", proc_dir(pid))).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Steal (see [`MachineCpu::steal`]) above this share of the machine's CPU time makes a run's
/// timed figures suspect.
pub const NOISY_STEAL_PERCENT: f64 = 2.0;

/// The whole machine's CPU time counters (all CPUs), from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    /// Busy clock ticks.
    pub busy: u64,
    /// All clock ticks, busy or idle.
    pub total: u64,
    /// Ticks the hypervisor ran something else while this machine's CPUs wanted to run
    /// (`steal`): time taken by the host, which slows every target at random.
    pub steal: u64,
}

impl MachineCpu {
    /// The counters now; zero without `/proc`.
    pub fn take() -> MachineCpu {
        let Ok(stat) = fs::read_to_string("/proc/stat") else {
            return MachineCpu::default();
        };
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().unwrap_or(0))
            .collect();
        let idle = ticks.get(3).unwrap_or(&0) + ticks.get(4).unwrap_or(&0);
        let total: u64 = ticks.iter().sum();
        MachineCpu {
            busy: total.saturating_sub(idle),
            total,
            steal: *ticks.get(7).unwrap_or(&0),
        }
    }

    /// Between `self` and the later `end`: the share of all the machine's CPU time the host
    /// took (steal), in percent. On a quiet host it is 0; a few percent or more means timed
    /// figures of the run, and ratios between targets measured at different moments, moved
    /// with the host's load.
    pub fn steal_percent(&self, end: &MachineCpu) -> f64 {
        let total = end.total.saturating_sub(self.total).max(1) as f64;
        100.0 * end.steal.saturating_sub(self.steal) as f64 / total
    }

    /// The warning a run's goals get when the host took more than [`NOISY_STEAL_PERCENT`] of
    /// the machine's CPU time between `self` and the later `end`; `None` on a quiet host.
    pub fn steal_warning(&self, end: &MachineCpu) -> Option<String> {
        let steal = self.steal_percent(end);
        (steal > NOISY_STEAL_PERCENT).then(|| {
            format!(
                "**The host took {steal:.1}% of the machine's CPU time during this run (steal).** \
                 Every timed figure moved with its load, and targets measured at different \
                 moments were slowed by different amounts: a line may PASS or MISS by that \
                 alone. Repeat the run on a quiet host, or compare instruction counts \
                 (`callcount` under callgrind)."
            )
        })
    }

    /// Between `self` and the later `end`: the share of all the machine's CPU time not
    /// accounted for by `own_ticks` (the processes being measured), in percent.
    pub fn others_percent(&self, end: &MachineCpu, own_ticks: u64) -> f64 {
        let total = end.total.saturating_sub(self.total).max(1) as f64;
        let busy = end.busy.saturating_sub(self.busy);
        100.0 * busy.saturating_sub(own_ticks) as f64 / total
    }
}

/// Raises this process's soft limit on open files to its hard limit (for thousands of
/// connections); returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    Ok(hard.max(soft))
}

/// Pins the calling thread, and so every thread it starts afterwards, to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(std::io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_measured() {
        assert!(peak_rss_kib(None).unwrap() > 0);
        assert!(rss_kib(None).unwrap() > 0);
        assert!(cpu_ticks(None).is_some());
        let m = MachineCpu::take();
        assert!(m.total >= m.busy && m.total > 0 && m.busy >= m.steal);
        let later = MachineCpu {
            total: m.total + 1000,
            steal: m.steal + 50,
            ..m
        };
        assert!((m.steal_percent(&later) - 5.0).abs() < 1e-9);
        assert_eq!(m.steal_percent(&m), 0.0);
        assert!(m.steal_warning(&m).is_none());
        let warning = m.steal_warning(&later).expect("5% of steal is noisy");
        assert!(warning.contains("5.0%"), "{warning}");
    }

    #[test]
    fn arguments_are_quoted_when_needed() {
        assert_eq!(quote("--payloads=64,4096"), "--payloads=64,4096");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
