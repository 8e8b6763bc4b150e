//! mprpc: the generated `BenchServer` on an mprpc [`Server`], called through the generated
//! `BenchClient` over a [`Channel`] (one multiplexed connection per channel and provider).
//! [`MprpcTls`] is the same over TLS: `[server.tls]` with the run's provider certificate,
//! `[client.tls]` trusting the run's CA (the provider's name checked against `127.0.0.1`,
//! the host of its address, as by default).

use std::net::SocketAddr;
use std::time::Duration;

use ::mprpc::client::layer::{self as client_layer, ClientCall};
use ::mprpc::client::Channel;
use ::mprpc::config::{ClientConfig, ClientTls, ProtocolsConfig, ServerConfig, ServerTls};
use ::mprpc::server::layer::{self as server_layer, Next, ServerCall};
use ::mprpc::server::Server;
use ::mprpc::{Request, Status};

use super::{check_len, first_call, required, Caller, Target, TargetKind};
use crate::certs::Certs;
use crate::proto::bench_client::BenchClient;
use crate::proto::bench_server::{Bench, BenchServer};
use crate::proto::{EchoRequest, EchoResponse, SubscribeRequest, UploadResponse};

/// The mprpc target.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mprpc;

/// The mprpc target with [`LAYERS`] no-op user layers on each side: what layers cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct MprpcLayers;

/// The mprpc target over TLS.
#[derive(Debug, Default, Clone, Copy)]
pub struct MprpcTls;

/// The mprpc target against a provider serving every protocol on its port.
#[derive(Debug, Default, Clone, Copy)]
pub struct MprpcDetect;

/// How many no-op layers [`MprpcLayers`] puts on each side.
pub const LAYERS: usize = 3;

/// The echo handler: answers with the request's payload and does nothing else. Its two
/// streaming methods (`bench streaming`) do as little: `subscribe` streams `count` replies
/// with one payload ([`reply_payload`](super::reply_payload)), `upload` counts what it reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl Bench for EchoHandler {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<EchoResponse, Status> {
        Ok(EchoResponse {
            payload: request.into_inner().payload,
        })
    }

    type SubscribeStream = ::mprpc::stream::BoxStream<EchoResponse>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Self::SubscribeStream, Status> {
        let SubscribeRequest { count, size } = request.into_inner();
        let payload = super::reply_payload(size);
        let replies = futures_util::stream::repeat_with(move || {
            Ok(EchoResponse {
                payload: payload.clone(),
            })
        });
        Ok(Box::pin(futures_util::StreamExt::take(
            replies,
            usize::try_from(count).unwrap_or(usize::MAX),
        )))
    }

    async fn upload(
        &self,
        request: Request<::mprpc::stream::Streaming<EchoRequest>>,
    ) -> Result<UploadResponse, Status> {
        let mut requests = request.into_inner();
        let mut reply = UploadResponse::default();
        while let Some(request) = requests.message().await? {
            reply.messages += 1;
            reply.bytes += request.payload.len() as u64;
        }
        Ok(reply)
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

/// [`server_config`] with `[server.tls]`: the provider certificate in `certs`, TLS required.
pub fn tls_server_config(certs: &Certs) -> ServerConfig {
    ServerConfig {
        tls: Some(ServerTls::new(certs.cert(), certs.key())),
        ..server_config()
    }
}

/// [`server_config`] with `[server.protocols] grpc`: the same port also answers gRPC (the
/// `tonic-on-mprpc` target).
pub fn grpc_server_config() -> ServerConfig {
    ServerConfig {
        protocols: ProtocolsConfig {
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..server_config()
    }
}

/// [`server_config`] with every protocol of `[server.protocols]` on: each connection's first
/// bytes are looked at to choose its protocol (the `mprpc-detect` target).
pub fn detecting_server_config() -> ServerConfig {
    ServerConfig {
        protocols: ProtocolsConfig {
            legacy: true,
            http: true,
            grpc: true,
        },
        ..server_config()
    }
}

/// [`client_config`] with `[client.tls]` trusting the CA in `certs`.
pub fn tls_client_config(certs: &Certs) -> ClientConfig {
    ClientConfig {
        tls: Some(ClientTls::new(certs.ca())),
        ..client_config()
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
        MprpcCaller::with_config(addresses, client_config(), layers)
    }

    /// The same, with the channel's settings given.
    pub fn with_config(
        addresses: &[SocketAddr],
        config: ClientConfig,
        layers: usize,
    ) -> MprpcCaller {
        let addresses = addresses.iter().map(ToString::to_string).collect();
        let mut channel = Channel::to_addresses(addresses, config);
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
pub(crate) fn provider(config: ServerConfig, layers: usize) -> Server {
    let mut server = Server::new(config);
    for _ in 0..layers {
        server = server.layer(server_layer::from_fn(|call: ServerCall, next: Next| {
            next.run(call)
        }));
    }
    server.add_service(BenchServer::new(EchoHandler))
}

impl Caller for MprpcCaller {
    async fn call<'a>(&'a self, payload: &'a bytes::Bytes) -> Result<(), String> {
        let request = EchoRequest {
            payload: payload.clone(),
        };
        match self.client.echo(request).await {
            Ok(reply) => check_len(reply.payload.len(), payload.len()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

impl Target for Mprpc {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener, _: Option<&Certs>) -> anyhow::Result<()> {
        provider(server_config(), 0)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller::over(&[address]);
        first_call(caller, "the mprpc provider").await
    }
}

impl Target for MprpcLayers {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener, _: Option<&Certs>) -> anyhow::Result<()> {
        provider(server_config(), LAYERS)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller::with_layers(&[address], LAYERS);
        first_call(caller, "the layered mprpc provider").await
    }
}

impl Target for MprpcTls {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener, certs: Option<&Certs>) -> anyhow::Result<()> {
        let certs = required(certs, TargetKind::MprpcTls)?;
        provider(tls_server_config(certs), 0)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr, certs: Option<&Certs>) -> anyhow::Result<MprpcCaller> {
        let certs = required(certs, TargetKind::MprpcTls)?;
        let caller = MprpcCaller::with_config(&[address], tls_client_config(certs), 0);
        first_call(caller, "the mprpc provider over TLS").await
    }
}

impl Target for MprpcDetect {
    type Caller = MprpcCaller;

    async fn serve(listener: tokio::net::TcpListener, _: Option<&Certs>) -> anyhow::Result<()> {
        provider(detecting_server_config(), 0)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<MprpcCaller> {
        let caller = MprpcCaller::over(&[address]);
        first_call(caller, "the provider with every protocol").await
    }
}
