//! `callcount CALLS IN_FLIGHT [PAYLOAD] [LAYERS] [tls]`: echo calls through mprpc with the
//! provider and the consumer in this one process, on one thread, for counting the instructions
//! a call costs with callgrind, which counts the same on a busy machine as on an idle one.
//! `LAYERS` no-op layers are put on each side (0 by default), to measure what a layer costs;
//! `tls` runs the calls over TLS, with certificates made for the run.
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/callcount 2000 128
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/callcount 12000 128
//! ```
//!
//! The difference of the two totals over the difference of the calls is the cost of one call,
//! both sides together, without the start-up. `docs/BENCHMARKS.md` ("Instructions per call")
//! has the figures.

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use mprpc::client::layer::{self as client_layer, ClientCall};
use mprpc::client::Channel;
use mprpc::server::layer::{self as server_layer, Next, ServerCall};
use mprpc::server::Server;
use mprpc_bench::proto::bench_client::BenchClient;
use mprpc_bench::proto::bench_server::BenchServer;
use mprpc_bench::proto::EchoRequest;
use mprpc_bench::targets::mprpc::{client_config, server_config, EchoHandler};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().context("CALLS")?.parse()?;
    let in_flight: usize = args.next().context("IN_FLIGHT")?.parse()?;
    let payload: usize = args.next().map_or(Ok(64), |p| p.parse())?;
    let layers: usize = args.next().map_or(Ok(0), |p| p.parse())?;
    let tls = args.next().as_deref() == Some("tls");
    let certs = if tls {
        Some(mprpc_bench::certs::RunCerts::make()?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (mut server_settings, mut client_settings) = (server_config(), client_config());
        if let Some(certs) = &certs {
            let files = certs.certs();
            server_settings.tls = Some(mprpc::config::ServerTls::new(files.cert(), files.key()));
            client_settings.tls = Some(mprpc::config::ClientTls::new(files.ca()));
        }
        let mut server = Server::new(server_settings).add_service(BenchServer::new(EchoHandler));
        let mut channel = Channel::to_addresses(vec![address.to_string()], client_settings);
        for _ in 0..layers {
            server = server.layer(server_layer::from_fn(|call: ServerCall, next: Next| {
                next.run(call)
            }));
            channel = channel.layer(client_layer::from_fn(
                |call: ClientCall<'_>, next: client_layer::Next<'_>| next.run(call),
            ));
        }
        tokio::spawn(server.serve(listener, std::future::pending()));
        let client = BenchClient::new(channel);
        let body = bytes::Bytes::from(vec![7u8; payload]);
        let call = || {
            client.echo(EchoRequest {
                payload: body.clone(),
            })
        };
        call().await?;
        let failed = stream::iter(0..calls)
            .map(|_| call())
            .buffer_unordered(in_flight)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        anyhow::ensure!(failed == 0, "{failed} calls failed");
        println!("{calls} calls, {in_flight} in flight, {payload} B, {layers} layers a side: ok");
        Ok(())
    })
}
