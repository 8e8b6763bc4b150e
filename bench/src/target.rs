//! Systems under test: a server started on one runtime, and a client of it on another.
//!
//! Each system implements [`Target`]; the runner only sees the [`Caller`] it hands out, so
//! another framework (or a raw TCP echo) is one more implementation of the two traits.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Request, Status};
use tokio::runtime::Runtime;

use crate::proto::bench_client::BenchClient;
use crate::proto::bench_server::{Bench, BenchServer};
use crate::proto::{EchoRequest, EchoResponse};

/// A system under test.
pub trait Target {
    /// A running server, kept until [`Target::stop_server`].
    type Server;
    /// The client side that the load tasks share.
    type Caller: Caller;

    /// The name shown in reports.
    fn name(&self) -> &'static str;

    /// Starts an echo server on `runtime`, listening on `127.0.0.1:0`; returns its address.
    fn start_server(&self, runtime: &Runtime) -> anyhow::Result<(SocketAddr, Self::Server)>;

    /// Stops a server started by [`Target::start_server`].
    fn stop_server(&self, runtime: &Runtime, server: Self::Server) -> anyhow::Result<()>;

    /// Connects a client to `address` on `runtime` (one connection, shared by every task that
    /// clones the caller) and checks it with one call.
    fn connect(&self, runtime: &Runtime, address: SocketAddr) -> anyhow::Result<Self::Caller>;
}

/// Makes one echo call. Cheap to clone; clones share the connection.
pub trait Caller: Clone + Send + Sync + 'static {
    /// Sends `payload` and waits for the echo. An error is named by its status code (or by
    /// what went wrong), so that the report can count errors by kind.
    fn call<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;
}

/// mprpc: the generated `BenchServer` on a [`Server`], called through one [`Channel`].
#[derive(Debug, Default)]
pub struct Mprpc;

/// The echo handler: answers with the request's payload and does nothing else.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl Bench for EchoHandler {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<EchoResponse, Status> {
        Ok(EchoResponse {
            payload: request.into_inner().payload,
        })
    }
}

/// mprpc's [`Caller`]: a generated client over one channel to one provider.
#[derive(Clone)]
pub struct MprpcCaller {
    client: BenchClient,
}

impl Caller for MprpcCaller {
    async fn call<'a>(&'a self, payload: &'a [u8]) -> Result<(), String> {
        let request = EchoRequest {
            payload: payload.to_vec(),
        };
        match self.client.echo(request).await {
            Ok(reply) if reply.payload.len() == payload.len() => Ok(()),
            Ok(reply) => Err(format!(
                "wrong reply ({} bytes for {})",
                reply.payload.len(),
                payload.len()
            )),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

impl Target for Mprpc {
    type Server = LocalServer;
    type Caller = MprpcCaller;

    fn name(&self) -> &'static str {
        "mprpc"
    }

    fn start_server(&self, runtime: &Runtime) -> anyhow::Result<(SocketAddr, LocalServer)> {
        let server =
            Server::new(ServerConfig::default()).add_service(BenchServer::new(EchoHandler));
        runtime
            .block_on(spawn_local(server))
            .context("starting the mprpc provider")
    }

    fn stop_server(&self, runtime: &Runtime, server: LocalServer) -> anyhow::Result<()> {
        runtime
            .block_on(server.shutdown())
            .context("stopping the mprpc provider")
    }

    fn connect(&self, runtime: &Runtime, address: SocketAddr) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller {
            client: BenchClient::new(Channel::to_address(address.to_string())),
        };
        runtime
            .block_on(caller.call(b"hello"))
            .map_err(|e| anyhow::anyhow!("the first call to the mprpc provider failed: {e}"))?;
        Ok(caller)
    }
}
