//! A provider of the test service for process-level tests.
//!
//! `test_provider NAME [--config FILE] [--listen ADDR] [--zk CONNECT] [--root PATH]
//! [--session-timeout-ms N] [--weight N] [--admin ADDR] [--max-unwritten-bytes N]
//! [--tls-cert PEM --tls-key PEM] [--capacity N --delay-ms MS] [--legacy-layout] [--quiet]`
//!
//! Listens on `--listen` (default `127.0.0.1:0`), registers in ZooKeeper when `--zk` is given,
//! serves the admin pages on `--admin` (printing `admin on ADDR` first), prints
//! `listening on ADDR`, prints `call started` as each call starts (not with `--quiet`), and
//! stops gracefully on SIGINT/SIGTERM. With `--tls-cert`, it serves TLS only and re-reads the
//! files on SIGHUP (and only then: the periodic check is an hour apart). `--config` takes the
//! `[server]` section of a config file (its address unless `--listen` is given), e.g. an
//! `[server.adaptive_limit]`. `--legacy-layout` also keeps the original C++ mprpc's nodes in
//! ZooKeeper (`/Echo/Echo`, ...). `--capacity N --delay-ms MS` make a provider of fixed capacity:
//! every call waits `MS` more, holding one of `N` permits (`N / MS` calls per millisecond),
//! the slow provider of `docs/RESILIENCE.md`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use mprpc::config::{Config, ServerConfig, ServerTls};
use mprpc::registry::{Registry, StaticRegistry, ZkRegistry};
use mprpc::server::{shutdown, Server};
use mprpc_tests::{EchoServer, EchoService};
use tokio::sync::Semaphore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "process".to_owned());
    let mut config = ServerConfig {
        address: "127.0.0.1:0".to_owned(),
        ..ServerConfig::default()
    };
    let (mut zk, mut root, mut session_ms) = (None, "/mprpc".to_owned(), 2000u64);
    let mut admin = None;
    let (mut tls_cert, mut tls_key) = (None, None);
    let (mut listen, mut capacity, mut delay_ms, mut quiet) = (None, None, 0, false);
    let mut legacy_layout = false;
    while let Some(flag) = args.next() {
        if flag == "--quiet" {
            quiet = true;
            continue;
        }
        if flag == "--legacy-layout" {
            legacy_layout = true;
            continue;
        }
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => config = Config::load(value()?)?.server,
            "--listen" => listen = Some(value()?),
            "--capacity" => capacity = Some(value()?.parse::<usize>()?),
            "--delay-ms" => delay_ms = value()?.parse()?,
            "--zk" => zk = Some(value()?),
            "--root" => root = value()?,
            "--session-timeout-ms" => session_ms = value()?.parse()?,
            "--weight" => config.weight = value()?.parse()?,
            "--admin" => admin = Some(value()?),
            "--max-unwritten-bytes" => config.max_unwritten_bytes = value()?.parse()?,
            "--tls-cert" => tls_cert = Some(value()?),
            "--tls-key" => tls_key = Some(value()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if let Some(listen) = listen {
        config.address = listen;
    }
    if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
        let mut tls = ServerTls::new(cert, key);
        tls.reload_interval = Duration::from_secs(3600);
        config.tls = Some(tls);
    }
    let registry: Arc<dyn Registry> = match zk {
        Some(connect) => Arc::new(
            ZkRegistry::new(connect, root, Duration::from_millis(session_ms))?
                .with_legacy_layout(legacy_layout),
        ),
        None => Arc::new(StaticRegistry::new(Default::default())),
    };
    let service = EchoService {
        name,
        announce: !quiet,
        extra_delay_ms: delay_ms,
        capacity: capacity.map(|n| Arc::new(Semaphore::new(n))),
        ..EchoService::default()
    };
    let mut server = Server::new(config).add_service(EchoServer::new(service));
    if let Some(admin) = admin {
        let listener = tokio::net::TcpListener::bind(&admin).await?;
        println!("admin on {}", listener.local_addr()?);
        server = server.with_admin_listener(listener);
    }
    let listener = server.bind().await?;
    let addr = listener.local_addr()?;
    let serving = server.serve_with_registry(listener, registry, async {
        println!("listening on {addr}");
        shutdown::signal().await;
    });
    serving.await?;
    println!("stopped");
    Ok(())
}
