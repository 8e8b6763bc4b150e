//! Servers in processes of their own: `bench serve --target X` started by the driver, pinned
//! to a CPU with `taskset`, so that their CPU time and memory are theirs alone.
//!
//! The server prints `listening ADDRESS` on its standard output once it listens, and exits as
//! soon as its standard input closes (so it never outlives the driver). [`serve_main`] is that
//! server's side; [`ServerProcess`] is the driver's. A TLS target's server is told where the
//! run's certificates are with `--tls-dir DIR` (see [`crate::certs`]).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::certs::Certs;
use crate::machine;
use crate::targets::{Target, TargetKind};
use crate::with_target;

/// The line a server prints once it listens, before the address.
const READY: &str = "listening ";

/// How a server is to be started.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Which server.
    pub target: TargetKind,
    /// Worker threads of its tokio runtime.
    pub threads: usize,
    /// The CPU to pin it to, if any.
    pub cpu: Option<usize>,
    /// The run's certificates, passed as `--tls-dir` (needed by a TLS target only).
    pub certs: Option<Certs>,
}

/// A server process started by the driver; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    address: SocketAddr,
}

/// Whether `taskset` (util-linux) can be run.
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl ServerProcess {
    /// Starts `bench serve` (this same executable) as `spec` says, and waits until it listens.
    /// Pins with `taskset -c CPU` when `taskset` exists, else with the server's own `--cpu`.
    pub fn spawn(spec: ServerSpec) -> anyhow::Result<ServerProcess> {
        let mut args = vec![
            "serve".to_owned(),
            "--target".to_owned(),
            spec.target.name().to_owned(),
        ];
        if let Some(certs) = &spec.certs {
            args.push("--tls-dir".to_owned());
            args.push(certs.dir().display().to_string());
        }
        ServerProcess::spawn_with(spec.target.name(), &args, spec.threads, spec.cpu)
    }

    /// Starts this same executable with `args` (a subcommand that takes `--threads` and
    /// `--cpu`, and prints `listening ADDRESS` once it listens, like `bench serve`), and waits
    /// until it listens. `name` names it in errors.
    pub fn spawn_with(
        name: &str,
        args: &[String],
        threads: usize,
        cpu: Option<usize>,
    ) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut command = match cpu {
            Some(cpu) if have_taskset() => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&exe);
                c
            }
            _ => Command::new(&exe),
        };
        command.args(args).arg("--threads").arg(threads.to_string());
        if let (Some(cpu), false) = (cpu, have_taskset()) {
            command.arg("--cpu").arg(cpu.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {name} server"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's address")?;
        let Some(address) = line.trim().strip_prefix(READY) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the {name} server did not start (said {line:?})");
        };
        let address = address.parse().context("the server's address")?;
        Ok(ServerProcess {
            child,
            stdin,
            address,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time it has used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        machine::cpu_ticks(Some(self.pid())).unwrap_or(0)
    }

    /// Its peak resident set size so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        machine::peak_rss_kib(Some(self.pid())).unwrap_or(0)
    }

    /// Its resident set size now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        machine::rss_kib(Some(self.pid())).unwrap_or(0)
    }

    /// Closes its standard input and waits (up to 5 s, then kills it) until it has exited.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the server did not exit when asked; killed it")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.stop_inner();
        }
    }
}

/// `bench serve`: serves `target` on `address` with `threads` workers (pinned to `cpu` if
/// given, with the certificates in `certs` if a TLS target), prints `listening ADDRESS`, and
/// exits when standard input closes.
pub fn serve_main(
    target: TargetKind,
    address: &str,
    threads: usize,
    cpu: Option<usize>,
    certs: Option<Certs>,
) -> anyhow::Result<()> {
    if target.tls() && certs.is_none() {
        bail!("{target} needs the run's certificates: --tls-dir DIR");
    }
    // A bad certificate file stops the server here, before it says it listens, not at the
    // first call.
    if let Some(certs) = certs.as_ref().filter(|_| target.tls()) {
        let settings = mprpc::config::ServerTls::new(certs.cert(), certs.key());
        mprpc::tls::Acceptor::new(&settings).context("the run's TLS certificate")?;
    }
    serve_on(address, threads, cpu, move |listener| async move {
        with_target!(target, T => T::serve(listener, certs.as_ref()).await)
    })
}

/// The body of a server process: pins it to `cpu` (if given), listens on `address` on a
/// runtime of `threads` workers, prints `listening ADDRESS`, runs `serve` on the listener,
/// and exits when standard input closes.
pub fn serve_on<F, Fut>(
    address: &str,
    threads: usize,
    cpu: Option<usize>,
    serve: F,
) -> anyhow::Result<()>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Some(cpu) = cpu {
        machine::pin_to_cpu(cpu).context("pinning the server")?;
    }
    machine::raise_open_files_limit().context("raising the open-files limit")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    std::thread::spawn(|| {
        // Anything read is ignored; the end of input is the signal to go.
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        println!("{READY}{local}");
        serve(listener).await
    })
}
