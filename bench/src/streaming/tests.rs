//! A quick check of every target's streaming methods, in one process (well under a second):
//! the mprpc and tonic handlers stream and count, the raw server does the same with frames.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::raw;
use super::server_stream::{mprpc_client, tonic_client};
use crate::targets::Target;

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

#[test]
fn every_target_streams_both_ways() {
    let runtime = crate::runner::runtime("streaming-test", 2).unwrap();
    runtime.block_on(async {
        let (listener, mprpc) = listen().await;
        tokio::spawn(crate::targets::mprpc::Mprpc::serve(listener, None));
        let (listener, tonic) = listen().await;
        tokio::spawn(crate::targets::tonic::Tonic::serve(listener, None));
        let (listener, raw_address) = listen().await;
        tokio::spawn(raw::serve(listener));

        let client = mprpc_client(mprpc);
        let request = crate::proto::SubscribeRequest { count: 5, size: 64 };
        let replies: Vec<_> = client.subscribe(request).await.unwrap().collect().await;
        assert_eq!(replies.len(), 5);
        assert!(replies
            .iter()
            .all(|r| r.as_ref().unwrap().payload.len() == 64));
        let chunk = crate::proto::EchoRequest {
            payload: vec![1u8; 100_000].into(),
        };
        let reply = client
            .upload(futures_util::stream::iter(vec![chunk; 3]))
            .await
            .unwrap();
        assert_eq!((reply.messages, reply.bytes), (3, 300_000));

        let mut client = tonic_client(tonic).await.unwrap();
        let request = crate::grpc::SubscribeRequest { count: 5, size: 64 };
        let replies: Vec<_> = client
            .subscribe(request)
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        assert_eq!(replies.len(), 5);
        let chunk = crate::grpc::EchoRequest {
            payload: vec![1u8; 100_000].into(),
        };
        let reply = client
            .upload(futures_util::stream::iter(vec![chunk; 3]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.messages, reply.bytes), (3, 300_000));

        let mut uploader = raw::RawUploader::connect(raw_address).await.unwrap();
        let frame = raw::frame(100_000);
        let until = Instant::now() + Duration::from_millis(20);
        let (frames, bytes) = uploader.upload(&frame, until).await.unwrap();
        assert!(frames > 0);
        assert_eq!(bytes, frames * 100_000);
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let (counter, stop) = (counter.clone(), stop.clone());
            async move { raw::read_stream(raw_address, 64, &counter, &stop).await }
        });
        while counter.load(Ordering::Relaxed) < 1000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, Ordering::Relaxed);
        reader.await.unwrap().unwrap();
    });
}

#[test]
fn the_defaults_are_the_flags_defaults() {
    let options = super::StreamingOptions::defaults().unwrap();
    assert_eq!(
        options.parts,
        [super::Part::Server, super::Part::Client, super::Part::Stall]
    );
    assert_eq!(options.targets.len(), 3);
    assert_eq!(
        (options.message_size, options.chunk_size, options.reps),
        (64, 1 << 20, 3)
    );
    assert_eq!(
        (options.warmup, options.duration),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
}
