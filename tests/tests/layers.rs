//! Server layers over real TCP: their order, a refusal that keeps the handler from running,
//! a panicking layer, metadata a layer adds, the reflection service wrapped like the others,
//! and a layer that overruns the caller's deadline.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::server::layer::{from_fn, interceptor, Next, ServerCall};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request, Status};
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService};

async fn start(server: Server) -> (EchoClient, Channel, LocalServer) {
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    let channel = Channel::to_address(addr.to_string());
    (EchoClient::new(channel.clone()), channel, handle)
}

/// A layer that notes its name on the way in and on the way out.
fn tracer(name: &'static str, log: Arc<Mutex<Vec<String>>>) -> impl mprpc::server::layer::Layer {
    from_fn(move |call: ServerCall, next: Next| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(format!("{name}>"));
            let outcome = next.run(call).await;
            log.lock().unwrap().push(format!("<{name}"));
            outcome
        }
    })
}

#[tokio::test]
async fn layers_run_outermost_first_in_the_order_they_were_added() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Server::new(Default::default())
        .layer(tracer("a", log.clone()))
        .layer(tracer("b", log.clone()))
        .layer(tracer("c", log.clone()))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    client.echo(EchoRequest::default()).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["a>", "b>", "c>", "<c", "<b", "<a"].map(String::from)
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_interceptor_refuses_a_call_before_the_handler_runs() {
    let service = EchoService::named("x");
    let counters = service.counters.clone();
    let server = Server::new(Default::default())
        .layer(interceptor(|call: &mut ServerCall| {
            let token = call.metadata().get("authorization").map(str::to_owned);
            async move {
                match token.as_deref() {
                    Some("Bearer let-me-in") => Ok(()),
                    _ => Err(Status::unauthenticated("a valid token is needed")),
                }
            }
        }))
        .add_service(EchoServer::new(service));
    let (client, _, handle) = start(server).await;

    let refused = client.echo(EchoRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    assert_eq!(refused.message(), "a valid token is needed");
    assert_eq!(
        counters.started.load(Ordering::SeqCst),
        0,
        "the handler ran"
    );

    let mut request = Request::new(EchoRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Bearer let-me-in");
    client.echo(request).await.expect("a caller with the token");
    assert_eq!(counters.started.load(Ordering::SeqCst), 1);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_layer_that_panics_is_internal_and_the_provider_carries_on() {
    let server = Server::new(Default::default())
        .layer(from_fn(|call: ServerCall, next: Next| {
            // Before any future exists: the panic guard must still catch it.
            assert!(
                call.metadata().get("boom").is_none(),
                "the test asked for a panic"
            );
            next.run(call)
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    let mut request = Request::new(EchoRequest::default());
    request.metadata_mut().insert("boom", "1");
    let status = client.echo(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
    client
        .echo(EchoRequest::default())
        .await
        .expect("the provider still serves");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn metadata_a_layer_adds_reaches_the_handler() {
    let server = Server::new(Default::default())
        .layer(interceptor(|call: &mut ServerCall| {
            call.metadata_mut().insert("tenant", "acme");
            async { Ok(()) }
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    let reply = client
        .echo(EchoRequest {
            metadata_key: "tenant".into(),
            ..EchoRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.metadata_value, "acme");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_reflection_service_is_wrapped_too() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = Server::new(Default::default())
        .layer(interceptor(move |call: &mut ServerCall| {
            record
                .lock()
                .unwrap()
                .push(format!("{}/{}", call.service(), call.method()));
            async { Ok(()) }
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, channel, handle) = start(server).await;
    client.echo(EchoRequest::default()).await.unwrap();
    let services = mprpc::client::reflection::list_services(&channel)
        .await
        .unwrap();
    assert!(services.iter().any(|s| s.name == "mprpc.test.Echo"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], "mprpc.test.Echo/Echo");
    assert!(
        seen[1].starts_with("mprpc.reflection.Reflection/"),
        "{seen:?}"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_layer_that_overruns_the_deadline_is_abandoned() {
    let server = Server::new(Default::default())
        .layer(from_fn(|call: ServerCall, next: Next| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            next.run(call).await
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    let request = Request::new(EchoRequest::default()).with_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = client.echo(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    handle.shutdown().await.unwrap();
}
