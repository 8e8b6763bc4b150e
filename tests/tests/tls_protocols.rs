//! Protocol detection inside TLS: one port with mutual TLS serving mprpc's own callers,
//! HTTP/JSON (curl, chosen by ALPN `http/1.1`, and by the first bytes when curl offers no
//! ALPN), and gRPC (Python's `grpcio`, chosen by ALPN `h2`; curl's HTTP/2 preface without
//! ALPN). Each caller's certificate reaches the handler as its identity, and a plaintext
//! caller is still refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, ClientTls, ProtocolsConfig, ServerConfig, ServerTls};
use mprpc::server::{spawn_local, Server};
use mprpc_tests::certs::TestCa;
use mprpc_tests::{EchoClient, EchoRequest, EchoResponse, EchoServer, EchoService};
use prost::Message;

const GRPC_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/grpc_tls_client.py");

/// The files of a test: the CA, and a client certificate (CN=billing) with its key.
struct Files {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A provider with mutual TLS and HTTP/JSON and gRPC on: its port.
async fn provider(dir: &Path) -> (std::net::SocketAddr, mprpc::server::LocalServer, Files) {
    let ca = TestCa::new("ca");
    let ca_path = ca.write(dir);
    let provider = ca.provider(dir, "provider");
    let mut tls = ServerTls::new(&provider.cert, &provider.key);
    tls.client_ca = Some(ca_path.clone());
    let config = ServerConfig {
        tls: Some(tls),
        protocols: ProtocolsConfig {
            http: true,
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("inner")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    let billing = ca.client(dir, "billing");
    let files = Files {
        ca: ca_path,
        cert: billing.cert,
        key: billing.key,
    };
    (addr, handle, files)
}

/// Runs a command off the runtime; its exit status and standard output.
async fn run(mut command: Command) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = command.output().expect("run the command");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// curl against `https://localhost:PORT{path}` (resolved to 127.0.0.1) with the client's
/// certificate and `args`; prints the body, then the HTTP version and status.
fn curl(addr: std::net::SocketAddr, files: &Files, path: &str, args: &[&str]) -> Command {
    let port = addr.port();
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "-o", "-"])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(&files.ca)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .args(args)
        .arg(format!("https://localhost:{port}{path}"));
    command
}

const ECHO_JSON: &str = r#"{"payload": "aGVsbG8=", "metadataKey": "@peer-identity"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_inside_tls_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, handle, files) = provider(dir.path()).await;

    // mprpc's own caller (no ALPN): the first bytes say mprpc.
    let mut tls = ClientTls::new(&files.ca);
    tls.cert = Some(files.cert.clone());
    tls.key = Some(files.key.clone());
    let config = ClientConfig {
        tls: Some(tls),
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::to_addresses(vec![addr.to_string()], config));
    let reply = client
        .echo(EchoRequest {
            payload: b"mprpc".to_vec(),
            metadata_key: mprpc_tests::PEER_IDENTITY_KEY.into(),
            ..EchoRequest::default()
        })
        .await
        .expect("an mprpc call over TLS");
    assert_eq!(reply.metadata_value, "CN=billing");

    // curl offers h2 and http/1.1 by ALPN: the provider picks HTTP/1.1, HTTP/JSON.
    let post = [
        "-H",
        "content-type: application/json",
        "--data-binary",
        ECHO_JSON,
    ];
    let (ok, out, err) = run(curl(addr, &files, "/mprpc.test.Echo/Echo", &post)).await;
    assert!(ok, "curl over TLS failed: {out}\n{err}");
    let (body, status) = out.rsplit_once('\n').unwrap();
    assert_eq!(status, "1.1 200", "{body}");
    let reply: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(reply["payload"], "aGVsbG8=");
    assert_eq!(reply["metadataValue"], "CN=billing", "{body}");

    // Without ALPN, the request line itself says HTTP.
    let (ok, out, err) = run(curl(addr, &files, "/", &["--no-alpn", "--http1.1"])).await;
    assert!(ok, "curl without ALPN failed: {out}\n{err}");
    assert!(out.ends_with("1.1 200"), "{out}");
    assert!(out.contains("mprpc.test.Echo"), "{out}");

    // HTTP/2's preface without ALPN: gRPC, which answers a JSON body with a gRPC status.
    let h2 = [
        "--no-alpn",
        "--http2-prior-knowledge",
        "-D",
        "-",
        "-H",
        "content-type: application/json",
        "--data-binary",
        "{}",
    ];
    let (ok, out, err) = run(curl(addr, &files, "/mprpc.test.Echo/Echo", &h2)).await;
    assert!(ok, "curl with HTTP/2's preface failed: {out}\n{err}");
    assert!(out.ends_with("2 200"), "{out}");
    assert!(out.contains("grpc-status"), "{out}");

    // grpcio: ALPN h2, gRPC, with its client certificate.
    let mut python = Command::new("timeout");
    python
        .args(["60", "python3", GRPC_CLIENT, &addr.to_string()])
        .args([&files.ca, &files.cert, &files.key]);
    let (ok, out, err) = run(python).await;
    assert!(ok, "grpc_tls_client.py failed:\n{out}\n{err}");
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix("reply "))
        .expect("a reply line");
    let reply = EchoResponse::decode(&decode_hex(hex)[..]).unwrap();
    assert_eq!(reply.payload, b"over tls");
    assert_eq!(reply.metadata_value, "CN=billing");
    assert!(out.contains("health 0801"), "SERVING: {out}");

    // Plaintext HTTP on a port that requires TLS: refused.
    let (ok, out, _) = run({
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{addr}/"));
        c
    })
    .await;
    assert!(!ok || out != "200", "plaintext HTTP was served: {out}");

    // Everyone still served afterwards.
    client
        .echo(EchoRequest::default())
        .await
        .expect("served on");
    handle.shutdown().await.unwrap();
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
