//! The original mprpc's example services, `fixbug.UserServiceRpc` and
//! `fixbug.FriendServiceRpc`, served and called with mprpc.
//!
//! - [`services`]: the implementations (what the original's `example/callee` did);
//! - [`streams`]: the streaming methods, `WatchFriends` and `UploadAvatar`;
//! - [`provider`]: a provider program hosting both;
//! - [`consumer`]: a consumer program calling every method with the blocking stubs, as the
//!   original's `example/caller` did;
//! - the `demo` binary runs a provider and a consumer as two processes and prints the calls;
//!   `layers` shows layers on both sides, `streaming` the streaming methods;
//! - [`report`]: how the programs print an error (one line) and exit;
//! - [`allocator`]: the programs' global allocator (jemalloc, purging in the background).

pub mod allocator;
pub mod consumer;
pub mod provider;
pub mod report;
pub mod services;
pub mod streams;

/// The generated messages, server traits and clients of `proto/user.proto` and
/// `proto/friend.proto`.
#[allow(missing_docs)]
pub mod fixbug {
    mprpc::include_proto!("fixbug");
}

/// Replaces the ZooKeeper connect string of a config (`--zk`), keeping its other registry
/// settings, or switching a static registry to ZooKeeper with the defaults.
pub fn override_zookeeper(config: &mut mprpc::config::Config, connect: Option<String>) {
    use mprpc::config::RegistryConfig;
    let Some(connect) = connect else { return };
    config.registry = match std::mem::take(&mut config.registry) {
        RegistryConfig::Zookeeper {
            root,
            session_timeout,
            access,
            legacy_layout,
            ..
        } => RegistryConfig::Zookeeper {
            connect,
            root,
            session_timeout,
            access,
            legacy_layout,
        },
        RegistryConfig::Static { .. } => RegistryConfig::Zookeeper {
            connect,
            root: "/mprpc".to_owned(),
            session_timeout: std::time::Duration::from_secs(10),
            access: Default::default(),
            legacy_layout: false,
        },
    };
}
