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

/// Makes four slow calls at once through `client` and returns the most handlers seen running
/// at the same time (sampled until all four have finished; each must succeed).
async fn most_at_once(client: &EchoClient, counters: &mprpc_tests::Counters) -> usize {
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .echo(EchoRequest {
                        delay_ms: 150,
                        ..EchoRequest::default()
                    })
                    .await
            })
        })
        .collect();
    let mut most = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while counters.finished.load(Ordering::SeqCst) < 4 {
        let running =
            counters.started.load(Ordering::SeqCst) - counters.finished.load(Ordering::SeqCst);
        most = most.max(running);
        assert!(
            std::time::Instant::now() < deadline,
            "the calls never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for call in calls {
        call.await.unwrap().expect("every call is answered");
    }
    most
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

mod client {
    //! Client layers: order, a token added on the way out, a call refused before it is sent,
    //! and a layer that runs the rest of the stack twice.

    use super::*;
    use mprpc::client::layer::{self, ClientCall};

    fn tracer(name: &'static str, log: Arc<Mutex<Vec<String>>>) -> impl layer::Layer {
        layer::from_fn(move |call: ClientCall<'_>, next: layer::Next<'_>| {
            let log = log.clone();
            Box::pin(async move {
                log.lock().unwrap().push(format!("{name}>"));
                let outcome = next.run(call).await;
                log.lock().unwrap().push(format!("<{name}"));
                outcome
            })
        })
    }

    #[tokio::test]
    async fn client_layers_run_outermost_first_and_share_the_connections() {
        let server =
            Server::new(Default::default()).add_service(EchoServer::new(EchoService::named("x")));
        let (plain, channel, handle) = start(server).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let layered = EchoClient::new(
            channel
                .clone()
                .layer(tracer("a", log.clone()))
                .layer(tracer("b", log.clone())),
        );
        layered.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["a>", "b>", "<b", "<a"].map(String::from)
        );
        // The plain handle is not layered.
        plain.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(log.lock().unwrap().len(), 4);
        handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_token_added_by_a_client_interceptor_passes_a_server_interceptor() {
        let service = EchoService::named("x");
        let counters = service.counters.clone();
        let server = Server::new(Default::default())
            .layer(interceptor(|call: &mut ServerCall| {
                let ok = call.metadata().get("authorization") == Some("Bearer let-me-in");
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err(Status::unauthenticated("a valid token is needed"))
                    }
                }
            }))
            .add_service(EchoServer::new(service));
        let (plain, channel, handle) = start(server).await;
        let with_token = EchoClient::new(channel.layer(layer::interceptor(|call| {
            call.metadata_mut()
                .insert("authorization", "Bearer let-me-in");
            async { Ok(()) }
        })));
        let reply = with_token
            .echo(EchoRequest {
                metadata_key: "authorization".into(),
                ..EchoRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(reply.metadata_value, "Bearer let-me-in");
        let refused = plain.echo(EchoRequest::default()).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert_eq!(counters.started.load(Ordering::SeqCst), 1);
        handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_client_interceptor_can_refuse_before_anything_is_sent() {
        let service = EchoService::named("x");
        let counters = service.counters.clone();
        let server = Server::new(Default::default()).add_service(EchoServer::new(service));
        let (_, channel, handle) = start(server).await;
        let guarded = EchoClient::new(channel.layer(layer::interceptor(|call| {
            let method = call.method().to_owned();
            async move {
                Err(Status::permission_denied(format!(
                    "{method} is not allowed here"
                )))
            }
        })));
        let status = guarded.echo(EchoRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "Echo is not allowed here");
        assert_eq!(counters.started.load(Ordering::SeqCst), 0);
        handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_layer_can_send_a_call_again() {
        let service = EchoService::named("x");
        let counters = service.counters.clone();
        let server = Server::new(Default::default()).add_service(EchoServer::new(service));
        let (_, channel, handle) = start(server).await;
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = attempts.clone();
        // Fails the first attempt on the way back, then sends the call again.
        let retry = layer::from_fn(move |call: ClientCall<'_>, next: layer::Next<'_>| {
            let seen = seen.clone();
            Box::pin(async move {
                let first = next.run(call.clone()).await;
                seen.fetch_add(1, Ordering::SeqCst);
                match first {
                    Ok(_) => {
                        seen.fetch_add(1, Ordering::SeqCst);
                        next.run(call).await
                    }
                    other => other,
                }
            })
        });
        let client = EchoClient::new(channel.layer(retry));
        let reply = client
            .echo(EchoRequest {
                payload: b"twice".to_vec(),
                ..EchoRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(reply.payload, b"twice");
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(
            counters.finished.load(Ordering::SeqCst),
            2,
            "two calls reached the provider"
        );
        handle.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tower_concurrency_limit_on_a_channel_holds_across_calls() {
        let service = EchoService::named("x");
        let counters = service.counters.clone();
        let server = Server::new(Default::default()).add_service(EchoServer::new(service));
        let (_, channel, handle) = start(server).await;
        let client = EchoClient::new(channel.layer(layer::from_tower(
            tower::limit::ConcurrencyLimitLayer::new(1),
        )));
        let most = most_at_once(&client, &counters).await;
        assert_eq!(most, 1, "the channel sent more than one call at a time");
        handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_tower_timeout_on_a_channel_becomes_deadline_exceeded() {
        let server =
            Server::new(Default::default()).add_service(EchoServer::new(EchoService::named("x")));
        let (_, channel, handle) = start(server).await;
        let client = EchoClient::new(channel.layer(layer::from_tower(
            tower::timeout::TimeoutLayer::new(Duration::from_millis(100)),
        )));
        let status = client
            .echo(EchoRequest {
                delay_ms: 5_000,
                ..EchoRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert!(status.message().contains("tower timeout"), "{status}");
        handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_channel_takes_layers_too() {
    let server =
        Server::new(Default::default()).add_service(EchoServer::new(EchoService::named("x")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    // A plain thread, as a synchronous program would call it.
    let caller = std::thread::spawn(move || {
        let channel = mprpc::client::BlockingChannel::to_address(addr.to_string())
            .unwrap()
            .layer(mprpc::client::layer::interceptor(|call| {
                call.metadata_mut().insert("tenant", "blocking");
                async { Ok(()) }
            }));
        mprpc_tests::EchoBlockingClient::new(channel).echo(EchoRequest {
            metadata_key: "tenant".into(),
            ..EchoRequest::default()
        })
    });
    let reply = tokio::task::spawn_blocking(move || caller.join())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.metadata_value, "blocking");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_concurrency_limit_holds_across_calls() {
    let service = EchoService::named("x");
    let counters = service.counters.clone();
    let server = Server::new(Default::default())
        .layer(mprpc::server::layer::from_tower(
            tower::limit::ConcurrencyLimitLayer::new(1),
        ))
        .add_service(EchoServer::new(service));
    let (client, _, handle) = start(server).await;
    let most = most_at_once(&client, &counters).await;
    assert_eq!(most, 1, "the limit of one call at a time was not held");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tower_timeout_becomes_deadline_exceeded() {
    let server = Server::new(Default::default())
        .layer(mprpc::server::layer::from_tower(
            tower::timeout::TimeoutLayer::new(Duration::from_millis(100)),
        ))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    let status = client
        .echo(EchoRequest {
            delay_ms: 5_000,
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(status.message().contains("tower timeout"), "{status}");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_details_reach_the_caller() {
    let details = bytes::Bytes::from_static(b"\x08\x03\x12\x07too big");
    let sent = details.clone();
    let server = Server::new(Default::default())
        .layer(from_fn(move |_call: ServerCall, _next: Next| {
            let details = sent.clone();
            async move { Err(Status::failed_precondition("quota used up").with_details(details)) }
        }))
        .add_service(EchoServer::new(EchoService::named("x")));
    let (client, _, handle) = start(server).await;
    let status = client.echo(EchoRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "quota used up");
    assert_eq!(status.details(), &details);
    handle.shutdown().await.unwrap();
}
