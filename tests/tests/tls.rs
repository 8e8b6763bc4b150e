//! TLS on the RPC port with real handshakes and certificates made here: calls over TLS,
//! mutual TLS accepted and refused, a plaintext client against a TLS-only provider, both on
//! one port, certificates rotated while calls run, an expired certificate refused, and
//! garbage on a TLS port.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, ClientTls, ServerConfig, ServerTls, TlsMode};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::certs::TestCa;
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService, PEER_IDENTITY_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_server(tls: ServerTls) -> Server {
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    Server::new(config).add_service(EchoServer::new(EchoService::named("tls")))
}

fn client(addr: std::net::SocketAddr, tls: Option<ClientTls>) -> EchoClient {
    let config = ClientConfig {
        tls,
        ..ClientConfig::default()
    };
    EchoClient::new(Channel::to_addresses(vec![addr.to_string()], config))
}

async fn start(server: Server) -> (std::net::SocketAddr, LocalServer) {
    spawn_local(server).await.expect("start provider")
}

/// A TLS-only provider with a certificate of a new CA (its files in `dir`), and a client
/// that trusts that CA.
async fn provider_and_client(dir: &std::path::Path) -> (EchoClient, LocalServer) {
    let ca = TestCa::new("ca");
    let files = ca.provider(dir, "provider");
    let (addr, handle) = start(tls_server(ServerTls::new(&files.cert, &files.key))).await;
    (client(addr, Some(ClientTls::new(ca.write(dir)))), handle)
}

#[tokio::test]
async fn a_call_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (client, handle) = provider_and_client(dir.path()).await;
    let reply = client
        .echo(EchoRequest {
            payload: b"over tls".to_vec(),
            metadata_key: PEER_IDENTITY_KEY.into(),
            ..EchoRequest::default()
        })
        .await
        .expect("a call over TLS");
    assert_eq!(reply.payload, b"over tls");
    assert_eq!(
        reply.metadata_value, "",
        "no client certificate, no identity"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_in_pieces_over_tls_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (client, handle) = provider_and_client(dir.path()).await;
    let calls = [70_000, (1 << 20) + 3].map(|len| {
        let client = client.clone();
        tokio::spawn(async move {
            let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let reply = client
                .echo(EchoRequest {
                    payload: payload.clone(),
                    ..EchoRequest::default()
                })
                .await
                .expect("a large call over TLS");
            assert!(reply.payload == payload, "the reply of {len} bytes differs");
        })
    });
    for call in calls {
        call.await.unwrap();
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_of_the_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let ca_path = ca.write(dir.path());
    let files = ca.provider(dir.path(), "provider");
    let mut tls = ServerTls::new(&files.cert, &files.key);
    tls.client_ca = Some(ca_path.clone());
    let (addr, handle) = start(tls_server(tls)).await;

    // A client with a certificate from the CA: its identity reaches the handler.
    let billing = ca.client(dir.path(), "billing");
    let mut good = ClientTls::new(&ca_path);
    good.cert = Some(billing.cert);
    good.key = Some(billing.key);
    let reply = client(addr, Some(good))
        .echo(EchoRequest {
            metadata_key: PEER_IDENTITY_KEY.into(),
            ..EchoRequest::default()
        })
        .await
        .expect("a client of the CA");
    assert_eq!(reply.metadata_value, "CN=billing");

    // No certificate at all.
    let status = client(addr, Some(ClientTls::new(&ca_path)))
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("CertificateRequired"), "{status}");
    // A certificate from another CA.
    let stranger_ca = TestCa::new("stranger");
    let stranger = stranger_ca.client(dir.path(), "mallory");
    let mut bad = ClientTls::new(&ca_path);
    bad.cert = Some(stranger.cert);
    bad.key = Some(stranger.key);
    let status = client(addr, Some(bad))
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("UnknownCA"), "{status}");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plaintext_client_is_told_the_provider_requires_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let files = ca.provider(dir.path(), "provider");
    let (addr, handle) = start(tls_server(ServerTls::new(&files.cert, &files.key))).await;
    let status = client(addr, None)
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    // Named at once (a client left hanging would see `DeadlineExceeded` instead).
    assert_eq!(status.code(), Code::Unauthenticated, "{status}");
    assert!(
        status.message().contains("requires TLS"),
        "the reason is named: {status}"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn optional_tls_serves_both_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let files = ca.provider(dir.path(), "provider");
    let mut tls = ServerTls::new(&files.cert, &files.key);
    tls.mode = TlsMode::Optional;
    let (addr, handle) = start(tls_server(tls)).await;
    client(addr, None)
        .echo(EchoRequest::default())
        .await
        .expect("plaintext");
    client(addr, Some(ClientTls::new(ca.write(dir.path()))))
        .echo(EchoRequest::default())
        .await
        .expect("TLS");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tls_client_to_a_plaintext_provider_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let server = Server::new(ServerConfig::default())
        .add_service(EchoServer::new(EchoService::named("plain")));
    let (addr, handle) = start(server).await;
    let status = client(addr, Some(ClientTls::new(ca.write(dir.path()))))
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert!(status.message().contains("TLS handshake with"), "{status}");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_serve_new_connections_and_old_ones_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old");
    let new_ca = TestCa::new("new");
    let (old_ca_path, new_ca_path) = (old_ca.write(dir.path()), new_ca.write(dir.path()));
    let files = old_ca.provider(dir.path(), "provider");
    let mut tls = ServerTls::new(&files.cert, &files.key);
    tls.reload_interval = Duration::from_millis(50);
    let (addr, handle) = start(tls_server(tls)).await;

    // A client of the old CA, connected before the rotation, keeps calling.
    let old_client = client(addr, Some(ClientTls::new(&old_ca_path)));
    old_client
        .echo(EchoRequest::default())
        .await
        .expect("before");
    // It calls until the new certificate is served, and at least 20 times, within a bound.
    let rotated = Arc::new(AtomicBool::new(false));
    let done = rotated.clone();
    let calling = tokio::spawn(async move {
        let mut calls = 0;
        let bound = Instant::now() + Duration::from_secs(20);
        while (calls < 20 || !done.load(Ordering::SeqCst)) && Instant::now() < bound {
            old_client
                .echo(EchoRequest::default())
                .await
                .expect("no call fails during the rotation");
            calls += 1;
            tokio::task::yield_now().await;
        }
        calls
    });

    // A client of the new CA cannot connect yet.
    let new_client = || client(addr, Some(ClientTls::new(&new_ca_path)));
    assert!(new_client().echo(EchoRequest::default()).await.is_err());

    // Rotate: write the new files beside the old ones and rename them over (atomically).
    let staged = dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    let fresh = new_ca.provider(&staged, "provider");
    std::fs::rename(&fresh.key, &files.key).unwrap();
    std::fs::rename(&fresh.cert, &files.cert).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if new_client().echo(EchoRequest::default()).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rotated.store(true, Ordering::SeqCst);
    let calls = calling.await.unwrap();
    assert!(calls > 10, "the old connection kept serving: {calls} calls");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_its_file_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let files = ca.provider_dated(dir.path(), "old", (2020, 1, 1), (2021, 1, 1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = tls_server(ServerTls::new(&files.cert, &files.key))
        .serve(listener, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("old.pem"), "{error}");
    assert!(error.contains("expired"), "{error}");
    assert!(error.contains("2021"), "{error}");
}

#[tokio::test]
async fn garbage_on_a_tls_port_is_refused_and_harms_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let files = ca.provider(dir.path(), "provider");
    let mut tls = ServerTls::new(&files.cert, &files.key);
    tls.handshake_timeout = Duration::from_millis(300);
    let (addr, handle) = start(tls_server(tls)).await;
    let good = client(addr, Some(ClientTls::new(ca.write(dir.path()))));
    good.echo(EchoRequest::default()).await.unwrap();

    // An HTTP request: a GoAway naming the reason, then the close.
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), http.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).contains("requires TLS"),
        "{answer:?}"
    );

    // A truncated ClientHello: closed after the handshake timeout.
    let mut truncated = tokio::net::TcpStream::connect(addr).await.unwrap();
    truncated
        .write_all(&[0x16, 0x03, 0x01, 0x02])
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), truncated.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();

    // The good client's connection carries on.
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(Duration::from_secs(2));
    good.echo(request).await.expect("unharmed");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn certificates_from_the_make_certs_script_work_for_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-certs.sh");
    let made = std::process::Command::new("bash")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("run scripts/make-certs.sh (it needs bash and openssl)");
    assert!(
        made.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let file = |name: &str| dir.path().join(name);
    let mut tls = ServerTls::new(file("provider.pem"), file("provider.key"));
    tls.client_ca = Some(file("ca.pem"));
    let (addr, handle) = start(tls_server(tls)).await;
    let mut client_tls = ClientTls::new(file("ca.pem"));
    client_tls.cert = Some(file("client.pem"));
    client_tls.key = Some(file("client.key"));
    let reply = client(addr, Some(client_tls))
        .echo(EchoRequest {
            metadata_key: PEER_IDENTITY_KEY.into(),
            ..EchoRequest::default()
        })
        .await
        .expect("a call with the script's certificates");
    assert_eq!(reply.metadata_value, "CN=client");
    handle.shutdown().await.unwrap();
}

/// Runs `curl` on `url` with `args` and returns the HTTP status it printed and the body.
async fn curl(url: &str, args: &[&str]) -> (String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_over_tls_asks_curl_for_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let ca_path = ca.write(dir.path());
    let files = ca.provider(dir.path(), "provider");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let config = ServerConfig {
        tls: Some(ServerTls::new(&files.cert, &files.key)),
        admin_tls: true,
        admin_token: Some(mprpc::auth::token_hash("admin-s3cret")),
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .with_admin_listener(admin)
        .add_service(EchoServer::new(EchoService::named("a")));
    let (_, handle) = start(server).await;
    let base = format!("https://127.0.0.1:{}", admin_addr.port());
    let ca_arg = ca_path.to_str().unwrap();

    let health = curl(&format!("{base}/health"), &["--cacert", ca_arg]).await;
    assert_eq!(health.0, "200", "/health stays open: {health:?}");
    let (code, body) = curl(&format!("{base}/metrics"), &["--cacert", ca_arg]).await;
    assert_eq!(code, "401", "{body}");
    let (code, body) = curl(
        &format!("{base}/metrics"),
        &[
            "--cacert",
            ca_arg,
            "-H",
            "Authorization: Bearer admin-s3cret",
        ],
    )
    .await;
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("mprpc_"), "{body}");
    let (code, _) = curl(
        &format!("{base}/status.json"),
        &["--cacert", ca_arg, "-H", "Authorization: Bearer wrong"],
    )
    .await;
    assert_eq!(code, "401");
    // Plain HTTP on the TLS admin port gets nowhere.
    let (code, _) = curl(
        &format!("http://127.0.0.1:{}/health", admin_addr.port()),
        &[],
    )
    .await;
    assert_ne!(code, "200");
    handle.shutdown().await.unwrap();
}
