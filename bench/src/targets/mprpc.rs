//! mprpc: the generated `BenchServer` on an mprpc [`Server`], called through the generated
//! `BenchClient` over a [`Channel`] (one multiplexed connection per channel and provider).

use std::net::SocketAddr;
use std::time::Duration;

use ::mprpc::client::Channel;
use ::mprpc::config::{ClientConfig, ServerConfig};
use ::mprpc::server::Server;
use ::mprpc::{Request, Status};

use super::{check_len, Caller, Target};
use crate::proto::bench_client::BenchClient;
use crate::proto::bench_server::{Bench, BenchServer};
use crate::proto::{EchoRequest, EchoResponse};

/// The mprpc target.
#[derive(Debug, Default, Clone, Copy)]
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
        let addresses = addresses.iter().map(ToString::to_string).collect();
        MprpcCaller {
            client: BenchClient::new(Channel::to_addresses(addresses, client_config())),
        }
    }
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
        Server::new(server_config())
            .add_service(BenchServer::new(EchoHandler))
            .serve(listener, std::future::pending())
            .await?;
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
