//! The streaming methods: the `streaming` example runs as a person runs it (bounded in
//! time, and killed if it hangs), and `WatchFriends` and `UploadAvatar` are called in-process
//! with the async and the blocking clients.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mprpc::client::{BlockingChannel, Channel};
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::Code;
use mprpc_examples::fixbug::friend_service_rpc_client::{
    FriendServiceRpcBlockingClient, FriendServiceRpcClient,
};
use mprpc_examples::fixbug::friend_service_rpc_server::FriendServiceRpcServer;
use mprpc_examples::fixbug::friend_update::Kind;
use mprpc_examples::fixbug::user_service_rpc_client::{
    UserServiceRpcBlockingClient, UserServiceRpcClient,
};
use mprpc_examples::fixbug::user_service_rpc_server::UserServiceRpcServer;
use mprpc_examples::fixbug::{AvatarChunk, WatchFriendsRequest};
use mprpc_examples::services::{FriendService, UserService};
use mprpc_examples::streams::{open_watches, sha256_hex, MAX_AVATAR_BYTES};

/// `open_watches` counts the whole process: the tests that open watches take turns.
static WATCHES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the example if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_streaming_example_watches_cancels_and_uploads_then_exits() {
    let child = Command::new(env!("CARGO_BIN_EXE_streaming"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the streaming example");
    let mut running = Running(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("wait for the example") {
            break status;
        }
        // A few seconds are enough; a busy test machine gets more.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the streaming example did not exit within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let child = &mut running.0;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "failed: {status}\n{stdout}\n{stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    // The updates in order: the friends, then presence changes; timings vary.
    let updates: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("update "))
        .map(|l| l.split(" (after ").next().unwrap())
        .collect();
    assert_eq!(
        updates,
        [
            "update 1: friend gao yang",
            "update 2: friend liu hong",
            "update 3: friend wang shuo",
            "update 4: gao yang is online",
            "update 5: liu hong is online",
        ],
        "{stdout}"
    );
    let sha = sha256_hex(&(0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let received = format!("the provider received 1048576 bytes in 16 chunks, sha256 {sha}");
    for line in [
        "dropped the stream after 5 updates",
        "the provider has no watch open any more: the call was cancelled",
        "uploading 1048576 bytes in 16 chunks",
        received.as_str(),
        "the checksum matches the file's",
        "uploading 4259840 bytes in 65 chunks (the limit is 4194304 bytes)",
        "streaming example finished",
    ] {
        assert!(lines.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with(
            "refused: InvalidArgument: the avatar is larger than the limit of 4194304 bytes"
        )),
        "{stdout}"
    );
}

async fn start() -> (String, LocalServer) {
    let server = Server::new(ServerConfig::default())
        .add_service(UserServiceRpcServer::new(UserService::default()))
        .add_service(FriendServiceRpcServer::new(FriendService));
    let (address, handle) = spawn_local(server).await.expect("start the provider");
    (address.to_string(), handle)
}

fn chunk(userid: u32, data: &[u8]) -> AvatarChunk {
    AvatarChunk {
        userid,
        data: data.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_watch_cancels_it_on_the_provider() {
    let _turn = WATCHES.lock().await;
    let (address, provider) = start().await;
    let friends = FriendServiceRpcClient::new(Channel::to_address(address));
    let request = WatchFriendsRequest {
        userid: 7,
        interval_ms: 10,
        max_updates: 0,
    };
    let mut stream = friends.watch_friends(request).await.unwrap();
    for seq in 1..=6 {
        let update = stream.message().await.unwrap().expect("a watch goes on");
        assert_eq!(update.seq, seq);
    }
    assert_eq!(open_watches(), 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_watches() != 0 {
        assert!(Instant::now() < deadline, "the watch outlived its caller");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_counted_and_checksummed_and_the_limit_holds() {
    let (address, provider) = start().await;
    let users = UserServiceRpcClient::new(Channel::to_address(address));
    let chunks = vec![chunk(42, b"hello, "), chunk(0, b""), chunk(0, b"world")];
    let reply = users
        .upload_avatar(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!((reply.userid, reply.size, reply.chunks), (42, 12, 3));
    assert_eq!(reply.sha256, sha256_hex(b"hello, world"));

    // Exactly at the limit is fine; one byte more is not, and the rest is never sent.
    let limit = MAX_AVATAR_BYTES as usize;
    let at_limit = vec![0u8; limit];
    let reply = users
        .upload_avatar(futures_util::stream::iter(
            at_limit
                .chunks(1 << 16)
                .map(|c| chunk(1, c))
                .collect::<Vec<_>>(),
        ))
        .await
        .unwrap();
    assert_eq!(reply.size, MAX_AVATAR_BYTES);
    let endless = futures_util::stream::repeat(chunk(1, &[1u8; 1 << 16]));
    let status = tokio::time::timeout(Duration::from_secs(10), users.upload_avatar(endless))
        .await
        .expect("refused without reading the rest")
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");
    assert!(
        status.message().contains("limit of 4194304 bytes"),
        "{status}"
    );

    let status = users
        .upload_avatar(futures_util::stream::iter(Vec::<AvatarChunk>::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "the avatar is empty");
    provider.shutdown().await.unwrap();
}

#[test]
fn the_blocking_clients_stream_with_iterators() {
    let _turn = WATCHES.blocking_lock();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, provider) = runtime.block_on(start());
    let channel = BlockingChannel::to_address(address).unwrap();
    let friends = FriendServiceRpcBlockingClient::new(channel.clone());
    let request = WatchFriendsRequest {
        userid: 1000,
        interval_ms: 1,
        max_updates: 8,
    };
    // `max_updates` ends the stream by itself: the iterator ends.
    let updates: Vec<(Kind, String)> = friends
        .watch_friends(request)
        .unwrap()
        .map(|update| {
            let update = update.unwrap();
            let name = String::from_utf8(update.name).unwrap();
            (Kind::try_from(update.kind).unwrap(), name)
        })
        .collect();
    let expected = [
        (Kind::Friend, "gao yang"),
        (Kind::Friend, "liu hong"),
        (Kind::Friend, "wang shuo"),
        (Kind::Online, "gao yang"),
        (Kind::Online, "liu hong"),
        (Kind::Online, "wang shuo"),
        (Kind::Offline, "gao yang"),
        (Kind::Offline, "liu hong"),
    ];
    let expected: Vec<(Kind, String)> = expected
        .iter()
        .map(|(kind, name)| (*kind, name.to_string()))
        .collect();
    assert_eq!(updates, expected);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_watches() != 0 {
        assert!(Instant::now() < deadline, "the watch outlived its end");
        std::thread::sleep(Duration::from_millis(5));
    }

    let users = UserServiceRpcBlockingClient::new(channel);
    let image: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let chunks: Vec<AvatarChunk> = image.chunks(65536).map(|c| chunk(5, c)).collect();
    let reply = users.upload_avatar(chunks).unwrap();
    assert_eq!((reply.size, reply.chunks), (200_000, 4));
    assert_eq!(reply.sha256, sha256_hex(&image));
    runtime.block_on(provider.shutdown()).unwrap();
}
