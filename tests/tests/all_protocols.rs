//! Every protocol on one port at once, under load, while garbage arrives: mprpc's own callers,
//! the original C++ mprpc's (a connection per call), HTTP/JSON (kept-alive connections),
//! gRPC (Python's `grpcio`, 300 calls over one HTTP/2 connection), and connections that
//! start like each protocol and then send nonsense. Every real call is answered correctly,
//! and the provider serves on afterwards.

use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use mprpc::client::Channel;
use mprpc::config::{ProtocolsConfig, ServerConfig};
use mprpc::protocol::legacy::encode_request;
use mprpc::server::{spawn_local, Server};
use mprpc_tests::{EchoClient, EchoRequest, EchoResponse, EchoServer, EchoService};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(60);

/// One call of the original's protocol: its reply, read to the provider's half-close.
async fn legacy_call(addr: &str, payload: &[u8]) -> EchoResponse {
    let request = EchoRequest {
        payload: payload.to_vec(),
        ..EchoRequest::default()
    };
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(&encode_request("Echo", "Echo", &request.encode_to_vec()))
        .await
        .unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.unwrap();
    EchoResponse::decode(&reply[..]).unwrap()
}

/// `n` HTTP/JSON calls on one kept-alive connection; returns the payloads echoed (base64).
async fn http_calls(addr: &str, n: usize, tag: u8) -> Vec<String> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut echoed = Vec::new();
    let mut buf = BytesMut::new();
    for _ in 0..n {
        // base64 of [tag, tag, tag]
        let payload = base64_3([tag; 3]);
        let body = format!(r#"{{"payload": "{payload}"}}"#);
        let request = format!(
            "POST /mprpc.test.Echo/Echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        // One response: headers, then content-length bytes.
        let (head_end, length) = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a content-length");
                break (end + 4, length);
            }
            assert!(conn.read_buf(&mut buf).await.unwrap() > 0, "closed");
        };
        while buf.len() < head_end + length {
            assert!(conn.read_buf(&mut buf).await.unwrap() > 0, "closed");
        }
        let response = buf.split_to(head_end + length);
        let json: serde_json::Value = serde_json::from_slice(&response[head_end..]).unwrap();
        echoed.push(json["payload"].as_str().unwrap_or_default().to_owned());
    }
    echoed
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64_3(b: [u8; 3]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    (0..4)
        .map(|i| ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char)
        .collect()
}

const GRPC_LOAD: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
echo = channel.unary_unary("/mprpc.test.Echo/Echo", request_serializer=lambda b: b, response_deserializer=lambda b: b)
futures = [echo.future(b"\x0a\x02" + bytes([i % 256, 7]), timeout=30) for i in range(300)]
ok = sum(1 for i, f in enumerate(futures) if f.result().startswith(b"\x0a\x02" + bytes([i % 256, 7])))
print(ok)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_at_once_under_load_and_garbage() {
    let config = ServerConfig {
        protocols: ProtocolsConfig {
            legacy: true,
            http: true,
            grpc: true,
        },
        frame_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("all")));
    let (addr, server) = spawn_local(server).await.expect("start provider");
    let addr = addr.to_string();

    let grpc = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            Command::new("timeout")
                .args(["60", "python3", "-c", GRPC_LOAD, &addr])
                .output()
                .expect("run python3")
        })
    };
    let mut work = tokio::task::JoinSet::new();
    for t in 0..4u8 {
        let to = addr.clone();
        work.spawn(async move {
            let client = EchoClient::new(Channel::to_address(to));
            for i in 0..200u8 {
                let reply = client
                    .echo(EchoRequest {
                        payload: vec![t, i],
                        ..EchoRequest::default()
                    })
                    .await
                    .expect("an mprpc call");
                assert_eq!(reply.payload, vec![t, i]);
            }
        });
        let to = addr.clone();
        work.spawn(async move {
            for i in 0..50u8 {
                let reply = legacy_call(&to, &[t, i]).await;
                assert_eq!(reply.payload, vec![t, i]);
            }
        });
        let to = addr.clone();
        work.spawn(async move {
            let echoed = http_calls(&to, 50, t + 1).await;
            assert!(
                echoed.iter().all(|p| *p == base64_3([t + 1; 3])),
                "{echoed:?}"
            );
        });
    }
    // Garbage: connections that start like each protocol, then send nonsense or stop.
    let garbage: Vec<Vec<u8>> = vec![
        b"mp\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        b"\x10\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
            .to_vec(),
        b"\x08\x00\x00\x00\x0a\x03".to_vec(),
        b"POST /mprpc.test.Echo/Echo HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n".to_vec(),
        b"POST /mprpc.test.Echo/Echo HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
        b"GET \x00\x01\x02 HTTP/9\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        b"\xde\xad\xbe\xef".repeat(1000),
    ];
    for bytes in garbage {
        let addr = addr.clone();
        work.spawn(async move {
            let Ok(mut conn) = TcpStream::connect(&addr).await else {
                return;
            };
            let _ = conn.write_all(&bytes).await;
            let mut sink = Vec::new();
            // Whatever the provider answers, it closes within the frame timeout and more.
            let read =
                tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut sink)).await;
            assert!(
                read.is_ok(),
                "a garbage connection was held open: {bytes:?}"
            );
        });
    }
    let all = async {
        while let Some(done) = work.join_next().await {
            done.expect("a task panicked");
        }
    };
    tokio::time::timeout(LIMIT, all)
        .await
        .expect("all within 60 s");
    let output = grpc.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "300", "every gRPC call answered");
    // And still serving.
    let client = EchoClient::new(Channel::to_address(addr.clone()));
    client
        .echo(EchoRequest::default())
        .await
        .expect("after the load");
    assert_eq!(legacy_call(&addr, b"end").await.payload, b"end");
    server.shutdown().await.unwrap();
}
