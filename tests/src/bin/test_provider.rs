//! A provider of the test service for process-level tests: listens on `127.0.0.1:0`, prints
//! `listening on ADDR`, prints `call started` as each call starts, and stops gracefully on
//! SIGINT/SIGTERM.

use mprpc::config::ServerConfig;
use mprpc::server::{shutdown, Server};
use mprpc_tests::{EchoServer, EchoService};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "process".to_owned());
    let config = ServerConfig {
        address: "127.0.0.1:0".to_owned(),
        ..ServerConfig::default()
    };
    let service = EchoService {
        name,
        announce: true,
        ..EchoService::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(service));
    let listener = server.bind().await?;
    println!("listening on {}", listener.local_addr()?);
    server.serve(listener, shutdown::signal()).await?;
    println!("stopped");
    Ok(())
}
