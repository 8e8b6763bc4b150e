//! gRPC: a tonic server and client generated from the same `bench.proto` (prost messages,
//! HTTP/2). tonic's defaults throughout, except `TCP_NODELAY` on both ends (mprpc sets it too).
//! One client is one tonic [`Channel`], i.e. one HTTP/2 connection carrying every call as a
//! stream of its own. [`TonicTls`] is the same over TLS (tonic's `tls-ring`: rustls with the
//! ring provider, as mprpc's): the server with the run's provider certificate, the client
//! trusting the run's CA and checking the name `127.0.0.1` (what mprpc's client checks).
//! [`TonicOnMprpc`] is the same client calling the mprpc provider (the `mprpc` target's server
//! and [`EchoHandler`](super::mprpc::EchoHandler)) with `[server.protocols] grpc` on.

use std::net::SocketAddr;

use ::tonic::transport::server::TcpIncoming;
use ::tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};
use anyhow::Context;

use super::{check_len, first_call, required, Caller, Target, TargetKind};
use crate::certs::Certs;
use crate::grpc::bench_client::BenchClient;
use crate::grpc::bench_server::{Bench, BenchServer};
use crate::grpc::{EchoRequest, EchoResponse, SubscribeRequest, UploadResponse};

/// The tonic target.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tonic;

/// The tonic target over TLS.
#[derive(Debug, Default, Clone, Copy)]
pub struct TonicTls;

/// tonic's client against the mprpc provider's gRPC front end.
#[derive(Debug, Default, Clone, Copy)]
pub struct TonicOnMprpc;

/// The echo handler: answers with the request's payload and does nothing else. Its two
/// streaming methods (`bench streaming`) are the same as mprpc's: `subscribe` streams `count`
/// replies sharing one payload buffer, `upload` counts what it reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct TonicEcho;

/// What the tonic `subscribe` returns.
pub type ReplyStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<EchoResponse, ::tonic::Status>> + Send + 'static>,
>;

#[::tonic::async_trait]
impl Bench for TonicEcho {
    async fn echo(
        &self,
        request: ::tonic::Request<EchoRequest>,
    ) -> Result<::tonic::Response<EchoResponse>, ::tonic::Status> {
        Ok(::tonic::Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }

    type SubscribeStream = ReplyStream;

    async fn subscribe(
        &self,
        request: ::tonic::Request<SubscribeRequest>,
    ) -> Result<::tonic::Response<ReplyStream>, ::tonic::Status> {
        let SubscribeRequest { count, size } = request.into_inner();
        let payload = super::reply_payload(size);
        let replies = futures_util::stream::repeat_with(move || {
            Ok(EchoResponse {
                payload: payload.clone(),
            })
        });
        Ok(::tonic::Response::new(Box::pin(
            futures_util::StreamExt::take(replies, usize::try_from(count).unwrap_or(usize::MAX)),
        )))
    }

    async fn upload(
        &self,
        request: ::tonic::Request<::tonic::Streaming<EchoRequest>>,
    ) -> Result<::tonic::Response<UploadResponse>, ::tonic::Status> {
        let mut requests = request.into_inner();
        let mut reply = UploadResponse::default();
        while let Some(request) = requests.message().await? {
            reply.messages += 1;
            reply.bytes += request.payload.len() as u64;
        }
        Ok(::tonic::Response::new(reply))
    }
}

/// A tonic client over one channel (one HTTP/2 connection).
#[derive(Clone, Debug)]
pub struct TonicCaller {
    client: BenchClient<Channel>,
}

impl Caller for TonicCaller {
    async fn call<'a>(&'a self, payload: &'a bytes::Bytes) -> Result<(), String> {
        let request = EchoRequest {
            payload: payload.clone(),
        };
        match self.client.clone().echo(request).await {
            Ok(reply) => check_len(reply.into_inner().payload.len(), payload.len()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

/// Serves echo with `builder`'s settings.
async fn serve(mut builder: Server, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    builder
        .add_service(BenchServer::new(TonicEcho))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// Connects through `endpoint` and checks the channel with one call.
async fn connect(endpoint: Endpoint) -> anyhow::Result<TonicCaller> {
    let channel = endpoint.tcp_nodelay(true).connect().await?;
    let caller = TonicCaller {
        client: BenchClient::new(channel),
    };
    first_call(caller, "the tonic server").await
}

/// Reads a PEM file.
fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl Target for Tonic {
    type Caller = TonicCaller;

    async fn serve(listener: tokio::net::TcpListener, _: Option<&Certs>) -> anyhow::Result<()> {
        serve(Server::builder(), listener).await
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<TonicCaller> {
        connect(Endpoint::from_shared(format!("http://{address}"))?).await
    }
}

impl Target for TonicTls {
    type Caller = TonicCaller;

    async fn serve(listener: tokio::net::TcpListener, certs: Option<&Certs>) -> anyhow::Result<()> {
        let certs = required(certs, TargetKind::TonicTls)?;
        let identity = Identity::from_pem(read(&certs.cert())?, read(&certs.key())?);
        let builder = Server::builder().tls_config(ServerTlsConfig::new().identity(identity))?;
        serve(builder, listener).await
    }

    async fn connect(address: SocketAddr, certs: Option<&Certs>) -> anyhow::Result<TonicCaller> {
        let certs = required(certs, TargetKind::TonicTls)?;
        // Read for every client, as an mprpc channel reads its `[client.tls]` files.
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&certs.ca())?))
            .domain_name(address.ip().to_string());
        connect(Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls)?).await
    }
}

impl Target for TonicOnMprpc {
    type Caller = TonicCaller;

    async fn serve(listener: tokio::net::TcpListener, _: Option<&Certs>) -> anyhow::Result<()> {
        super::mprpc::provider(super::mprpc::grpc_server_config(), 0)
            .serve(listener, std::future::pending())
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr, certs: Option<&Certs>) -> anyhow::Result<TonicCaller> {
        Tonic::connect(address, certs).await
    }
}
