//! The original C++ mprpc's callers against an mprpc provider: a client written from the
//! wire description (`SEED-FACTS.md`: a little-endian header size, an `RpcHeader`, the
//! arguments; the reply is the bare response and a half-close) calls Login, Register and
//! GetFriendsList, whole and split over several writes, on the port where mprpc's own
//! callers are served too; failures come back as valid responses with their `ResultCode`;
//! bad requests are closed without taking the provider down. The example provider started
//! with the original's key=value file serves it with no other setting.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::{ProtocolsConfig, ServerConfig};
use mprpc::protocol::legacy::{encode_request, RpcHeader};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc_examples::fixbug::friend_service_rpc_server::FriendServiceRpcServer;
use mprpc_examples::fixbug::user_service_rpc_client::UserServiceRpcClient;
use mprpc_examples::fixbug::user_service_rpc_server::UserServiceRpcServer;
use mprpc_examples::fixbug::{
    GetFriendsListRequest, GetFriendsListResponse, LoginRequest, LoginResponse, RegisterRequest,
    RegisterResponse,
};
use mprpc_examples::services::{FriendService, UserService};
use prost::Message;

async fn start() -> (String, LocalServer) {
    let config = ServerConfig {
        protocols: ProtocolsConfig {
            legacy: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .add_service(UserServiceRpcServer::new(UserService::default()))
        .add_service(FriendServiceRpcServer::new(FriendService));
    let (address, handle) = spawn_local(server).await.expect("start the provider");
    (address.to_string(), handle)
}

/// One call as the original's caller makes it: connect, send (in `pieces`, a pause between
/// them so that each is a TCP segment of its own), read to the provider's half-close.
fn legacy_call(address: &str, service: &str, method: &str, args: &[u8], pieces: usize) -> Vec<u8> {
    let request = encode_request(service, method, args);
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let size = request.len().div_ceil(pieces);
    for piece in request.chunks(size) {
        stream.write_all(piece).expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("a reply ended by the provider's half-close within 10 s");
    reply
}

async fn call(address: &str, service: &str, method: &str, args: Vec<u8>, pieces: usize) -> Vec<u8> {
    let (address, service, method) = (address.to_owned(), service.to_owned(), method.to_owned());
    tokio::task::spawn_blocking(move || legacy_call(&address, &service, &method, &args, pieces))
        .await
        .unwrap()
}

fn login(name: &str, pwd: &str) -> Vec<u8> {
    LoginRequest {
        name: name.as_bytes().to_vec(),
        pwd: pwd.as_bytes().to_vec(),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_callers_are_answered_whole_and_split() {
    let (address, provider) = start().await;
    for pieces in [1, 2, 5] {
        let name = format!("li si {pieces}");
        let args = RegisterRequest {
            id: 7,
            name: name.as_bytes().to_vec(),
            pwd: b"abc".to_vec(),
        }
        .encode_to_vec();
        let reply = call(&address, "UserServiceRpc", "Register", args, pieces).await;
        let reply = RegisterResponse::decode(&reply[..]).expect("a RegisterResponse");
        assert!(reply.success, "Register in {pieces} pieces: {reply:?}");
        let reply = call(
            &address,
            "UserServiceRpc",
            "Login",
            login(&name, "abc"),
            pieces,
        )
        .await;
        let reply = LoginResponse::decode(&reply[..]).expect("a LoginResponse");
        assert!(reply.success, "Login in {pieces} pieces: {reply:?}");
        let args = GetFriendsListRequest { userid: 1000 }.encode_to_vec();
        let reply = call(&address, "FriendServiceRpc", "GetFriendsList", args, pieces).await;
        let reply = GetFriendsListResponse::decode(&reply[..]).expect("a GetFriendsListResponse");
        assert_eq!(reply.friends.len(), 3, "{reply:?}");
    }
    // A wrong password is the service's own answer, as in the original's demo.
    let reply = call(
        &address,
        "UserServiceRpc",
        "Login",
        login("zhang san", "bad"),
        1,
    )
    .await;
    assert!(!LoginResponse::decode(&reply[..]).unwrap().success);
    // mprpc's own callers on the same port.
    let users = UserServiceRpcClient::new(Channel::to_address(address.clone()));
    let reply = users
        .login(LoginRequest {
            name: b"li si 1".to_vec(),
            pwd: b"abc".to_vec(),
        })
        .await
        .expect("an mprpc call on the same port");
    assert!(reply.success);
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_the_originals_callers_as_valid_responses() {
    let (address, provider) = start().await;
    // The handler refuses: the response's ResultCode says why.
    let args = RegisterRequest::default().encode_to_vec();
    let reply = call(&address, "UserServiceRpc", "Register", args, 1).await;
    let reply = RegisterResponse::decode(&reply[..]).expect("a valid RegisterResponse");
    let result = reply.result.expect("a ResultCode");
    assert_eq!(result.errcode, mprpc::Code::InvalidArgument.as_i32());
    let errmsg = String::from_utf8_lossy(&result.errmsg);
    assert!(errmsg.starts_with("InvalidArgument: "), "{errmsg}");
    assert!(!reply.success);
    // Unknown services and methods: the empty message, which the original parses.
    assert!(call(&address, "NoSuchService", "Login", vec![], 1)
        .await
        .is_empty());
    assert!(call(&address, "UserServiceRpc", "Logout", vec![], 1)
        .await
        .is_empty());
    // A streaming method cannot be called the original's way: its response's ResultCode
    // says so.
    let reply = call(&address, "UserServiceRpc", "UploadAvatar", vec![], 1).await;
    assert!(!reply.is_empty());
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_closed_and_the_provider_goes_on() {
    let (address, provider) = start().await;
    // Arguments announced far larger than max_frame_size.
    let header = RpcHeader {
        service_name: b"UserServiceRpc".to_vec(),
        method_name: b"Login".to_vec(),
        args_size: 1 << 30,
    }
    .encode_to_vec();
    let mut huge = (header.len() as u32).to_le_bytes().to_vec();
    huge.extend_from_slice(&header);
    let garbage: [Vec<u8>; 3] = [
        // A header size over the limit: not the original's protocol, so mprpc's, which
        // answers what is not its frames with a GoAway.
        vec![0x00, 0x20, 0x00, 0x00, 1, 2, 3],
        // A header that is not an RpcHeader.
        vec![0x03, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff],
        huge,
    ];
    for (i, bytes) in garbage.into_iter().enumerate() {
        let address = address.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(&bytes).unwrap();
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            reply
        })
        .await
        .unwrap();
        if i == 0 {
            assert!(reply.starts_with(b"mp"), "garbage {i} got {reply:?}");
        } else {
            assert!(reply.is_empty(), "garbage {i} got {reply:?}");
        }
    }
    // A request cut short, then closed.
    let cut = encode_request("UserServiceRpc", "Login", &login("a", "b"));
    let address_cut = address.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address_cut).unwrap();
        stream.write_all(&cut[..cut.len() - 2]).unwrap();
    })
    .await
    .unwrap();
    let reply = call(
        &address,
        "UserServiceRpc",
        "Login",
        login("zhang san", "123"),
        1,
    )
    .await;
    let reply = LoginResponse::decode(&reply[..]).unwrap();
    assert_eq!(
        reply.result.unwrap().errcode,
        1,
        "the service's own answer: unknown user"
    );
    provider.shutdown().await.unwrap();
}

#[test]
fn the_provider_started_with_the_originals_config_file_serves_the_originals_callers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("test.conf");
    std::fs::write(
        &config,
        "# the original's file\nrpcserverip=127.0.0.1\nrpcserverport=0\n",
    )
    .unwrap();
    let mut provider = Command::new(env!("CARGO_BIN_EXE_provider"))
        .arg("-i")
        .arg(&config)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the provider");
    let guard = KillOnDrop(&mut provider);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("provider listening on ") {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the provider prints its address");
    let reply = legacy_call(
        &address,
        "UserServiceRpc",
        "Login",
        &login("zhang san", "123"),
        1,
    );
    let reply = LoginResponse::decode(&reply[..]).unwrap();
    assert_eq!(
        reply.result.unwrap().errcode,
        1,
        "the service's own answer: unknown user"
    );
    drop(guard);
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
