//! Registering and discovering many providers in ZooKeeper.
//!
//! A private standalone ZooKeeper is started with `scripts/zk.sh start` (on free ports, in a
//! temporary directory) and stopped afterwards. One [`ZkRegistry`] (the providers' side, one
//! session) registers `n` instances of one service with distinct addresses through
//! [`Registry::register`], one after the other; then a second `ZkRegistry` (a consumer, its
//! own session) calls [`Registry::discover`] and waits until its list holds all `n`. Then the
//! providers' side deregisters them all, and registers them again, all at once this time.
//!
//! Memory is the growth of this process's resident set over each step (the registry clients
//! live in it), and the growth of the ZooKeeper server's (a JVM with a 32 MiB initial heap, so
//! its figure says more about the JVM than about the nodes).

use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::future::join_all;
use mprpc::registry::{Registration, Registry, ServiceInstance, ZkRegistry};
use tokio::runtime::Runtime;

use crate::machine;

/// The service the instances are registered under.
const SERVICE: &str = "mprpc.bench.Bench";
/// The registry root for the benchmark.
const ROOT: &str = "/mprpc-bench";

/// A private ZooKeeper, stopped when dropped.
struct ZooKeeper {
    dir: String,
    connect: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("zk.sh")
}

impl ZooKeeper {
    fn start() -> anyhow::Result<ZooKeeper> {
        let output = Command::new("bash")
            .arg(script())
            .arg("start")
            .output()
            .context("running scripts/zk.sh start")?;
        if !output.status.success() {
            bail!(
                "scripts/zk.sh start failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let out = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
                .with_context(|| format!("no {key} in the output of zk.sh start"))
        };
        Ok(ZooKeeper {
            dir: value("ZK_DIR=")?,
            connect: value("ZK_CONNECT=")?,
        })
    }

    /// The JVM's resident memory, KiB.
    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("{}/node1/pid", self.dir))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .and_then(|pid| machine::rss_kib(Some(pid)))
            .unwrap_or(0)
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// One step's cost.
#[derive(Clone, Debug)]
pub struct Step {
    /// What was done.
    pub what: String,
    /// How long it took.
    pub time: Duration,
    /// Growth of this process's RSS, KiB.
    pub client_growth_kib: i64,
    /// Growth of ZooKeeper's RSS, KiB.
    pub server_growth_kib: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Registers and discovers `n` instances in a fresh ZooKeeper.
pub fn measure(n: usize, runtime: &Runtime) -> anyhow::Result<Vec<Step>> {
    eprintln!("zk: starting ZooKeeper");
    let zk = ZooKeeper::start()?;
    let session = Duration::from_secs(10);
    let instances: Vec<ServiceInstance> = (0..n)
        .map(|i| {
            let mut instance = ServiceInstance::new(
                SERVICE,
                format!("127.0.{}.{}:{}", 1 + i / 250, 1 + i % 250, 20_000 + i),
            );
            instance.methods = vec!["Echo".to_owned()];
            instance.version = env!("CARGO_PKG_VERSION").to_owned();
            instance
        })
        .collect();
    let mut steps = Vec::new();
    // Runs one step; a failed step is recorded and the run goes on (returns false).
    let mut step = |what: String, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        let client_before = machine::rss_kib(None).unwrap_or(0) as i64;
        let server_before = zk.rss_kib() as i64;
        let started = Instant::now();
        let outcome = f();
        let time = started.elapsed();
        eprintln!("zk: {what}: {time:?} {outcome:?}");
        let ok = outcome.is_ok();
        steps.push(Step {
            what,
            time,
            client_growth_kib: machine::rss_kib(None).unwrap_or(0) as i64 - client_before,
            server_growth_kib: zk.rss_kib() as i64 - server_before,
            error: outcome.err().map(|e| format!("{e:#}")),
        });
        ok
    };

    let providers = ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), session)?;
    let consumer = ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), session)?;
    // Open both sessions first, so that the steps time the work and not the connecting.
    runtime.block_on(async {
        providers.services().await?;
        consumer.services().await
    })?;

    let mut registrations: Vec<Box<dyn Registration>> = Vec::new();
    let mut failures = Vec::new();
    let mut discovered = None;
    let registered = step(format!("register {n}, one after the other"), &mut || {
        runtime.block_on(async {
            for instance in &instances {
                registrations.push(providers.register(instance.clone()).await?);
            }
            anyhow::Ok(())
        })
    });
    if registered {
        step(format!("discover {n} (a new consumer)"), &mut || {
            runtime.block_on(async {
                let mut list = consumer.discover(SERVICE).await?;
                tokio::time::timeout(Duration::from_secs(120), list.wait_for(|l| l.len() >= n))
                    .await
                    .context("the consumer did not see every instance within 120 s")??;
                discovered = Some(list);
                anyhow::Ok(())
            })
        });
    }
    step(format!("deregister {n}, one after the other"), &mut || {
        runtime.block_on(async {
            for registration in registrations.drain(..) {
                registration.deregister().await?;
            }
            anyhow::Ok(())
        })
    });
    if discovered.is_some() {
        step(format!("consumer sees 0 of {n}"), &mut || {
            runtime.block_on(async {
                if let Some(list) = discovered.as_mut() {
                    tokio::time::timeout(Duration::from_secs(120), list.wait_for(|l| l.is_empty()))
                        .await
                        .context("the consumer still saw instances after 120 s")??;
                }
                anyhow::Ok(())
            })
        });
    }
    let again = step(format!("register {n}, all at once"), &mut || {
        runtime.block_on(async {
            let all = join_all(instances.iter().map(|i| providers.register(i.clone()))).await;
            for registration in all {
                match registration {
                    Ok(r) => registrations.push(r),
                    Err(e) => failures.push(e),
                }
            }
            match failures.first() {
                None => anyhow::Ok(()),
                Some(e) => bail!("{} of {n} failed, e.g.: {e}", failures.len()),
            }
        })
    });
    if again && discovered.is_some() {
        step(format!("consumer sees {n} again"), &mut || {
            runtime.block_on(async {
                if let Some(list) = discovered.as_mut() {
                    tokio::time::timeout(Duration::from_secs(120), list.wait_for(|l| l.len() >= n))
                        .await
                        .context("the consumer did not see every instance again within 120 s")??;
                }
                anyhow::Ok(())
            })
        });
    }
    drop(discovered);
    runtime.block_on(async {
        let cleanup = async {
            for registration in registrations {
                let _ = registration.deregister().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), cleanup).await;
    });
    drop(zk);
    Ok(steps)
}

/// The steps as a markdown table.
pub fn table(steps: &[Step]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| step | time | this process's RSS growth | ZooKeeper's RSS growth | outcome |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- |");
    for s in steps {
        let _ = writeln!(
            out,
            "| {} | {} | {:+.1} MiB | {:+.1} MiB | {} |",
            s.what,
            if s.time.as_secs_f64() >= 1.0 {
                format!("{:.2} s", s.time.as_secs_f64())
            } else {
                format!("{:.0} ms", s.time.as_secs_f64() * 1000.0)
            },
            s.client_growth_kib as f64 / 1024.0,
            s.server_growth_kib as f64 / 1024.0,
            s.error.as_deref().unwrap_or("ok"),
        );
    }
    out
}
