//! Configuration: one TOML file (`-i FILE` / `--config FILE`) for providers, consumers and
//! tools, with every default stated here. The original mprpc's `key=value` file is accepted too.
//!
//! ```toml
//! [server]
//! address = "127.0.0.1:8000"      # where the provider listens (":0" picks a free port)
//! threads = 4                     # tokio worker threads
//!
//! [client]
//! timeout = "3s"                  # default per-call budget
//!
//! [registry]
//! kind = "static"
//! [registry.services]
//! "fixbug.UserServiceRpc" = ["127.0.0.1:8000"]
//!
//! [logging]
//! dir = "logs"
//! level = "info"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The default cap on one frame's header plus body: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The provider's settings.
    pub server: ServerConfig,
    /// The consumer's settings.
    pub client: ClientConfig,
    /// Where providers are registered and found.
    pub registry: RegistryConfig,
    /// Where log lines go.
    pub logging: LoggingConfig,
}

/// The provider's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8000`; port 0 picks a free port.
    pub address: String,
    /// Address published in the registry, when it differs from `address` (behind NAT, or when
    /// listening on `0.0.0.0`). Default: the bound address.
    pub advertise_address: Option<String>,
    /// Worker threads of the tokio runtime. Default: 4, like the original's I/O threads.
    pub threads: usize,
    /// Calls running at once across all connections; one more gets `ResourceExhausted`.
    /// Default 10,000.
    pub max_concurrent_calls: usize,
    /// Largest frame (header plus body) accepted or sent, in bytes. Default 16 MiB.
    pub max_frame_size: usize,
    /// Connections open at once; more are accepted and closed at once. Default 10,000.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for calls in flight. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A connection that sends nothing (not even a ping) for this long is closed. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1:8000".to_owned(),
            advertise_address: None,
            threads: 4,
            max_concurrent_calls: 10_000,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// The consumer's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Default budget of one call, from the call to its reply; a request may override it.
    /// It is sent to the provider, which abandons the work when it runs out. Default 3 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Budget of one TCP connect. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest frame accepted or sent, in bytes. Default 16 MiB.
    pub max_frame_size: usize,
    /// An idle connection sends a ping this often. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection whose pong (or any frame) is this late is declared dead. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// First wait before reconnecting to a provider that failed; doubles up to
    /// `reconnect_backoff_max`. Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff: Duration,
    /// Longest wait between reconnect attempts. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Duration,
    /// Worker threads of the runtime a blocking client starts. Default 2.
    pub threads: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            threads: 2,
        }
    }
}

/// Where providers are registered and found.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RegistryConfig {
    /// A fixed list of provider addresses per fully qualified service name. Needs nothing
    /// installed; providers do not register anywhere.
    Static {
        /// `"package.Service" = ["host:port", ...]`.
        #[serde(default)]
        services: BTreeMap<String, Vec<String>>,
    },
    /// A ZooKeeper ensemble.
    Zookeeper {
        /// Connect string: `host:port[,host:port...]`.
        connect: String,
        /// Path under which services are registered. Default `/mprpc`.
        #[serde(default = "default_zk_root")]
        root: String,
        /// Session timeout. Default 10 s.
        #[serde(default = "default_zk_session_timeout", with = "humantime_serde")]
        session_timeout: Duration,
    },
}

fn default_zk_root() -> String {
    "/mprpc".to_owned()
}

fn default_zk_session_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::Static {
            services: BTreeMap::new(),
        }
    }
}

/// Where log lines go.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Directory of the daily log files; `None` writes no file. Default `logs`.
    pub dir: Option<PathBuf>,
    /// File name prefix: files are named `PREFIX.YYYY-MM-DD`. Default `mprpc.log`.
    pub file_prefix: String,
    /// Level filter in `RUST_LOG` syntax (`info`, `mprpc=debug,warn`). `RUST_LOG` overrides
    /// it when set. Default `info`.
    pub level: String,
    /// Also write to standard error. Default false.
    pub stderr: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            dir: Some(PathBuf::from("logs")),
            file_prefix: "mprpc.log".to_owned(),
            level: "info".to_owned(),
            stderr: false,
        }
    }
}
