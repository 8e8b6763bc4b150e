//! Micro-benchmarks of the wire codec: encoding a request frame the way the connection
//! writer does, and decoding frames (fixed header, protobuf header) the way the readers do,
//! for 64 B, 4 KiB and 1 MiB bodies. Run with `cargo bench -p mprpc --bench codec`; the
//! figures are in `docs/BENCHMARKS.md`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{FrameDecoder, OutFrame, RequestHeader, ResponseHeader};
use tokio_util::codec::Decoder;

/// Body sizes measured.
const SIZES: [(usize, &str); 3] = [(64, "64B"), (4096, "4KiB"), (1 << 20, "1MiB")];

/// Frames per decode batch: a read usually holds several.
const FRAMES_PER_BATCH: usize = 16;

fn request_header(id: u64) -> RequestHeader {
    RequestHeader {
        request_id: id,
        service: "mprpc.bench.Bench".into(),
        method: "Echo".into(),
        timeout_us: 3_000_000,
        metadata: Vec::new(),
        ..RequestHeader::default()
    }
}

fn response_header(id: u64) -> ResponseHeader {
    ResponseHeader {
        request_id: id,
        code: 0,
        message: String::new(),
        metadata: Vec::new(),
        details: Default::default(),
        not_run: false,
        encoding: 0,
        accept_encoding: 0,
    }
}

/// Encoding: the fixed and protobuf headers into the output buffer, and the body appended
/// (the writer copies bodies under 16 KiB and writes larger ones from their own buffer; both
/// are shown: `head` is the part every frame pays).
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (size, name) in SIZES {
        let body = mprpc::Body::from(vec![0xA5u8; size]);
        let mut buf = BytesMut::with_capacity(2 * size + 1024);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("request_head/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                let body =
                    OutFrame::Request(request_header(7), body.clone()).encode_head(&mut buf, false);
                black_box((&buf, body));
            });
        });
        group.bench_function(format!("request_head_compact/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                let body =
                    OutFrame::Request(request_header(7), body.clone()).encode_head(&mut buf, true);
                black_box((&buf, body));
            });
        });
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("response_whole/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                OutFrame::Response(response_header(7), body.clone()).encode(&mut buf);
                black_box(&buf);
            });
        });
    }
    group.finish();
}

/// Decoding a buffer of request frames into frames and their protobuf headers.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (size, name) in SIZES {
        let frames = if size >= 1 << 20 { 1 } else { FRAMES_PER_BATCH };
        let mut stream = BytesMut::new();
        for id in 0..frames as u64 {
            OutFrame::Request(request_header(id), vec![0xA5u8; size].into()).encode(&mut stream);
        }
        let stream = stream.freeze();
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function(format!("request/{name}"), |b| {
            b.iter_batched(
                || BytesMut::from(&stream[..]),
                |mut src| {
                    let mut decoder = FrameDecoder::new(16 << 20);
                    while let Some(frame) = decoder.decode(&mut src).expect("valid frames") {
                        let header: RequestHeader = decode_header(&frame).expect("valid header");
                        black_box((header, frame.body));
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

/// The generated entry point (criterion's macro writes an undocumented `pub fn`).
mod entry {
    #![allow(missing_docs)]
    super::criterion_group!(benches, super::encode, super::decode);
}

criterion_main!(entry::benches);
