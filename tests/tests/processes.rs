//! Failure tests with a real provider process, stopped with real signals.

use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::ClientConfig;
use mprpc::{Code, Request};
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::{EchoClient, EchoRequest};
use nix::sys::signal::Signal;

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_call_gives_unavailable_not_a_hang() {
    let mut provider = ProviderProcess::start(PROVIDER, &["killed"]);
    let client = EchoClient::new(Channel::to_address(provider.address.clone()));
    client
        .echo(EchoRequest::default())
        .await
        .expect("warm-up call");
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = client
                .echo(
                    Request::new(EchoRequest {
                        delay_ms: 20_000,
                        ..EchoRequest::default()
                    })
                    .with_timeout(Duration::from_secs(60)),
                )
                .await;
            (outcome, started.elapsed())
        })
    };
    let line = tokio::task::spawn_blocking(move || {
        provider.wait_for_line("call started", Duration::from_secs(10));
        provider.signal(Signal::SIGKILL);
        provider
    });
    let _provider = line.await.unwrap();
    let (outcome, took) = call.await.unwrap();
    let status = outcome.expect_err("the provider died");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_provider_is_noticed_by_the_ping() {
    let provider = ProviderProcess::start(PROVIDER, &["frozen"]);
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(400),
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::to_addresses(
        vec![provider.address.clone()],
        config,
    ));
    client
        .echo(EchoRequest::default())
        .await
        .expect("warm-up call");
    provider.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let status = client
        .echo(EchoRequest::default())
        .await
        .expect_err("a frozen provider does not answer");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "noticed after {:?}, not at the 30 s timeout",
        started.elapsed()
    );
    provider.signal(Signal::SIGCONT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_calls_in_flight_then_exits_cleanly() {
    let mut provider = ProviderProcess::start(PROVIDER, &["drained"]);
    let client = EchoClient::new(Channel::to_address(provider.address.clone()));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .echo(EchoRequest {
                        delay_ms: 500,
                        ..EchoRequest::default()
                    })
                    .await
            })
        })
        .collect();
    let provider = tokio::task::spawn_blocking(move || {
        for _ in 0..10 {
            provider.wait_for_line("call started", Duration::from_secs(10));
        }
        provider.signal(Signal::SIGTERM);
        let status = provider.wait_exit(Duration::from_secs(15));
        (provider, status)
    });
    for call in calls {
        call.await
            .unwrap()
            .expect("answered before the provider exited");
    }
    let (_provider, status) = provider.await.unwrap();
    let status = status.expect("provider exited after SIGTERM");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_a_tls_provider_read_its_certificate_again() {
    use mprpc::config::ClientTls;
    use mprpc_tests::certs::TestCa;

    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old"), TestCa::new("new"));
    let (old_ca_path, new_ca_path) = (old_ca.write(dir.path()), new_ca.write(dir.path()));
    let files = old_ca.provider(dir.path(), "provider");
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    let provider = ProviderProcess::start(PROVIDER, &["hup", "--tls-cert", cert, "--tls-key", key]);
    let client_of = |ca: &std::path::Path| {
        let config = ClientConfig {
            tls: Some(ClientTls::new(ca)),
            ..ClientConfig::default()
        };
        EchoClient::new(Channel::to_addresses(
            vec![provider.address.clone()],
            config,
        ))
    };
    client_of(&old_ca_path)
        .echo(EchoRequest::default())
        .await
        .expect("the old certificate is served");

    // New files in place: nothing changes until the SIGHUP (the periodic check is an hour off).
    let staged = dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    let fresh = new_ca.provider(&staged, "provider");
    std::fs::rename(&fresh.key, &files.key).unwrap();
    std::fs::rename(&fresh.cert, &files.cert).unwrap();
    client_of(&old_ca_path)
        .echo(EchoRequest::default())
        .await
        .expect("still the old certificate");

    provider.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_of(&new_ca_path)
        .echo(EchoRequest::default())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        client_of(&old_ca_path)
            .echo(EchoRequest::default())
            .await
            .is_err(),
        "new connections get the new certificate"
    );
}
