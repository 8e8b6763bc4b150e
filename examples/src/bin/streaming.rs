//! Streaming calls: a consumer watches a user's friends (`WatchFriends`, server streaming),
//! reads the first few updates as they arrive and then drops the stream, which cancels the
//! call; then it uploads an avatar in 64 KiB chunks (`UploadAvatar`, client streaming) and
//! checks the checksum the provider answers, and tries one over the size limit.
//!
//! `streaming [--updates N] [--size BYTES]`; both sides run in this one process, over TCP on
//! a free loopback port.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, Server};
use mprpc_examples::fixbug::friend_service_rpc_client::FriendServiceRpcClient;
use mprpc_examples::fixbug::friend_service_rpc_server::FriendServiceRpcServer;
use mprpc_examples::fixbug::friend_update::Kind;
use mprpc_examples::fixbug::user_service_rpc_client::UserServiceRpcClient;
use mprpc_examples::fixbug::user_service_rpc_server::UserServiceRpcServer;
use mprpc_examples::fixbug::{AvatarChunk, FriendUpdate, WatchFriendsRequest};
use mprpc_examples::report;
use mprpc_examples::services::{FriendService, UserService};
use mprpc_examples::streams::{open_watches, sha256_hex, MAX_AVATAR_BYTES};

/// The size of each uploaded chunk.
const CHUNK: usize = 64 * 1024;

/// Streaming calls, both ways.
#[derive(Debug, Parser)]
struct Args {
    /// Friend updates to read before dropping the watch.
    #[arg(long, default_value_t = 5)]
    updates: usize,
    /// The size of the avatar to upload, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    size: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    report::exit(
        runtime
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(args))),
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let provider = Server::new(ServerConfig::default())
        .add_service(UserServiceRpcServer::new(UserService::default()))
        .add_service(FriendServiceRpcServer::new(FriendService));
    let (address, handle) = spawn_local(provider).await?;
    println!("== a provider of fixbug.UserServiceRpc and fixbug.FriendServiceRpc on {address} ==");
    let channel = Channel::to_address(address.to_string());

    println!("== watching user 1000's friends (server streaming) ==");
    let friends = FriendServiceRpcClient::new(channel.clone());
    watch(&friends, args.updates).await?;

    println!("== uploading avatars in 64 KiB chunks (client streaming) ==");
    let users = UserServiceRpcClient::new(channel);
    let image = avatar(args.size);
    println!(
        "uploading {} bytes in {} chunks",
        image.len(),
        image.len().div_ceil(CHUNK)
    );
    let reply = users.upload_avatar(chunks(image.clone())).await?;
    println!(
        "the provider received {} bytes in {} chunks, sha256 {}",
        reply.size, reply.chunks, reply.sha256
    );
    if reply.sha256 != sha256_hex(&image) {
        bail!("the provider's checksum is not the file's");
    }
    println!("the checksum matches the file's");

    let too_big = avatar(MAX_AVATAR_BYTES as usize + CHUNK);
    println!(
        "uploading {} bytes in {} chunks (the limit is {MAX_AVATAR_BYTES} bytes)",
        too_big.len(),
        too_big.len().div_ceil(CHUNK)
    );
    match users.upload_avatar(chunks(too_big)).await {
        Ok(_) => bail!("the provider took an avatar over its limit"),
        Err(status) => println!("refused: {status}"),
    }

    handle.shutdown().await?;
    println!("streaming example finished");
    Ok(())
}

/// Reads the first `wanted` updates of a watch as they arrive, then drops it.
async fn watch(friends: &FriendServiceRpcClient, wanted: usize) -> anyhow::Result<()> {
    let request = WatchFriendsRequest {
        userid: 1000,
        interval_ms: 100,
        max_updates: 0, // until we cancel it
    };
    let started = Instant::now();
    let mut stream = friends.watch_friends(request).await?;
    let mut read = 0;
    while let Some(update) = stream.message().await? {
        let ms = started.elapsed().as_millis();
        println!(
            "update {}: {} (after {ms} ms)",
            update.seq,
            describe(&update)
        );
        read += 1;
        if read == wanted {
            break;
        }
    }
    // Dropping the stream cancels the call: the provider drops the watch.
    drop(stream);
    println!("dropped the stream after {read} updates");
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_watches() > 0 {
        if Instant::now() > deadline {
            bail!("the provider still has {} watches open", open_watches());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("the provider has no watch open any more: the call was cancelled");
    Ok(())
}

/// An update in words: "friend gao yang", "liu hong is online".
fn describe(update: &FriendUpdate) -> String {
    let name = String::from_utf8_lossy(&update.name);
    match Kind::try_from(update.kind) {
        Ok(Kind::Friend) => format!("friend {name}"),
        Ok(Kind::Online) => format!("{name} is online"),
        Ok(Kind::Offline) => format!("{name} is offline"),
        Err(_) => format!("{name}: unknown update {}", update.kind),
    }
}

/// A made-up image of `size` bytes.
fn avatar(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The image as a stream of 64 KiB chunks, the first naming the user.
fn chunks(image: Vec<u8>) -> impl futures_util::Stream<Item = AvatarChunk> + Send + 'static {
    let chunks: Vec<AvatarChunk> = image
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, data)| AvatarChunk {
            userid: if i == 0 { 1000 } else { 0 },
            data: data.to_vec(),
        })
        .collect();
    futures_util::stream::iter(chunks)
}
