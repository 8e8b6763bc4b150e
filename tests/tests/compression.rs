//! Compression (`[client.compression]`, `[server.compression]`): calls round-trip with gzip
//! and zstd, what goes on the wire is compressed only when both sides chose it and the
//! message is over the threshold, and a zip bomb, garbage or an unknown encoding gets a
//! clear status while the provider serves on. gRPC (Python's `grpcio` with gzip) and
//! HTTP/JSON (curl with `Content-Encoding` and `--compressed`) are in `grpc.rs`'s and this
//! file's last tests.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mprpc::client::Channel;
use mprpc::compression::{compress, Accepted, Encoding};
use mprpc::config::{ClientConfig, CompressionConfig, ProtocolsConfig, ServerConfig};
use mprpc::protocol::{FrameKind, OutFrame, RequestHeader};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::Code;
use mprpc_tests::raw::{read_until, responses, unix_now_us};
use mprpc_tests::{EchoClient, EchoRequest, EchoResponse, EchoServer, EchoService};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

async fn provider(compression: CompressionConfig, max_frame_size: usize) -> (String, LocalServer) {
    let config = ServerConfig {
        compression,
        max_frame_size,
        protocols: ProtocolsConfig {
            http: true,
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("z")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

fn client(addr: &str, compression: CompressionConfig) -> EchoClient {
    let config = ClientConfig {
        compression,
        ..ClientConfig::default()
    };
    EchoClient::new(Channel::to_addresses(vec![addr.to_owned()], config))
}

/// A payload that compresses well: text repeated.
fn compressible(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog; "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// A raw `Echo` request with `body` sent with `encoding` (a wire value), accepting `accept`.
fn raw_request(id: u64, body: Bytes, encoding: u32, accept: Accepted) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Request(
        RequestHeader {
            request_id: id,
            service: "mprpc.test.Echo".into(),
            method: "Echo".into(),
            timeout_us: 0,
            metadata: vec![],
            sent_unix_us: unix_now_us(),
            encoding,
            accept_encoding: accept.wire(),
            ..RequestHeader::default()
        },
        body.into(),
    )
    .encode(&mut buf);
    buf
}

fn echo_request(payload: Vec<u8>) -> Vec<u8> {
    EchoRequest {
        payload,
        ..EchoRequest::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn calls_round_trip_with_each_encoding_and_any_mix() {
    let payload = compressible(200_000);
    for server_side in [None, Some(Encoding::Gzip), Some(Encoding::Zstd)] {
        let server_config = CompressionConfig {
            encoding: server_side,
            ..CompressionConfig::default()
        };
        let (addr, handle) = provider(server_config, 4 << 20).await;
        for client_side in [None, Some(Encoding::Gzip), Some(Encoding::Zstd)] {
            let config = CompressionConfig {
                encoding: client_side,
                ..CompressionConfig::default()
            };
            let client = client(&addr, config);
            for len in [0, 100, payload.len()] {
                let reply = client
                    .echo(EchoRequest {
                        payload: payload[..len].to_vec(),
                        ..EchoRequest::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{client_side:?} -> {server_side:?}: {e}"));
                assert_eq!(reply.payload, &payload[..len]);
            }
        }
        handle.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn replies_are_compressed_only_when_asked_and_large_enough() {
    let (addr, handle) = provider(CompressionConfig::with(Encoding::Zstd), 4 << 20).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let big = Bytes::from(echo_request(compressible(100_000)));
    let small = Bytes::from(echo_request(compressible(100)));
    let cases = [
        (1, big.clone(), Accepted::only(Encoding::Zstd), 2),
        (2, big.clone(), Accepted::only(Encoding::Gzip), 0),
        (3, big.clone(), Accepted::NONE, 0),
        (4, small, Accepted::ALL, 0),
    ];
    for (id, body, accept, expected) in cases {
        conn.write_all(&raw_request(id, body, 0, accept))
            .await
            .unwrap();
        let frames = read_until(&mut conn, FrameKind::Response, LIMIT).await;
        let frame = frames.last().unwrap();
        let header = &responses(&frames)[0];
        assert_eq!((header.request_id, header.code), (id, 0));
        assert_eq!(header.encoding, expected, "call {id}");
        // The provider says it takes compressed requests to callers that accept some.
        let says = if accept == Accepted::NONE {
            0
        } else {
            Accepted::ALL.wire()
        };
        assert_eq!(header.accept_encoding, says, "call {id}");
        let body = match expected {
            0 => frame.body.clone(),
            _ => mprpc::compression::decompress(Encoding::Zstd, &frame.body, 1 << 20).unwrap(),
        };
        if id <= 3 {
            let reply = EchoResponse::decode(body).unwrap();
            assert_eq!(reply.payload, compressible(100_000));
        }
        if expected != 0 {
            assert!(frame.body.len() < 10_000, "{} bytes", frame.body.len());
        }
    }
    // A request the caller compressed itself.
    let packed = compress(Encoding::Gzip, &big);
    conn.write_all(&raw_request(5, packed, 1, Accepted::NONE))
        .await
        .unwrap();
    let frames = read_until(&mut conn, FrameKind::Response, LIMIT).await;
    assert_eq!(responses(&frames)[0].code, 0);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bombs_garbage_and_unknown_encodings_get_a_clear_status() {
    let (addr, handle) = provider(CompressionConfig::default(), 64 * 1024).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // 64 MiB of zeros in a few KiB, to a provider whose limit is 64 KiB.
    let bomb = compress(Encoding::Zstd, &vec![0u8; 64 << 20]);
    assert!(bomb.len() < 32 * 1024);
    let garbage = Bytes::from_static(b"this is not gzip at all");
    let cases = [
        (
            1,
            bomb,
            2,
            Code::ResourceExhausted,
            "more than the maximum of 65536 bytes",
        ),
        (2, garbage, 1, Code::Internal, "not valid gzip"),
        (3, Bytes::new(), 9, Code::Unimplemented, "does not know (9"),
    ];
    for (id, body, encoding, code, says) in cases {
        conn.write_all(&raw_request(id, body, encoding, Accepted::NONE))
            .await
            .unwrap();
        let frames = read_until(&mut conn, FrameKind::Response, LIMIT).await;
        let header = &responses(&frames)[0];
        assert_eq!(header.code, code.as_i32(), "{}", header.message);
        assert!(header.message.contains(says), "{}", header.message);
    }
    // The same connection, and the provider, serve on.
    let ok = Bytes::from(echo_request(b"still here".to_vec()));
    conn.write_all(&raw_request(4, ok, 0, Accepted::NONE))
        .await
        .unwrap();
    let frames = read_until(&mut conn, FrameKind::Response, LIMIT).await;
    assert_eq!(responses(&frames)[0].code, 0);
    // A consumer whose requests decompress past the provider's limit (once the provider has
    // said, in its first reply, that it takes compressed requests).
    let consumer = client(&addr, CompressionConfig::with(Encoding::Gzip));
    consumer.echo(EchoRequest::default()).await.unwrap();
    let status = consumer
        .echo(EchoRequest {
            payload: vec![0; 60 * 1024],
            delay_ms: 0,
            fail_message: "x".repeat(8 * 1024),
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(
        status.message().contains("decompresses to more"),
        "{status}"
    );
    handle.shutdown().await.unwrap();
}

/// grpcio with gzip on its channel: every request compressed, replies asked for in gzip.
const GRPCIO_GZIP: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1], compression=grpc.Compression.Gzip)
echo = channel.unary_unary("/mprpc.test.Echo/Echo",
    request_serializer=lambda b: b, response_deserializer=lambda b: b)
from protowire import field_bytes
def request(payload):
    return field_bytes(1, payload)
payload = b"the quick brown fox " * 2000
reply = echo(request(payload), timeout=10)
print("round_trip", payload in reply)
try:
    echo(request(bytes(1 << 20)), timeout=10)
    print("bomb none")
except grpc.RpcError as e:
    print("bomb", e.code().name)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_compresses_with_gzip() {
    let (addr, handle) = provider(CompressionConfig::with(Encoding::Gzip), 64 * 1024).await;
    let output = mprpc_tests::python::run(&["-c", GRPCIO_GZIP, &addr], 60).await;
    output.assert_ok("the grpcio client");
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    assert!(stdout.contains("round_trip True"), "{stdout}\n{stderr}");
    // 1 MiB of zeros is a few KiB gzipped: it passes the size check and then decompresses
    // past the provider's 64 KiB.
    assert!(
        stdout.contains("bomb RESOURCE_EXHAUSTED"),
        "{stdout}\n{stderr}"
    );
    handle.shutdown().await.unwrap();
}

/// Runs curl with `args`; its standard output.
async fn curl(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_bodies_are_compressed_both_ways() {
    let (addr, handle) = provider(CompressionConfig::with(Encoding::Gzip), 1 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/mprpc.test.Echo/Echo");
    // A gzip body; curl --compressed asks for (and undoes) a compressed reply.
    let text = "a".repeat(5000);
    let json = format!(r#"{{"failMessage": "{text}"}}"#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).unwrap();
    let body_file = dir.path().join("body.json.gz");
    std::fs::write(&body_file, gz.finish().unwrap()).unwrap();
    let payload = mprpc_tests_base64(&compressible(20_000));
    let big = format!(r#"{{"payload": "{payload}"}}"#);
    let out = curl(vec![
        "--compressed".into(),
        "-D".into(),
        "-".into(),
        "-H".into(),
        "content-type: application/json".into(),
        "--data-binary".into(),
        big,
        url.clone(),
    ])
    .await;
    let lower = out.to_lowercase();
    assert!(lower.contains("content-encoding: gzip"), "{out}");
    assert!(out.contains(&payload), "{}", &out[..out.len().min(500)]);
    // The compressed request: its failMessage is echoed in the error (fail_code unset: the
    // handler answers normally, the request decoded).
    let out = curl(vec![
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        "-H".into(),
        "content-type: application/json".into(),
        "-H".into(),
        "content-encoding: gzip".into(),
        "--data-binary".into(),
        format!("@{}", body_file.display()),
        url.clone(),
    ])
    .await;
    assert_eq!(out, "200");
    // A bomb: 413. An unknown encoding: 415. Garbage: 400.
    let bomb_file = dir.path().join("bomb.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 8 << 20]).unwrap();
    std::fs::write(&bomb_file, gz.finish().unwrap()).unwrap();
    for (encoding, file, code) in [
        ("gzip", bomb_file.clone(), "413"),
        ("br", bomb_file.clone(), "415"),
        ("zstd", bomb_file, "400"),
    ] {
        let out = curl(vec![
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "-H".into(),
            format!("content-encoding: {encoding}"),
            "--data-binary".into(),
            format!("@{}", file.display()),
            url.clone(),
        ])
        .await;
        assert_eq!(out, code, "{encoding}");
    }
    handle.shutdown().await.unwrap();
}

/// Standard base64, as proto3's JSON mapping writes bytes.
fn mprpc_tests_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}
