//! The consumer's resilience over real TCP with in-process providers: retries of idempotent
//! calls (and none of the others), the retry budget, hedging with the loser cancelled,
//! outlier ejection and return, and deadlines and cancellation through nested calls.
//! (The fault matrix with real processes and ZooKeeper is in `resilience_faults.rs`.)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, HedgeDelay, OutlierConfig};
use mprpc::metrics::Metrics;
use mprpc::registry::StaticRegistry;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::{wait_until, EchoClient, EchoRequest, EchoServer, EchoService};

const WAIT: Duration = Duration::from_secs(10);

/// A provider of the echo service.
async fn provider(service: EchoService) -> (String, LocalServer) {
    let server = Server::new(Default::default()).add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

/// A channel over `addresses` (round robin) counting into its own metrics.
fn client(addresses: &[&str], config: ClientConfig) -> (EchoClient, Metrics) {
    let metrics = Metrics::new();
    let registry = Arc::new(StaticRegistry::any(
        addresses.iter().map(|a| a.to_string()).collect(),
    ));
    let channel = Channel::with_metrics(config, registry, metrics.clone());
    (EchoClient::new(channel), metrics)
}

fn no_ejection() -> OutlierConfig {
    OutlierConfig {
        consecutive_failures: 0,
        success_rate_factor: 0.0,
        ..OutlierConfig::default()
    }
}

fn broken(name: &str, code: Code) -> EchoService {
    let service = EchoService::named(name);
    service.fail_with.store(code as i32, Ordering::SeqCst);
    service
}

fn counts(metrics: &Metrics, method: &str) -> mprpc::metrics::ResilienceCounts {
    mprpc_tests::resilience_counts(metrics, method)
}

#[tokio::test]
async fn idempotent_calls_are_retried_on_another_provider_and_others_are_not() {
    let bad = broken("bad", Code::Unavailable);
    let (bad_addr, bad_server) = provider(bad.clone()).await;
    let (good_addr, good_server) = provider(EchoService::named("good")).await;
    let mut config = ClientConfig {
        outlier: no_ejection(),
        ..ClientConfig::default()
    };
    config.retry.initial_backoff = Duration::from_millis(1);
    let (client, metrics) = client(&[&bad_addr, &good_addr], config);

    for _ in 0..10 {
        let reply = client.read(EchoRequest::default()).await.expect("a read");
        assert_eq!(reply.served_by, "good");
    }
    let reads = counts(&metrics, "Read");
    assert_eq!(
        reads.retries,
        bad.counters.started.load(Ordering::SeqCst) as u64
    );
    assert!(
        reads.retries >= 4,
        "round robin sends about half to bad: {reads:?}"
    );

    let mut failed = 0;
    for _ in 0..10 {
        match client.echo(EchoRequest::default()).await {
            Ok(reply) => assert_eq!(reply.served_by, "good"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status}");
                failed += 1;
            }
        }
    }
    assert!(
        failed >= 4,
        "the bad provider's share of plain calls fails: {failed}"
    );
    assert_eq!(counts(&metrics, "Echo").retries, 0);

    // The caller's own level wins over the declared one.
    let before = bad.counters.started.load(Ordering::SeqCst);
    let mut plain_failures = 0;
    for _ in 0..6 {
        let request =
            Request::new(EchoRequest::default()).with_idempotency(mprpc::Idempotency::Unknown);
        plain_failures += usize::from(client.read(request).await.is_err());
    }
    assert_eq!(
        plain_failures,
        bad.counters.started.load(Ordering::SeqCst) - before
    );
    bad_server.shutdown().await.unwrap();
    good_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_budget_caps_retries_when_every_provider_fails() {
    let (a, b) = (
        broken("a", Code::Unavailable),
        broken("b", Code::Unavailable),
    );
    let (a_addr, a_server) = provider(a.clone()).await;
    let (b_addr, b_server) = provider(b.clone()).await;
    let mut config = ClientConfig {
        outlier: no_ejection(),
        ..ClientConfig::default()
    };
    config.retry.max_attempts = 5;
    config.retry.initial_backoff = Duration::from_micros(100);
    config.retry.max_backoff = Duration::from_millis(1);
    config.retry.budget_ratio = 0.1;
    config.retry.budget_min_per_second = 1;
    let (client, metrics) = client(&[&a_addr, &b_addr], config);

    let calls = 100;
    for _ in 0..calls {
        let status = client.read(EchoRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
    let attempts =
        a.counters.started.load(Ordering::SeqCst) + b.counters.started.load(Ordering::SeqCst);
    // Without a budget: 5 attempts a call. With it: 10% of the calls plus 1 a second over
    // the 10 s window.
    let limit = calls + calls / 10 + 10;
    println!("{calls} calls, {attempts} attempts (limit {limit})");
    assert!(attempts <= limit, "{attempts} attempts for {calls} calls");
    let reads = counts(&metrics, "Read");
    assert_eq!(reads.retries as usize, attempts - calls);
    assert!(reads.budget_exhausted > 0, "{reads:?}");
    a_server.shutdown().await.unwrap();
    b_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hedge_wins_against_a_stalled_provider_which_is_told_to_cancel() {
    let slow = EchoService {
        extra_delay_ms: 60_000,
        ..EchoService::named("slow")
    };
    let (slow_addr, slow_server) = provider(slow.clone()).await;
    let (fast_addr, fast_server) = provider(EchoService::named("fast")).await;
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        outlier: no_ejection(),
        hedge: mprpc::config::HedgeConfig {
            delay: Some(HedgeDelay::Fixed(Duration::from_millis(30))),
            ..Default::default()
        },
        ..ClientConfig::default()
    };
    let (client, metrics) = client(&[&slow_addr, &fast_addr], config);
    // Without hedging, every call that goes to the slow provider first would run out of time.
    for _ in 0..4 {
        let reply = client.read(EchoRequest::default()).await.expect("hedged");
        assert_eq!(reply.served_by, "fast");
    }
    let reads = counts(&metrics, "Read");
    assert!(reads.hedges >= 2, "{reads:?}");
    let started = slow.counters.started.load(Ordering::SeqCst);
    assert!(started >= 2);
    wait_until("the slow provider sees its calls cancelled", WAIT, || {
        slow.counters.abandoned.load(Ordering::SeqCst) == started
    })
    .await;
    slow_server.shutdown().await.unwrap();
    fast_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_provider_is_ejected_and_comes_back_when_it_recovers() {
    let bad = broken("bad", Code::Unavailable);
    let (bad_addr, bad_server) = provider(bad.clone()).await;
    let (good_addr, good_server) = provider(EchoService::named("good")).await;
    let config = ClientConfig {
        outlier: OutlierConfig {
            consecutive_failures: 3,
            success_rate_factor: 0.0,
            base_ejection_time: Duration::from_millis(300),
            ..OutlierConfig::default()
        },
        ..ClientConfig::default()
    };
    let (client, metrics) = client(&[&bad_addr, &good_addr], config);
    // Plain calls: no retries, so the bad provider's failures show.
    let mut failed = 0;
    for _ in 0..20 {
        failed += usize::from(client.echo(EchoRequest::default()).await.is_err());
    }
    assert_eq!(
        failed, 3,
        "three failures in a row, then the provider is out"
    );
    let health = metrics.snapshot().provider_health;
    assert!(health[&bad_addr].ejected, "{health:?}");
    let seen = bad.counters.started.load(Ordering::SeqCst);
    assert_eq!(seen, 3);

    // Recovered: after its ejection it is eased back in, then reported back.
    bad.fail_with.store(0, Ordering::SeqCst);
    let back = || !metrics.snapshot().provider_health[&bad_addr].ejected;
    let mut tries = 0;
    while bad.counters.finished.load(Ordering::SeqCst) < 5 || !back() {
        tries += 1;
        assert!(tries < 5_000, "the provider never came back");
        client
            .echo(EchoRequest::default())
            .await
            .expect("all succeed now");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bad_server.shutdown().await.unwrap();
    good_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn nested_calls_get_what_is_left_of_the_incoming_deadline_and_its_cancellation() {
    let back = EchoService::named("back");
    let (back_addr, back_server) = provider(back.clone()).await;
    let (front_addr, front_server) = provider(EchoService::named("front")).await;
    let (client, _) = client(&[&front_addr], ClientConfig::default());

    // The front's own channel would give the nested call 3 s; the caller gives 400 ms.
    let request = Request::new(EchoRequest {
        forward_to: back_addr.clone(),
        ..EchoRequest::default()
    })
    .with_timeout(Duration::from_millis(400));
    let reply = client.echo(request).await.expect("forwarded");
    assert_eq!(reply.served_by, "back");
    assert!(
        reply.budget_us > 0 && reply.budget_us <= 400_000,
        "the back end had {} us",
        reply.budget_us
    );

    // The caller runs out of time: the front's handler is dropped, and with it its call to
    // the back end, which is told to cancel long before its 30 s of work.
    let request = Request::new(EchoRequest {
        forward_to: back_addr,
        delay_ms: 30_000,
        ..EchoRequest::default()
    })
    .with_timeout(Duration::from_millis(200));
    let status = client.echo(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    wait_until("the back end's handler is cancelled", WAIT, || {
        back.counters.abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
    back_server.shutdown().await.unwrap();
    front_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_layer_that_clones_the_call_keeps_it_idempotent() {
    let (bad_addr, bad_server) = provider(broken("bad", Code::Unavailable)).await;
    let (good_addr, good_server) = provider(EchoService::named("good")).await;
    let mut config = ClientConfig {
        outlier: no_ejection(),
        ..ClientConfig::default()
    };
    config.retry.initial_backoff = Duration::from_millis(1);
    let registry = Arc::new(StaticRegistry::any(vec![bad_addr, good_addr]));
    let channel = Channel::with_metrics(config, registry, Metrics::new()).layer(
        mprpc::client::layer::from_fn(|call, next| {
            Box::pin(async move { next.run(call.clone()).await })
        }),
    );
    let client = EchoClient::new(channel);
    for _ in 0..10 {
        client
            .read(EchoRequest::default())
            .await
            .expect("retried past the bad provider");
    }
    bad_server.shutdown().await.unwrap();
    good_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_callers_short_timeout_ejects_no_healthy_provider() {
    let slowish = |name| EchoService {
        extra_delay_ms: 50,
        ..EchoService::named(name)
    };
    let (a_addr, a_server) = provider(slowish("a")).await;
    let (b_addr, b_server) = provider(slowish("b")).await;
    let config = ClientConfig {
        outlier: OutlierConfig {
            consecutive_failures: 3,
            ..OutlierConfig::default()
        },
        ..ClientConfig::default()
    };
    let (client, metrics) = client(&[&a_addr, &b_addr], config);
    for _ in 0..10 {
        let request = Request::new(EchoRequest::default()).with_timeout(Duration::from_millis(10));
        let status = client.echo(request).await.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
    }
    let health = metrics.snapshot().provider_health;
    assert!(
        health.is_empty(),
        "ejected for the caller's impatience: {health:?}"
    );
    a_server.shutdown().await.unwrap();
    b_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stalled_provider_is_ejected_although_hedges_hide_it() {
    let stalled = EchoService {
        extra_delay_ms: 60_000,
        ..EchoService::named("stalled")
    };
    let (stalled_addr, stalled_server) = provider(stalled).await;
    let (fast_addr, fast_server) = provider(EchoService::named("fast")).await;
    let config = ClientConfig {
        outlier: OutlierConfig {
            consecutive_failures: 3,
            ..OutlierConfig::default()
        },
        hedge: mprpc::config::HedgeConfig {
            delay: Some(HedgeDelay::Fixed(Duration::from_millis(20))),
            ..Default::default()
        },
        ..ClientConfig::default()
    };
    let (client, metrics) = client(&[&stalled_addr, &fast_addr], config);
    for _ in 0..10 {
        client.read(EchoRequest::default()).await.expect("hedged");
    }
    let health = metrics.snapshot().provider_health;
    assert!(
        health.get(&stalled_addr).is_some_and(|h| h.ejected),
        "{health:?}"
    );
    stalled_server.shutdown().await.unwrap();
    fast_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dependency_down_behind_a_provider_is_not_retried_nor_held_against_it() {
    // The back end's address, with nothing listening any more.
    let (gone, gone_server) = provider(EchoService::named("gone")).await;
    gone_server.shutdown().await.unwrap();
    let (a_addr, a_server) = provider(EchoService::named("front-a")).await;
    let (b_addr, b_server) = provider(EchoService::named("front-b")).await;
    let config = ClientConfig {
        outlier: OutlierConfig {
            consecutive_failures: 2,
            ..OutlierConfig::default()
        },
        ..ClientConfig::default()
    };
    let (client, metrics) = client(&[&a_addr, &b_addr], config);
    for _ in 0..10 {
        let request = EchoRequest {
            forward_to: gone.clone(),
            ..EchoRequest::default()
        };
        let status = client.read(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(status.is_downstream(), "{status}");
    }
    assert_eq!(counts(&metrics, "Read").retries, 0);
    let health = metrics.snapshot().provider_health;
    assert!(
        health.is_empty(),
        "a front end ejected for its back end: {health:?}"
    );
    a_server.shutdown().await.unwrap();
    b_server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_fast_fatal_failure_waits_for_the_attempt_still_running() {
    let slow_ok = EchoService {
        extra_delay_ms: 100,
        ..EchoService::named("slow-ok")
    };
    let (ok_addr, ok_server) = provider(slow_ok).await;
    let (bad_addr, bad_server) = provider(broken("fails-fast", Code::Internal)).await;
    let config = ClientConfig {
        outlier: no_ejection(),
        hedge: mprpc::config::HedgeConfig {
            delay: Some(HedgeDelay::Fixed(Duration::from_millis(20))),
            ..Default::default()
        },
        ..ClientConfig::default()
    };
    let (client, _) = client(&[&ok_addr, &bad_addr], config);
    let mut served = 0;
    for _ in 0..10 {
        // Calls that start on the failing provider fail: nothing else runs yet. Calls that
        // start on the slow one must not lose to its hedge's instant `Internal`.
        if let Ok(reply) = client.read(EchoRequest::default()).await {
            assert_eq!(reply.served_by, "slow-ok");
            served += 1;
        }
    }
    assert!(served >= 4, "only {served} of 10 calls were served");
    ok_server.shutdown().await.unwrap();
    bad_server.shutdown().await.unwrap();
}
