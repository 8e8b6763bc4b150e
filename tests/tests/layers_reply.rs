//! Layers, second part, over real TCP: response metadata from a handler and from a server
//! layer reaching the caller (on success and on failure), request extensions from a layer to
//! the handler, the outer and the inner client position around the balancer, and the
//! generated `with_interceptor` on both sides.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mprpc::client::layer::{ClientCall, LayerFuture};
use mprpc::client::Channel;
use mprpc::config::ClientConfig;
use mprpc::server::layer::{from_fn, interceptor, Next, ServerCall};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request, Status};
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService, LayerNote};

async fn start(server: Server) -> (std::net::SocketAddr, LocalServer) {
    spawn_local(server).await.expect("start provider")
}

fn echo_server(name: &str) -> Server {
    Server::new(Default::default()).add_service(EchoServer::new(EchoService::named(name)))
}

#[tokio::test]
async fn response_metadata_from_the_handler_and_a_layer_reaches_the_caller() {
    let server = Server::new(Default::default())
        .layer(from_fn(|call: ServerCall, next: Next| async move {
            match next.run(call).await {
                Ok(mut reply) => {
                    // The layer sees what the handler set, and adds its own.
                    let by = reply.metadata().get("served-by").unwrap_or("?").to_owned();
                    reply.metadata_mut().insert("layer-saw", by);
                    Ok(reply)
                }
                Err(mut status) => {
                    status.metadata_mut().insert("retry-after-ms", "250");
                    Err(status)
                }
            }
        }))
        .add_service(EchoServer::new(EchoService::named("p1")));
    let (addr, handle) = start(server).await;
    let client = EchoClient::new(Channel::to_address(addr.to_string()));

    let reply = client
        .echo_with_metadata(EchoRequest::default())
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("served-by"), Some("p1"));
    assert_eq!(reply.metadata().get("layer-saw"), Some("p1"));
    assert_eq!(reply.get_ref().served_by, "p1");
    // The plain form still returns the bare message.
    assert_eq!(
        client.echo(EchoRequest::default()).await.unwrap().served_by,
        "p1"
    );

    let failed = client
        .echo(EchoRequest {
            fail_code: Code::ResourceExhausted.as_i32(),
            fail_message: "busy".into(),
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::ResourceExhausted);
    assert_eq!(failed.metadata().get("retry-after-ms"), Some("250"));
    assert_eq!(failed.metadata().get("served-by"), Some("p1"));
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_extension_a_layer_adds_reaches_the_handler() {
    let server = Server::new(Default::default())
        .layer(interceptor(|call: &mut ServerCall| {
            let user = call.metadata().get("user").unwrap_or("nobody").to_owned();
            call.request_mut()
                .extensions_mut()
                .insert(LayerNote(format!("checked:{user}")));
            async { Ok(()) }
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (addr, handle) = start(server).await;
    let client = EchoClient::new(Channel::to_address(addr.to_string()));
    let mut request = Request::new(EchoRequest {
        metadata_key: LayerNote::KEY.into(),
        ..EchoRequest::default()
    });
    request.metadata_mut().insert("user", "ada");
    let reply = client.echo(request).await.unwrap();
    assert_eq!(reply.metadata_value, "checked:ada");
    handle.shutdown().await.unwrap();
}

/// A client layer that counts the calls it sees and the providers they went to.
fn counting(seen: Arc<Mutex<Vec<Option<String>>>>) -> impl mprpc::client::layer::Layer {
    mprpc::client::layer::from_fn(move |call: ClientCall<'_>, next| -> LayerFuture<'_> {
        seen.lock()
            .unwrap()
            .push(call.provider().map(str::to_owned));
        next.run(call)
    })
}

#[tokio::test]
async fn an_outer_layer_sees_one_call_where_an_inner_one_sees_each_attempt() {
    let (a, handle_a) = start(echo_server("a")).await;
    let (b, handle_b) = start(echo_server("b")).await;
    let refused = a.to_string();
    let outer = Arc::new(Mutex::new(Vec::new()));
    let inner = Arc::new(Mutex::new(Vec::new()));
    let channel =
        Channel::to_addresses(vec![a.to_string(), b.to_string()], ClientConfig::default())
            .layer(counting(outer.clone()))
            .layer_inner(counting(inner.clone()))
            // A per-provider breaker, in effect: provider `a` is refused before anything is sent.
            .layer_inner(mprpc::client::layer::interceptor(move |call| {
                let open = call.provider() == Some(refused.as_str());
                async move {
                    match open {
                        true => Err(Status::unavailable("provider a is ejected")),
                        false => Ok(()),
                    }
                }
            }));
    let client = EchoClient::new(channel);
    for _ in 0..4 {
        let reply = client.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(
            reply.served_by, "b",
            "every call ends on the provider that answers"
        );
    }
    let outer = outer.lock().unwrap().clone();
    let inner = inner.lock().unwrap().clone();
    assert_eq!(
        outer,
        vec![None; 4],
        "one logical call each, before a provider is chosen"
    );
    let on_a = inner
        .iter()
        .filter(|p| p.as_deref() == Some(&a.to_string()[..]))
        .count();
    let on_b = inner
        .iter()
        .filter(|p| p.as_deref() == Some(&b.to_string()[..]))
        .count();
    assert_eq!(on_b, 4, "{inner:?}");
    assert!(
        on_a >= 1,
        "round robin sends some calls to `a` first: {inner:?}"
    );
    assert_eq!(inner.len(), 4 + on_a, "{inner:?}");
    handle_a.shutdown().await.unwrap();
    handle_b.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_inner_refusal_on_every_provider_reaches_the_caller() {
    let (a, handle) = start(echo_server("a")).await;
    let channel =
        Channel::to_address(a.to_string()).layer_inner(mprpc::client::layer::interceptor(
            |_call| async { Err(Status::permission_denied("not from this host")) },
        ));
    let status = EchoClient::new(channel)
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status}");
    assert_eq!(status.message(), "not from this host");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn generated_with_interceptor_on_both_sides() {
    let service = EchoService::named("x");
    let counters = service.counters.clone();
    let checks = Arc::new(AtomicUsize::new(0));
    let seen = checks.clone();
    let server = Server::new(Default::default()).add_service(EchoServer::with_interceptor(
        service,
        move |call: &mut ServerCall| {
            seen.fetch_add(1, Ordering::SeqCst);
            let ok = call.metadata().get("authorization") == Some("Bearer s3cret");
            async move {
                match ok {
                    true => Ok(()),
                    false => Err(Status::unauthenticated("a valid token is needed")),
                }
            }
        },
    ));
    let (addr, handle) = start(server).await;
    let channel = Channel::to_address(addr.to_string());

    let refused = EchoClient::new(channel.clone())
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    assert_eq!(
        counters.started.load(Ordering::SeqCst),
        0,
        "the handler ran"
    );

    let client = EchoClient::with_interceptor(channel, |call: &mut ClientCall<'_>| {
        call.metadata_mut().insert("authorization", "Bearer s3cret");
        async { Ok(()) }
    });
    client.echo(EchoRequest::default()).await.unwrap();
    assert_eq!(counters.started.load(Ordering::SeqCst), 1);
    assert_eq!(checks.load(Ordering::SeqCst), 2);

    // An unknown method is not the interceptor's to check: `Unimplemented`, not refused.
    let status = Channel::to_address(addr.to_string())
        .unary_raw(
            mprpc_tests::proto::echo_server::SERVICE_NAME,
            "NoSuchMethod",
            Request::new(mprpc::Body::new()),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    handle.shutdown().await.unwrap();
}
