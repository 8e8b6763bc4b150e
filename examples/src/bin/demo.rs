//! The main job: a provider and a consumer talking, as two processes, on the embedded static
//! registry. Runs `demo provider ...` as a child, waits until it listens on a free port, runs
//! `demo consumer ... --addr PORT`, then stops the provider with SIGTERM (a graceful shutdown).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use mprpc_examples::{consumer, provider, report};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Kills the child if the demo stops early, so no provider is left behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn main() -> ExitCode {
    let role = std::env::args().nth(1);
    let outcome = match role.as_deref() {
        Some("provider") => provider::run(provider::Args::parse_from(std::env::args().skip(1))),
        Some("consumer") => consumer::run(consumer::Args::parse_from(std::env::args().skip(1))),
        _ => demo(),
    };
    report::exit(outcome)
}

fn demo() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");

    println!("== starting a provider of fixbug.UserServiceRpc and fixbug.FriendServiceRpc ==");
    let child = Command::new(&exe)
        .arg("provider")
        .arg("-i")
        .arg(config_dir.join("provider.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the provider")?;
    let mut provider = ChildGuard(child);
    let stdout = provider.0.stdout.take().context("no provider stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = wait_for_address(&lines, Duration::from_secs(30))?;
    println!("provider (pid {}) is listening on {addr}", provider.0.id());

    println!("== running a consumer against it ==");
    let consumer = Command::new(&exe)
        .arg("consumer")
        .arg("-i")
        .arg(config_dir.join("consumer.toml"))
        .args(["--addr", &addr])
        .status()
        .context("cannot start the consumer")?;

    println!("== stopping the provider with SIGTERM ==");
    let pid = Pid::from_raw(i32::try_from(provider.0.id()).context("pid out of range")?);
    kill(pid, Signal::SIGTERM).context("cannot signal the provider")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = provider.0.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            bail!("the provider did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        println!("{line}");
    }
    println!("provider exited: {status}");
    if !consumer.success() {
        bail!("the consumer failed: {consumer}");
    }
    if !status.success() {
        bail!("the provider failed: {status}");
    }
    println!("demo finished: every call answered");
    Ok(())
}

fn wait_for_address(lines: &mpsc::Receiver<String>, limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("provider listening on ") {
                    return Ok(addr.trim().to_owned());
                }
                println!("{line}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("the provider did not start within {limit:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the provider exited before listening")
            }
        }
    }
}
