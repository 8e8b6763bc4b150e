//! The consumer program: calls every example method with the blocking stubs, as the
//! original's callers did, and prints the replies in the original's words.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use mprpc::client::BlockingChannel;
use mprpc::config::Config;
use mprpc::registry::StaticRegistry;
use mprpc::Status;

use crate::fixbug::friend_service_rpc_client::FriendServiceRpcBlockingClient;
use crate::fixbug::user_service_rpc_client::UserServiceRpcBlockingClient;
use crate::fixbug::{GetFriendsListRequest, LoginRequest, RegisterRequest};

/// Calls Login, Register, Login again and GetFriendsList, and prints the results.
#[derive(Parser, Debug)]
#[command(name = "consumer")]
pub struct Args {
    /// The configuration file (TOML, or the original's key=value format).
    #[arg(short = 'i', long = "config")]
    pub config: PathBuf,
    /// Send every call to this provider instead of the config's registry.
    #[arg(long)]
    pub addr: Option<String>,
    /// Use this ZooKeeper connect string instead of the config's.
    #[arg(long)]
    pub zk: Option<String>,
    /// After the usual calls, make this many more GetFriendsList calls (spread over the
    /// providers by the balancer) and print how many were answered.
    #[arg(long, default_value_t = 0)]
    pub calls: usize,
}

/// Runs the consumer. Fails (non-zero exit) if any call fails.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    crate::override_zookeeper(&mut config, args.zk);
    let _log = mprpc::logging::init(&config.logging)?;
    let channel = match args.addr {
        Some(addr) => BlockingChannel::new(
            config.client.clone(),
            Arc::new(StaticRegistry::any(vec![addr])),
        )?,
        None => BlockingChannel::from_config(&config)?,
    };
    let users = UserServiceRpcBlockingClient::new(channel.clone());
    let friends = FriendServiceRpcBlockingClient::new(channel);
    let extra_calls = args.calls;

    let login = |name: &str, pwd: &str| -> Result<(), Status> {
        let rsp = users.login(LoginRequest {
            name: name.into(),
            pwd: pwd.into(),
        })?;
        println!("rpc login({name}) response success:{}", rsp.success);
        Ok(())
    };
    login("zhang san", "123")?;

    let rsp = users.register(RegisterRequest {
        id: 2000,
        name: b"mprpc".to_vec(),
        pwd: b"666666".to_vec(),
    })?;
    match rsp.result {
        Some(r) if r.errcode != 0 => println!(
            "rpc register response error : {}",
            String::from_utf8_lossy(&r.errmsg)
        ),
        _ => println!("rpc register response success:{}", rsp.success),
    }
    login("mprpc", "666666")?;

    let rsp = friends.get_friends_list(GetFriendsListRequest { userid: 1000 })?;
    match rsp.result {
        Some(r) if r.errcode != 0 => println!(
            "rpc GetFriendsList response error : {}",
            String::from_utf8_lossy(&r.errmsg)
        ),
        _ => {
            println!("rpc GetFriendsList response success!");
            for (i, name) in rsp.friends.iter().enumerate() {
                println!("index:{} name:{}", i + 1, String::from_utf8_lossy(name));
            }
        }
    }
    if extra_calls > 0 {
        let mut answered = 0;
        for _ in 0..extra_calls {
            match friends.get_friends_list(GetFriendsListRequest { userid: 1000 }) {
                Ok(_) => answered += 1,
                Err(status) => println!("call failed: {status}"),
            }
        }
        println!("{answered} of {extra_calls} more GetFriendsList calls answered");
    }
    Ok(())
}
