//! HTTP/JSON on the RPC port (`[server.protocols] http`), called with `curl`: good and bad
//! JSON, unknown services and methods, a body over the limit, metadata and deadlines from
//! headers, the listing at `GET /`, and mprpc's own callers on the same port meanwhile. A
//! provider without the setting answers HTTP with mprpc's refusal, as before.

use std::process::Command;
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::{ProtocolsConfig, ServerConfig};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService};

async fn start(http: bool) -> (String, LocalServer) {
    let config = ServerConfig {
        max_frame_size: 64 * 1024,
        protocols: ProtocolsConfig {
            http,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("http")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

/// Runs curl with `args` against `url`; returns the HTTP status and the body.
async fn curl(url: String, args: Vec<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .args(&args)
            .arg(&url)
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    })
    .await
    .unwrap()
}

fn post(json: &str) -> Vec<String> {
    vec![
        "-H".into(),
        "content-type: application/json".into(),
        "--data-binary".into(),
        json.into(),
    ]
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_methods_with_json() {
    let (addr, server) = start(true).await;
    let url = |path: &str| format!("http://{addr}{path}");
    // "hello" in base64, as proto3's JSON mapping writes bytes.
    let (code, body) = curl(
        url("/mprpc.test.Echo/Echo"),
        post(r#"{"payload": "aGVsbG8="}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let reply = json(&body);
    assert_eq!(reply["payload"], "aGVsbG8=");
    assert_eq!(reply["servedBy"], "http");
    // Metadata from headers; an empty body is the empty request.
    let mut args = post(r#"{"metadataKey": "tenant"}"#);
    args.extend(["-H".into(), "tenant: acme".into()]);
    let (code, body) = curl(url("/mprpc.test.Echo/Echo"), args).await;
    assert_eq!(
        (code, json(&body)["metadataValue"].as_str()),
        (200, Some("acme")),
        "{body}"
    );
    let (code, body) = curl(url("/mprpc.test.Echo/Read"), post("")).await;
    assert_eq!(code, 200, "{body}");
    // A handler's failure: its status as HTTP's, and as JSON.
    let (code, body) = curl(
        url("/mprpc.test.Echo/Echo"),
        post(r#"{"failCode": 5, "failMessage": "no such thing"}"#),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let error = json(&body);
    assert_eq!(
        (error["code"].as_i64(), error["status"].as_str()),
        (Some(5), Some("NotFound"))
    );
    assert_eq!(error["message"], "no such thing");
    // A deadline from a header.
    let mut args = post(r#"{"delayMs": 5000}"#);
    args.extend(["-H".into(), "mprpc-timeout-ms: 100".into()]);
    let (code, body) = curl(url("/mprpc.test.Echo/Echo"), args).await;
    assert_eq!(code, 504, "{body}");
    // The listing.
    let (code, body) = curl(url("/"), vec![]).await;
    assert_eq!(code, 200, "{body}");
    let listing = json(&body);
    let services = listing["services"].as_array().unwrap();
    assert!(
        services.iter().any(|s| s["name"] == "mprpc.test.Echo"),
        "{body}"
    );
    // mprpc's own callers, on the same port.
    let client = EchoClient::new(Channel::to_address(addr.clone()));
    client
        .echo(EchoRequest::default())
        .await
        .expect("an mprpc call");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let (addr, server) = start(true).await;
    let url = |path: &str| format!("http://{addr}{path}");
    let cases: Vec<(&str, Vec<String>, u16, &str)> = vec![
        (
            "/mprpc.test.Echo/Echo",
            post("{not json"),
            400,
            "InvalidArgument",
        ),
        (
            "/mprpc.test.Echo/Echo",
            post(r#"{"payload": 5}"#),
            400,
            "InvalidArgument",
        ),
        (
            "/mprpc.test.Echo/Echo",
            post(r#"{"nope": 1}"#),
            400,
            "InvalidArgument",
        ),
        ("/mprpc.test.Echo/Nope", post("{}"), 404, "Unimplemented"),
        ("/no.Such/Echo", post("{}"), 404, "Unimplemented"),
        (
            "/mprpc.test.Echo/Subscribe",
            post("{}"),
            501,
            "Unimplemented",
        ),
        ("/mprpc.test.Echo/Echo", vec![], 405, "InvalidArgument"),
        ("/nothing", post("{}"), 404, "NotFound"),
    ];
    for (path, args, expected, status) in cases {
        let (code, body) = curl(url(path), args).await;
        assert_eq!(code, expected, "{path}: {body}");
        assert_eq!(json(&body)["status"], status, "{path}: {body}");
    }
    // A body over max_frame_size (64 KiB here).
    let big = format!(r#"{{"payload": "{}"}}"#, "A".repeat(200 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    std::fs::write(&file, big).unwrap();
    let args = vec![
        "-H".into(),
        "content-type: application/json".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
    ];
    let (code, body) = curl(url("/mprpc.test.Echo/Echo"), args).await;
    assert_eq!(code, 413, "{body}");
    // Still serving.
    let (code, _) = curl(url("/mprpc.test.Echo/Echo"), post("{}")).await;
    assert_eq!(code, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_http_gets_mprpcs_refusal() {
    let (addr, server) = start(false).await;
    let (code, _) = curl(format!("http://{addr}/"), vec![]).await;
    assert_ne!(code, 200, "HTTP is off by default");
    let client = EchoClient::new(Channel::to_address(addr));
    tokio::time::timeout(Duration::from_secs(10), client.echo(EchoRequest::default()))
        .await
        .unwrap()
        .unwrap();
    server.shutdown().await.unwrap();
}
