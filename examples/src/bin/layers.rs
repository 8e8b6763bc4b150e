//! Layers on both sides: a provider of `fixbug.UserServiceRpc` that logs every call (a
//! layer, which also tells the caller the time taken, as response metadata) and refuses
//! callers without the right token (an interceptor), and two consumers, one that adds the
//! token to every call (the generated client's `with_interceptor`) and one that does not.
//!
//! `layers [--token TOKEN]` (default `let-me-in`); both sides run in this one process, over
//! TCP on a free loopback port.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::server::layer::{from_fn, interceptor, Next, ServerCall};
use mprpc::server::{spawn_local, Server};
use mprpc::Status;
use mprpc_examples::fixbug::user_service_rpc_client::UserServiceRpcClient;
use mprpc_examples::fixbug::user_service_rpc_server::UserServiceRpcServer;
use mprpc_examples::fixbug::{LoginRequest, RegisterRequest};
use mprpc_examples::report;
use mprpc_examples::services::UserService;

/// Layers on a provider and its consumers.
#[derive(Debug, Parser)]
struct Args {
    /// The token the provider asks for and the good consumer sends.
    #[arg(long, default_value = "let-me-in")]
    token: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    report::exit(
        runtime
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(args))),
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let expected = Arc::new(format!("Bearer {}", args.token));
    let provider = Server::new(ServerConfig::default())
        // Outermost: every call is logged with its outcome, refused ones included.
        .layer(from_fn(|call: ServerCall, next: Next| async move {
            let (service, method) = (call.service(), call.method());
            let started = Instant::now();
            let mut outcome = next.run(call).await;
            let code = outcome
                .as_ref()
                .map_or_else(Status::code, |_| mprpc::Code::Ok);
            let took = started.elapsed().as_micros().to_string();
            println!("provider: {service}/{method} -> {code} in {took} us");
            // The caller learns it too, as response metadata.
            if let Ok(reply) = &mut outcome {
                reply.metadata_mut().insert("served-in-us", took);
            }
            outcome
        }))
        // Then: no token, no call. The token itself is never printed.
        .layer(interceptor(move |call: &mut ServerCall| {
            let ok = call.metadata().get("authorization") == Some(expected.as_str());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(Status::unauthenticated("a valid token is needed"))
                }
            }
        }))
        .add_service(UserServiceRpcServer::new(UserService::default()));
    let (address, handle) = spawn_local(provider).await?;
    println!("== a provider with a logging layer and a token check on {address} ==");

    let channel = Channel::to_address(address.to_string());
    let token = Arc::new(format!("Bearer {}", args.token));
    let trusted = UserServiceRpcClient::with_interceptor(channel.clone(), move |call| {
        call.metadata_mut().insert("authorization", token.as_str());
        async { Ok(()) }
    });
    let stranger = UserServiceRpcClient::new(channel);

    println!("== a consumer that sends the token ==");
    let registered = trusted
        .register(RegisterRequest {
            id: 1,
            name: b"mprpc".to_vec(),
            pwd: b"123".to_vec(),
        })
        .await?;
    println!("register success:{}", registered.success);
    let login = trusted
        .login_with_metadata(LoginRequest {
            name: b"mprpc".to_vec(),
            pwd: b"123".to_vec(),
        })
        .await?;
    let took = login.metadata().get("served-in-us").unwrap_or("?");
    println!(
        "login success:{} (the provider says it took {took} us)",
        login.get_ref().success
    );

    println!("== a consumer without it ==");
    match stranger
        .login(LoginRequest {
            name: b"mprpc".to_vec(),
            pwd: b"123".to_vec(),
        })
        .await
    {
        Ok(_) => anyhow::bail!("the provider answered a caller without a token"),
        Err(status) => println!("login refused: {status}"),
    }
    handle.shutdown().await?;
    println!("layers example finished");
    Ok(())
}
