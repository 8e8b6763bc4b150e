//! mprpc: the generated `BenchServer` on an mprpc [`Server`], called through the generated
//! `BenchClient` over a [`Channel`] (one multiplexed connection per channel and provider).

use std::net::SocketAddr;
use std::time::Duration;

use ::mprpc::client::layer::{self as client_layer, ClientCall};
use ::mprpc::client::Channel;
use ::mprpc::config::{ClientConfig, ServerConfig};
use ::mprpc::server::layer::{self as server_layer, Next, ServerCall};
use ::mprpc::server::Server;
use ::mprpc::{Request, Status};

use super::{check_len, Caller, Target};
use crate::proto::bench_client::BenchClient;
use crate::proto::bench_server::{Bench, BenchServer};
use crate::proto::{EchoRequest, EchoResponse};

/// The mprpc target.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mprpc;

/// The mprpc target with [`LAYERS`] no-op user layers on each side: what layers cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct MprpcLayers;

/// How many no-op layers [`MprpcLayers`] puts on each side.
pub const LAYERS: usize = 3;

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

/// The provider's settings: the defaults, with the connection and call limits raised so that
/// the scale runs (10,000 connections) and 1,024 calls in flight on 64 connections fit.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        address: "127.0.0.1:0".to_owned(),
        max_connections: 1 << 20,
        max_concurrent_calls: 1 << 20,
        ..ServerConfig::default()
    }
}

/// The consumer's settings: the defaults, except a 60 s call budget instead of 3 s, so that a
/// slow point (1 MiB payloads, many in flight) is measured rather than timed out. tonic's
/// calls carry no deadline at all.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(60),
        ..ClientConfig::default()
    }
}

/// A generated client over one channel.
#[derive(Clone, Debug)]
pub struct MprpcCaller {
    client: BenchClient,
}

impl MprpcCaller {
    /// A client of one channel that spreads calls round robin over `addresses` (one
    /// connection to each), through the static registry. Connects on the first call.
    pub fn over(addresses: &[SocketAddr]) -> MprpcCaller {
        MprpcCaller::with_layers(addresses, 0)
    }

    /// The same, with `layers` no-op outer layers on the channel.
    pub fn with_layers(addresses: &[SocketAddr], layers: usize) -> MprpcCaller {
        let addresses = addresses.iter().map(ToString::to_string).collect();
        let mut channel = Channel::to_addresses(addresses, client_config());
        for _ in 0..layers {
            channel = channel.layer(client_layer::from_fn(
                |call: ClientCall<'_>, next: client_layer::Next<'_>| next.run(call),
            ));
        }
        MprpcCaller {
            client: BenchClient::new(channel),
        }
    }
}

/// A provider of the echo service with `layers` no-op user layers.
fn provider(layers: usize) -> Server {
    let mut server = Server::new(server_config());
    for _ in 0..layers {
        server = server.layer(server_layer::from_fn(|call: ServerCall, next: Next| {
            next.run(call)
        }));
    }
    server.add_service(BenchServer::new(EchoHandler))
}

impl Caller for MprpcCaller {
    async fn call<'a>(&'a self, payload: &'a [u8]) -> Result<(), String> {
        let request = EchoRequest {
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        match self.client.echo(request).await {
            Ok(reply) => check_len(reply.payload.len(), payload.len()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

impl Target for Mprpc {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        provider(0).serve(listener, std::future::pending()).await?;
        Ok(())
    }

    async fn connect(address: SocketAddr) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller::over(&[address]);
        caller
            .call(b"hello")
            .await
            .map_err(|e| anyhow::anyhow!("the first call to the mprpc provider failed: {e}"))?;
        Ok(caller)
    }
}

impl Target for MprpcLayers {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        provider(LAYERS)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller::with_layers(&[address], LAYERS);
        caller.call(b"hello").await.map_err(|e| {
            anyhow::anyhow!("the first call to the layered mprpc provider failed: {e}")
        })?;
        Ok(caller)
    }
}
