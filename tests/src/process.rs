//! Running the test provider as a real process, and stopping it with real signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A provider process; killed (SIGKILL) and reaped when dropped, so no test leaves one behind.
#[derive(Debug)]
pub struct ProviderProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Where it listens.
    pub address: String,
    /// Where it serves its admin pages, if it was started with `--admin`.
    pub admin: Option<std::net::SocketAddr>,
}

impl ProviderProcess {
    /// Starts `program` (the `test_provider` binary) with `args`, and waits until it prints
    /// its address.
    pub fn start(program: &str, args: &[&str]) -> ProviderProcess {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the provider process");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = ProviderProcess {
            child,
            lines,
            address: String::new(),
            admin: None,
        };
        let mut line = process.wait_for_line("on ", Duration::from_secs(30));
        if let Some(admin) = line.strip_prefix("admin on ") {
            process.admin = Some(admin.parse().expect("an admin address"));
            line = process.wait_for_line("listening on ", Duration::from_secs(30));
        }
        process.address = line
            .rsplit(' ')
            .next()
            .expect("address on the line")
            .to_owned();
        process
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?} from the provider: {e}"),
            }
        }
    }

    /// Its resident memory (`VmRSS`), in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("a VmRSS line")
            * 1024
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends a signal. Delivery is asynchronous, so for `SIGSTOP` and `SIGCONT` this also
    /// waits until every thread of the process is stopped (or running again): a test that
    /// freezes a provider and then calls it must not race the signal.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("send the signal");
        let want_stopped = match signal {
            Signal::SIGSTOP => true,
            Signal::SIGCONT => false,
            _ => return,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.all_threads_stopped() != want_stopped {
            assert!(
                Instant::now() < deadline,
                "the provider did not take {signal} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether every thread is in the stopped state (`T` in `/proc/PID/task/*/stat`).
    fn all_threads_stopped(&self) -> bool {
        let tasks = format!("/proc/{}/task", self.pid());
        let Ok(entries) = std::fs::read_dir(&tasks) else {
            return false;
        };
        entries.filter_map(Result::ok).all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    // The state follows the command name, which is in parentheses.
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().next().map(|s| s == "T")
                })
                // A thread that exited meanwhile does not hold the process up.
                .unwrap_or(true)
        })
    }

    /// Waits up to `limit` for the process to exit; returns whether it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
