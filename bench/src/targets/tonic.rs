//! gRPC: a tonic server and client generated from the same `bench.proto` (prost messages,
//! HTTP/2). tonic's defaults throughout, except `TCP_NODELAY` on both ends (mprpc sets it too).
//! One client is one tonic [`Channel`], i.e. one HTTP/2 connection carrying every call as a
//! stream of its own.

use std::net::SocketAddr;

use ::tonic::transport::server::TcpIncoming;
use ::tonic::transport::{Channel, Endpoint, Server};

use super::{check_len, Caller, Target};
use crate::grpc::bench_client::BenchClient;
use crate::grpc::bench_server::{Bench, BenchServer};
use crate::grpc::{EchoRequest, EchoResponse};

/// The tonic target.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tonic;

/// The echo handler: answers with the request's payload and does nothing else.
#[derive(Debug, Default, Clone, Copy)]
pub struct TonicEcho;

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
}

/// A tonic client over one channel (one HTTP/2 connection).
#[derive(Clone, Debug)]
pub struct TonicCaller {
    client: BenchClient<Channel>,
}

impl Caller for TonicCaller {
    async fn call<'a>(&'a self, payload: &'a [u8]) -> Result<(), String> {
        let request = EchoRequest {
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        match self.client.clone().echo(request).await {
            Ok(reply) => check_len(reply.into_inner().payload.len(), payload.len()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

impl Target for Tonic {
    type Caller = TonicCaller;

    async fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        Server::builder()
            .add_service(BenchServer::new(TonicEcho))
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    }

    async fn connect(address: SocketAddr) -> anyhow::Result<TonicCaller> {
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let caller = TonicCaller {
            client: BenchClient::new(channel),
        };
        caller
            .call(b"hello")
            .await
            .map_err(|e| anyhow::anyhow!("the first call to the tonic server failed: {e}"))?;
        Ok(caller)
    }
}
