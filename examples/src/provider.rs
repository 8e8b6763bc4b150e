//! The provider program: hosts both example services.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use mprpc::config::Config;
use mprpc::server::{shutdown, Server};

use crate::fixbug::friend_service_rpc_server::FriendServiceRpcServer;
use crate::fixbug::user_service_rpc_server::UserServiceRpcServer;
use crate::services::{FriendService, UserService};

/// Serves fixbug.UserServiceRpc and fixbug.FriendServiceRpc until SIGINT or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "provider")]
pub struct Args {
    /// The configuration file (TOML, or the original's key=value format).
    #[arg(short = 'i', long = "config")]
    pub config: PathBuf,
    /// Listen here instead of the config's `server.address` (`127.0.0.1:0` picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Use this ZooKeeper connect string instead of the config's.
    #[arg(long)]
    pub zk: Option<String>,
}

/// Runs the provider; prints `provider listening on ADDR` once it accepts connections.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.server.address = listen;
    }
    crate::override_zookeeper(&mut config, args.zk);
    config.validate(&args.config.display().to_string())?;
    let _log = mprpc::logging::init(&config.logging)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.threads)
        .thread_name("provider")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let registry = mprpc::registry::from_config(&config.registry)?;
        let server = Server::new(config.server.clone())
            .add_service(UserServiceRpcServer::new(UserService::default()))
            .add_service(FriendServiceRpcServer::new(FriendService));
        let listener = server.bind().await?;
        let address = listener.local_addr()?;
        // Printed once registered: a consumer started after this line finds the provider.
        let serving = async move {
            println!("provider listening on {address}");
            shutdown::signal().await;
        };
        server
            .serve_with_registry(listener, registry, serving)
            .await?;
        println!("provider stopped");
        Ok(())
    })
}
