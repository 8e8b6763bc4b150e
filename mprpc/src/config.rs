//! Configuration: one TOML file (`-i FILE` / `--config FILE`) for providers, consumers and
//! tools, with every default stated here. The original mprpc's `key=value` file is accepted too.
//!
//! ```toml
//! [server]
//! address = "127.0.0.1:8000"      # where the provider listens (port 0 picks a free port)
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
//!
//! # Why it is strict
//!
//! The original read its file line by line into a map and looked keys up later: a misspelt key
//! was silently ignored, a `\r` or a tab stuck to a value, and a bad port surfaced as a connect
//! failure far from its cause. Here the whole file is checked when it is loaded, and every
//! error names the file, the line where it is known and the key, for example
//!
//! ```text
//! provider.toml: line 3: key `server.adress`: unknown field `adress`, expected one of ...
//! provider.toml: line 5: key `server.threads`: invalid type: string "four", expected usize
//! provider.toml: key `client.timeout`: must be more than zero
//! ```
//!
//! Programs take the file's path on the command line with `clap`, as
//! `#[arg(short = 'i', long = "config")] config: PathBuf` (the original's `-i FILE`), and call
//! [`Config::load`]. A program that changes a value after loading (say, from a `--listen`
//! option) can check it again with [`Config::validate`].
//!
//! A key that is absent takes its documented default; a key that is present must be valid.
//! Durations are written in [`humantime`](https://docs.rs/humantime) syntax: `"250ms"`, `"3s"`,
//! `"5min"`.
//!
//! # The legacy format
//!
//! The original C++ mprpc read `key=value` lines:
//!
//! ```text
//! # rpc provider
//! rpcserverip=127.0.0.1
//! rpcserverport=8000
//! zookeeperip=127.0.0.1
//! zookeeperport=2181
//! ```
//!
//! [`Config::load`] accepts such a file when its first line that is neither blank nor a
//! comment is `key=value` with one of the four keys above (see [`ConfigFormat::detect`]). A
//! TOML file never starts that way: its first line is a `[section]`, or a key of [`Config`]
//! such as `server.address = "..."`, and none of the four keys is a TOML key of [`Config`].
//! `rpcserverip` and `rpcserverport` become `server.address`; `zookeeperip` and
//! `zookeeperport` become a ZooKeeper `registry` with the default root and session timeout.
//! Everything else keeps its default. See [`Config::from_legacy_str`] for the exact rules.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};

use crate::protocol::limits::{
    MetadataLimits, DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_METADATA_ENTRIES,
};

/// The default cap on one frame's header plus body: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// The smallest `max_frame_size` accepted: 1 KiB.
pub const MIN_MAX_FRAME_SIZE: usize = 1024;

/// The largest `max_frame_size` accepted: 1 GiB.
pub const MAX_MAX_FRAME_SIZE: usize = 1024 * 1024 * 1024;

/// The largest `max_concurrent_calls` and `max_connections` accepted: the most permits a tokio
/// semaphore can hold.
pub const MAX_LIMIT: usize = usize::MAX >> 3;

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
    /// Address to listen on, `host:port`. Default `127.0.0.1:8000`; port 0 picks a free port.
    pub address: String,
    /// Address published in the registry, when it differs from `address` (behind NAT, or when
    /// listening on `0.0.0.0`). Default: the bound address.
    pub advertise_address: Option<String>,
    /// Worker threads of the tokio runtime, at least 1. Default: 4, like the original's I/O
    /// threads.
    pub threads: usize,
    /// Relative share of calls this provider asks weighted balancers for. Default 100.
    pub weight: u32,
    /// Where to serve the admin pages (`/metrics`, `/status`, `/health`) over HTTP, e.g.
    /// `127.0.0.1:9100`. Default: none.
    pub admin_address: Option<String>,
    /// Calls running at once across all connections; one more gets `ResourceExhausted`.
    /// At least 1. Default 10,000.
    pub max_concurrent_calls: usize,
    /// Calls in flight on one connection, counting those whose reply waits for room in the
    /// connection's write queue; one more gets `ResourceExhausted`. This bounds what one
    /// client can hold, e.g. by sending requests and never reading the replies. At least 1.
    /// Default 4,096.
    pub max_calls_per_connection: usize,
    /// Bytes queued for one connection and not yet written (its client reads slower than it
    /// calls), counting every frame: replies, errors, pongs, go-aways. Past this the
    /// provider reads no more from the connection until they are back under half of this.
    /// At least 1. Default 64 MiB.
    pub max_unwritten_bytes: usize,
    /// Metadata entries one request may carry; more get `ResourceExhausted`, and the request
    /// is not decoded. At least 1. Default 64.
    pub max_metadata_entries: usize,
    /// Bytes of metadata (keys, values and their encoding) one request may carry; more get
    /// `ResourceExhausted`. At least 1. Default 16 KiB.
    pub max_metadata_bytes: usize,
    /// A frame that has begun to arrive must be complete within this time plus its size
    /// divided by `min_frame_rate`, or the connection is closed (a peer trickling bytes to
    /// hold a connection open). More than zero. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub frame_timeout: Duration,
    /// The slowest rate, in bytes per second, at which a large frame may arrive. At least 1.
    /// Default 64 KiB/s (a 16 MiB frame may take 10 s + 256 s).
    pub min_frame_rate: usize,
    /// Whether the caller's wall clock can be trusted to measure how long a request waited
    /// in buffers before it was read (see `docs/PROTOCOL.md`, "Deadlines"). Default
    /// `same_host`.
    pub caller_clock: CallerClock,
    /// Largest frame (header plus body) accepted or sent, in bytes, from 1 KiB to 1 GiB.
    /// Default 16 MiB.
    pub max_frame_size: usize,
    /// Connections open at once; more are accepted and closed at once. At least 1.
    /// Default 10,000.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for calls in flight. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A connection that sends nothing (not even a ping) for this long is closed. More than
    /// zero. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection whose peer accepts no reply bytes for this long (it stopped reading) is
    /// closed, and its calls are dropped. More than zero. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1:8000".to_owned(),
            advertise_address: None,
            threads: 4,
            weight: 100,
            admin_address: None,
            max_concurrent_calls: 10_000,
            max_calls_per_connection: 4_096,
            max_unwritten_bytes: 64 * 1024 * 1024,
            max_metadata_entries: DEFAULT_MAX_METADATA_ENTRIES,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            frame_timeout: Duration::from_secs(10),
            min_frame_rate: 64 * 1024,
            caller_clock: CallerClock::SameHost,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// When a provider trusts a caller's clock (the `sent_unix_us` a request carries) to tell
/// how long the request waited before it was read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallerClock {
    /// Only for callers on the same host (a loopback peer, or the provider's own address):
    /// they read the same clock.
    #[default]
    SameHost,
    /// For every caller: the hosts' clocks are kept in step (NTP, PTP) and their skew is small
    /// next to the deadlines in use.
    Synchronized,
    /// Never: a deadline counts from when the provider reads the request.
    Ignore,
}

impl ServerConfig {
    /// The metadata limits for requests.
    pub fn metadata_limits(&self) -> MetadataLimits {
        MetadataLimits {
            max_entries: self.max_metadata_entries,
            max_bytes: self.max_metadata_bytes,
        }
    }
}

/// The consumer's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Default budget of one call, from the call to its reply; a request may override it.
    /// It is sent to the provider, which abandons the work when it runs out. More than zero.
    /// Default 3 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Budget of one TCP connect. More than zero. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest frame accepted or sent, in bytes, from 1 KiB to 1 GiB. Default 16 MiB.
    pub max_frame_size: usize,
    /// An idle connection sends a ping this often. More than zero. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection whose pong (or any frame) is this late is declared dead. More than zero.
    /// Default 5 s.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// A connection whose provider accepts no request bytes for this long (it stopped
    /// reading) is closed, and its calls fail with `Unavailable`. More than zero.
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// First wait before reconnecting to a provider that failed; doubles up to
    /// `reconnect_backoff_max`. More than zero. Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff: Duration,
    /// Longest wait between reconnect attempts, at least `reconnect_backoff`. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Duration,
    /// Worker threads of the runtime a blocking client starts, at least 1. Default 2.
    pub threads: usize,
    /// How calls are spread over a service's providers. Default `round_robin`.
    pub load_balance: LoadBalance,
}

/// How a consumer spreads calls over the providers of a service.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalance {
    /// Each provider in turn.
    #[default]
    RoundRobin,
    /// At random, in proportion to each provider's `weight`.
    WeightedRandom,
    /// By the call's hash key (`Request::with_hash_key`): the same key goes to the same
    /// provider while the set of providers is stable, and only the keys of a provider that
    /// leaves move (rendezvous hashing). Calls without a key go round robin.
    ConsistentHash,
    /// The less loaded of two providers picked at random, by calls in flight and recent
    /// latency (power of two choices).
    LeastLoaded,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            threads: 2,
            load_balance: LoadBalance::RoundRobin,
        }
    }
}

/// Where providers are registered and found.
///
/// In TOML the variant is chosen by `kind`, which is required when `[registry]` is present:
/// `kind = "static"` takes `services`; `kind = "zookeeper"` takes `connect` (required),
/// `root` and `session_timeout`. Without a `[registry]` table the registry is an empty static
/// list.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RawRegistry")]
pub enum RegistryConfig {
    /// A fixed list of provider addresses per fully qualified service name. Needs nothing
    /// installed; providers do not register anywhere.
    Static {
        /// `"package.Service" = ["host:port", ...]`. Default: empty.
        services: BTreeMap<String, Vec<String>>,
    },
    /// A ZooKeeper ensemble.
    Zookeeper {
        /// Connect string: `host:port[,host:port...]`. Required.
        connect: String,
        /// Path under which services are registered: starts with `/`, no trailing `/` (except
        /// the root `/` itself), no empty, `.` or `..` component. Default `/mprpc`.
        root: String,
        /// Session timeout, more than zero. Default 10 s.
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

/// The `[registry]` table as written, before `kind` picks the variant.
///
/// serde's internally tagged enums buffer the table and lose the position of every error in
/// it; a plain struct keeps them, so a wrong type in `registry.connect` is reported at its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    kind: RegistryKind,
    services: Option<BTreeMap<String, Vec<String>>>,
    connect: Option<String>,
    root: Option<String>,
    #[serde(default, with = "humantime_serde")]
    session_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RegistryKind {
    Static,
    Zookeeper,
}

impl TryFrom<RawRegistry> for RegistryConfig {
    type Error = String;

    fn try_from(raw: RawRegistry) -> Result<Self, String> {
        match raw.kind {
            RegistryKind::Static => {
                let stray = [
                    ("connect", raw.connect.is_some()),
                    ("root", raw.root.is_some()),
                    ("session_timeout", raw.session_timeout.is_some()),
                ];
                if let Some((name, _)) = stray.iter().find(|(_, present)| *present) {
                    return Err(format!(
                        "unknown field `{name}`, kind `static` takes only `services`"
                    ));
                }
                Ok(RegistryConfig::Static {
                    services: raw.services.unwrap_or_default(),
                })
            }
            RegistryKind::Zookeeper => {
                if raw.services.is_some() {
                    return Err(
                        "unknown field `services`, kind `zookeeper` takes `connect`, \
                                `root` and `session_timeout`"
                            .to_owned(),
                    );
                }
                let connect = raw.connect.ok_or("missing field `connect`")?;
                Ok(RegistryConfig::Zookeeper {
                    connect,
                    root: raw.root.unwrap_or_else(default_zk_root),
                    session_timeout: raw
                        .session_timeout
                        .unwrap_or_else(default_zk_session_timeout),
                })
            }
        }
    }
}

/// Where log lines go.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Directory of the daily log files; `None` (written `dir = ""` in TOML) writes no file.
    /// Default `logs`.
    #[serde(deserialize_with = "deserialize_log_dir")]
    pub dir: Option<PathBuf>,
    /// File name prefix: files are named `PREFIX.YYYY-MM-DD` (UTC date). Must not be empty or
    /// contain a path separator. Default `mprpc.log`.
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

/// TOML has no null, so an empty `dir` is how a file says "no log file".
fn deserialize_log_dir<'de, D: Deserializer<'de>>(de: D) -> Result<Option<PathBuf>, D::Error> {
    let dir = PathBuf::deserialize(de)?;
    Ok((!dir.as_os_str().is_empty()).then_some(dir))
}

/// Why a configuration could not be loaded.
///
/// Each message is one line that says everything (the operating system's reason included),
/// so [`source`](std::error::Error::source) is `None`: a program printing the chain of
/// causes prints each fact once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory). A file that is not
    /// UTF-8 is a [`ConfigError::Parse`] naming the line.
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The text is not a well-formed configuration: a syntax error, an unknown key, a value of
    /// the wrong type.
    #[error("{origin}: {}{message}", location(line, key))]
    Parse {
        /// The file (or other origin) the text came from.
        origin: String,
        /// The 1-based line of the error, when known.
        line: Option<usize>,
        /// The key concerned (`server.threads`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The configuration is well formed but a value is out of range.
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        /// The file (or other origin) the text came from.
        origin: String,
        /// The key concerned, as written in TOML (`client.timeout`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// `line N: key `K`: ` with the parts that are known.
/// The text of a file, or a [`ConfigError::Parse`] naming the line and column of the first
/// byte that is not UTF-8.
fn utf8(bytes: Vec<u8>, origin: &str) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        let byte = e.as_bytes()[valid.len()];
        ConfigError::Parse {
            origin: origin.to_owned(),
            line: Some(valid.iter().filter(|b| **b == b'\n').count() + 1),
            key: None,
            message: format!(
                "byte 0x{byte:02x} at column {column} is not UTF-8; save the file as UTF-8"
            ),
        }
    })
}

fn location(line: &Option<usize>, key: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if let Some(key) = key {
        out.push_str(&format!("key `{key}`: "));
    }
    out
}

/// The two formats [`Config::load`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML, the normal format.
    Toml,
    /// The original mprpc's `key=value` lines.
    Legacy,
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Toml => "TOML",
            ConfigFormat::Legacy => "legacy key=value",
        })
    }
}

/// The keys of the legacy format.
const LEGACY_KEYS: [&str; 4] = [
    "rpcserverip",
    "rpcserverport",
    "zookeeperip",
    "zookeeperport",
];

impl ConfigFormat {
    /// Decides the format of `text` by its first line that is neither blank nor a comment
    /// (`#`): it is [`Legacy`](ConfigFormat::Legacy) when that line holds a `=` and the text
    /// before the first `=`, without surrounding spaces and tabs, is `rpcserverip`,
    /// `rpcserverport`, `zookeeperip` or `zookeeperport`; otherwise (including an empty file)
    /// it is [`Toml`](ConfigFormat::Toml).
    pub fn detect(text: &str) -> ConfigFormat {
        let first = text
            .trim_start_matches('\u{feff}')
            .split('\n')
            .map(trim_legacy)
            .find(|line| !line.is_empty() && !line.starts_with('#'));
        match first.and_then(|line| line.split_once('=')) {
            Some((key, _)) if LEGACY_KEYS.contains(&trim_legacy(key)) => ConfigFormat::Legacy,
            _ => ConfigFormat::Toml,
        }
    }
}

impl Config {
    /// Reads the file at `path`, detects its format ([`ConfigFormat::detect`]), parses it and
    /// validates it. Errors name the file as `path` was given.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        let origin = path.display().to_string();
        let text = utf8(bytes, &origin)?;
        match ConfigFormat::detect(&text) {
            ConfigFormat::Toml => Config::from_toml_str(&text, &origin),
            ConfigFormat::Legacy => Config::from_legacy_str(&text, &origin),
        }
    }

    /// Parses and validates a TOML configuration. `origin` names the text in error messages
    /// (normally the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let (doc, errors) = DeTable::parse_recoverable(text);
        if let Some(error) = errors.first() {
            return Err(toml_error(text, origin, doc.get_ref(), error));
        }
        let config = Config::deserialize(toml::Deserializer::from(doc.clone()))
            .map_err(|error| toml_error(text, origin, doc.get_ref(), &error))?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Parses and validates a file in the original mprpc's `key=value` format. `origin`
    /// names the text in error messages.
    ///
    /// Rules, each a fix of a defect of the original reader:
    /// - a `\r` before the line break is dropped, and spaces and tabs around keys and values
    ///   are trimmed;
    /// - a line whose first non-blank character is `#` is a comment, and a `#` after a space
    ///   or tab starts a comment at the end of a line;
    /// - a line without `=`, a key other than `rpcserverip`, `rpcserverport`, `zookeeperip`,
    ///   `zookeeperport`, a key given twice, or an empty value is an error;
    /// - a port must be a number in 1..=65535 (0, "any free port", is allowed for
    ///   `rpcserverport` only);
    /// - the keys come in pairs (`rpcserverip` with `rpcserverport`, `zookeeperip` with
    ///   `zookeeperport`): one without the other is an error, and at least one pair is needed.
    ///
    /// `rpcserverip:rpcserverport` becomes `server.address` (an IPv6 address is put in
    /// brackets); `zookeeperip:zookeeperport` becomes a ZooKeeper `registry` with the default
    /// root and session timeout. Without ZooKeeper keys the registry is an empty static list.
    pub fn from_legacy_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_error =
            |line: Option<usize>, key: Option<&str>, message: String| ConfigError::Parse {
                origin: origin.to_owned(),
                line,
                key: key.map(str::to_owned),
                message,
            };
        // key -> (value, 1-based line)
        let mut entries: BTreeMap<&'static str, (&str, usize)> = BTreeMap::new();
        for (index, raw) in text.trim_start_matches('\u{feff}').split('\n').enumerate() {
            let number = index + 1;
            let line = trim_legacy(strip_legacy_comment(raw));
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(parse_error(
                    Some(number),
                    None,
                    format!("expected `key=value`, found `{line}`"),
                ));
            };
            let (key, value) = (trim_legacy(key), trim_legacy(value));
            let Some(known) = LEGACY_KEYS.iter().find(|k| **k == key) else {
                return Err(parse_error(
                    Some(number),
                    Some(key),
                    format!("unknown key, expected one of {}", LEGACY_KEYS.join(", ")),
                ));
            };
            if let Some((_, first)) = entries.get(known) {
                return Err(parse_error(
                    Some(number),
                    Some(key),
                    format!("repeated key (first given on line {first})"),
                ));
            }
            if value.is_empty() {
                return Err(parse_error(
                    Some(number),
                    Some(key),
                    "empty value".to_owned(),
                ));
            }
            entries.insert(known, (value, number));
        }

        // One `host:port` from a pair of keys; `None` when neither is present.
        let pair = |ip_key: &str, port_key: &str, port_zero: bool| {
            let address = match (entries.get(ip_key), entries.get(port_key)) {
                (None, None) => return Ok(None),
                (Some((_, line)), None) | (None, Some((_, line))) => {
                    let (missing, present) = if entries.contains_key(ip_key) {
                        (port_key, ip_key)
                    } else {
                        (ip_key, port_key)
                    };
                    return Err(parse_error(
                        None,
                        Some(missing),
                        format!("missing, but `{present}` is given on line {line}"),
                    ));
                }
                (Some(&(ip, ip_line)), Some(&(port, port_line))) => {
                    let port_ok = !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u16>().is_ok_and(|p| p != 0 || port_zero);
                    if !port_ok {
                        let range = if port_zero { "0..=65535" } else { "1..=65535" };
                        return Err(parse_error(
                            Some(port_line),
                            Some(port_key),
                            format!("`{port}` is not a port number in {range}"),
                        ));
                    }
                    let host = if ip.contains(':') && !ip.starts_with('[') {
                        format!("[{ip}]")
                    } else {
                        ip.to_owned()
                    };
                    let address = format!("{host}:{port}");
                    if let Err(why) = check_host_port(&address, true) {
                        return Err(parse_error(
                            Some(ip_line),
                            Some(ip_key),
                            format!("`{ip}` is not an IP address or host name ({why})"),
                        ));
                    }
                    address
                }
            };
            Ok(Some(address))
        };
        let server = pair("rpcserverip", "rpcserverport", true)?;
        let zookeeper = pair("zookeeperip", "zookeeperport", false)?;
        if server.is_none() && zookeeper.is_none() {
            return Err(parse_error(
                None,
                None,
                "no settings: expected `rpcserverip` and `rpcserverport`, or `zookeeperip` and \
                 `zookeeperport`"
                    .to_owned(),
            ));
        }

        let mut config = Config::default();
        if let Some(address) = server {
            config.server.address = address;
        }
        if let Some(connect) = zookeeper {
            config.registry = RegistryConfig::Zookeeper {
                connect,
                root: default_zk_root(),
                session_timeout: default_zk_session_timeout(),
            };
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks every value against its documented range; [`load`](Config::load) and the
    /// `from_*_str` functions call it. Useful for a configuration built in code. The error
    /// names `origin` and the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let check = |ok: bool, key: &str, message: &str| {
            if ok {
                Ok(())
            } else {
                Err(invalid(key, message.to_owned()))
            }
        };
        let positive =
            |value: Duration, key: &str| check(!value.is_zero(), key, "must be more than zero");
        let frame = |value: usize, key: &str| {
            check(
                (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value),
                key,
                &format!(
                    "{value} is out of range: must be from {MIN_MAX_FRAME_SIZE} (1 KiB) to \
                     {MAX_MAX_FRAME_SIZE} (1 GiB)"
                ),
            )
        };
        let limit = |value: usize, key: &str| {
            check(
                (1..=MAX_LIMIT).contains(&value),
                key,
                &format!("{value} is out of range: must be from 1 to {MAX_LIMIT}"),
            )
        };

        let server = &self.server;
        check_host_port(&server.address, true).map_err(|m| invalid("server.address", m))?;
        if let Some(advertise) = &server.advertise_address {
            check_host_port(advertise, false)
                .map_err(|m| invalid("server.advertise_address", m))?;
        }
        if let Some(admin) = &server.admin_address {
            check_host_port(admin, true).map_err(|m| invalid("server.admin_address", m))?;
        }
        check(server.threads >= 1, "server.threads", "must be at least 1")?;
        limit(server.max_concurrent_calls, "server.max_concurrent_calls")?;
        check(
            server.max_calls_per_connection >= 1,
            "server.max_calls_per_connection",
            "must be at least 1",
        )?;
        check(
            server.max_unwritten_bytes >= 1,
            "server.max_unwritten_bytes",
            "must be at least 1",
        )?;
        frame(server.max_frame_size, "server.max_frame_size")?;
        check(
            server.max_metadata_entries >= 1,
            "server.max_metadata_entries",
            "must be at least 1",
        )?;
        check(
            server.max_metadata_bytes >= 1,
            "server.max_metadata_bytes",
            "must be at least 1",
        )?;
        positive(server.frame_timeout, "server.frame_timeout")?;
        check(
            server.min_frame_rate >= 1,
            "server.min_frame_rate",
            "must be at least 1",
        )?;
        limit(server.max_connections, "server.max_connections")?;
        positive(server.idle_timeout, "server.idle_timeout")?;
        positive(server.write_timeout, "server.write_timeout")?;

        let client = &self.client;
        positive(client.timeout, "client.timeout")?;
        positive(client.connect_timeout, "client.connect_timeout")?;
        frame(client.max_frame_size, "client.max_frame_size")?;
        positive(client.ping_interval, "client.ping_interval")?;
        positive(client.ping_timeout, "client.ping_timeout")?;
        positive(client.write_timeout, "client.write_timeout")?;
        positive(client.reconnect_backoff, "client.reconnect_backoff")?;
        check(
            client.reconnect_backoff_max >= client.reconnect_backoff,
            "client.reconnect_backoff_max",
            "must be at least `client.reconnect_backoff`",
        )?;
        check(client.threads >= 1, "client.threads", "must be at least 1")?;

        match &self.registry {
            RegistryConfig::Static { services } => {
                for (service, addresses) in services {
                    let key = format!("registry.services.{}", toml_key(service));
                    check(!service.is_empty(), &key, "empty service name")?;
                    for (i, address) in addresses.iter().enumerate() {
                        check_host_port(address, false)
                            .map_err(|m| invalid(&format!("{key}[{i}]"), m))?;
                    }
                }
            }
            RegistryConfig::Zookeeper {
                connect,
                root,
                session_timeout,
            } => {
                check(
                    !connect.is_empty(),
                    "registry.connect",
                    "empty connect string",
                )?;
                for server in connect.split(',') {
                    check_host_port(server, false)
                        .map_err(|m| invalid("registry.connect", format!("in `{connect}`: {m}")))?;
                }
                check_zk_root(root).map_err(|m| invalid("registry.root", m))?;
                positive(*session_timeout, "registry.session_timeout")?;
            }
        }

        let logging = &self.logging;
        check(
            !logging.file_prefix.is_empty()
                && !logging.file_prefix.contains(['/', '\\'])
                && logging.file_prefix != "."
                && logging.file_prefix != "..",
            "logging.file_prefix",
            "must be a file name: not empty, no `/` or `\\`",
        )?;
        check(
            !logging.level.trim().is_empty(),
            "logging.level",
            "empty; write a level such as `info`",
        )?;
        tracing_subscriber::EnvFilter::builder()
            .parse(&logging.level)
            .map_err(|e| invalid("logging.level", format!("`{}`: {e}", logging.level)))?;
        Ok(())
    }
}

/// Spaces, tabs and carriage returns: what surrounds keys and values in a legacy file.
fn trim_legacy(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r'])
}

/// Cuts a legacy line at a `#` that begins the line or follows a space or tab.
fn strip_legacy_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) {
            return &line[..i];
        }
    }
    line
}

/// Checks `host:port`: a socket address (`127.0.0.1:80`, `[::1]:80`) or a host name with a
/// numeric port. Returns what is wrong.
fn check_host_port(address: &str, port_zero: bool) -> Result<(), String> {
    let port_zero_error = || format!("`{address}`: port 0 is not allowed here");
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return if socket.port() == 0 && !port_zero {
            Err(port_zero_error())
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` is not `host:port`"));
    };
    if host.starts_with('[') || host.contains(':') {
        return Err(format!(
            "`{address}` is not `host:port` (an IPv6 address is written `[::1]:8000`)"
        ));
    }
    if host.is_empty() {
        return Err(format!("`{address}` has no host"));
    }
    let port_number = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u16>().ok()
    } else {
        None
    };
    match port_number {
        None => return Err(format!("`{address}`: `{port}` is not a port number")),
        Some(0) if !port_zero => return Err(port_zero_error()),
        Some(_) => {}
    }
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("`{address}`: `{host}` is not an IPv4 address"));
    }
    let host_name_ok = host.split('.').enumerate().all(|(i, label)| {
        // A single trailing dot (fully qualified name) is allowed.
        (!label.is_empty() || (i > 0 && host.ends_with('.') && host.len() > 1))
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !host_name_ok || host.contains("..") {
        return Err(format!("`{address}`: `{host}` is not a host name"));
    }
    Ok(())
}

/// Checks a ZooKeeper path: absolute, no trailing `/` (but `/` itself is fine), no empty,
/// `.` or `..` component.
fn check_zk_root(root: &str) -> Result<(), String> {
    if !root.starts_with('/') {
        return Err(format!("`{root}` must start with `/`"));
    }
    if root == "/" {
        return Ok(());
    }
    if root.ends_with('/') {
        return Err(format!("`{root}` must not end with `/`"));
    }
    if root[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!("`{root}` has an empty, `.` or `..` component"));
    }
    Ok(())
}

/// A TOML key as it would be written in a dotted path: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a `toml` error into a [`ConfigError::Parse`] with the line and the key, found by
/// looking the error's position up in the parsed document.
fn toml_error(text: &str, origin: &str, doc: &DeTable<'_>, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim_end().to_owned();
    let mut line = None;
    let mut key = None;
    if let Some(span) = error.span() {
        line = Some(line_of(text, span.start));
        if let Some(found) = locate(doc, span.start) {
            key = Some(found.path.clone());
            // serde reports a bad field of a table at the table; point at the field instead.
            if let DeValue::Table(table) = found.value {
                if let Some(name) = quoted_after(&message, "unknown field `") {
                    if let Some((k, _)) = table.iter().find(|(k, _)| k.get_ref() == name) {
                        line = Some(line_of(text, k.span().start));
                        key = Some(format!("{}.{}", found.path, toml_key(name)));
                    }
                } else if let Some(name) = quoted_after(&message, "missing field `") {
                    key = Some(format!("{}.{}", found.path, toml_key(name)));
                }
            }
        } else if let Some(name) = quoted_after(&message, "missing field `") {
            key = Some(toml_key(name));
        } else if message == "duplicate key" {
            // Recovery keeps the first definition only: name the key by that one's path.
            let written = text.get(span.clone()).map(str::trim).unwrap_or_default();
            let name = written.trim_matches(['"', '\'']);
            key = first_definition(doc, name, span.start)
                .or_else(|| (!written.is_empty()).then(|| written.to_owned()));
        }
    }
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        key,
        message,
    }
}

/// The text between `prefix` and the next backtick, when `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

/// The entry of a document whose key or value holds a byte offset.
struct Found<'d, 'i> {
    path: String,
    value: &'d DeValue<'i>,
    width: usize,
}

/// One entry of a parsed document, as [`walk`] visits it.
struct Entry<'a, 'd, 'i> {
    /// The dotted path, array elements as `[i]`.
    path: &'a str,
    /// The key as written; empty for an array element.
    name: &'a str,
    key_span: Range<usize>,
    value_span: Range<usize>,
    value: &'d DeValue<'i>,
}

/// Calls `f` for every entry of `doc`, array elements included (their key span is their
/// value span).
fn walk<'d, 'i>(doc: &'d DeTable<'i>, f: &mut dyn FnMut(Entry<'_, 'd, 'i>)) {
    fn visit<'d, 'i>(path: &str, value: &'d DeValue<'i>, f: &mut dyn FnMut(Entry<'_, 'd, 'i>)) {
        match value {
            DeValue::Table(table) => {
                for (k, v) in table.iter() {
                    let child = match path {
                        "" => toml_key(k.get_ref()),
                        _ => format!("{path}.{}", toml_key(k.get_ref())),
                    };
                    f(Entry {
                        path: &child,
                        name: k.get_ref(),
                        key_span: k.span(),
                        value_span: v.span(),
                        value: v.get_ref(),
                    });
                    visit(&child, v.get_ref(), f);
                }
            }
            DeValue::Array(array) => {
                for (i, v) in array.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    f(Entry {
                        path: &child,
                        name: "",
                        key_span: v.span(),
                        value_span: v.span(),
                        value: v.get_ref(),
                    });
                    visit(&child, v.get_ref(), f);
                }
            }
            _ => {}
        }
    }
    for (k, v) in doc.iter() {
        let path = toml_key(k.get_ref());
        f(Entry {
            path: &path,
            name: k.get_ref(),
            key_span: k.span(),
            value_span: v.span(),
            value: v.get_ref(),
        });
        visit(&path, v.get_ref(), f);
    }
}

/// Finds the narrowest key or value around byte `offset`. Tables opened by a `[header]` span
/// only the header, so every table is searched, not only those whose span holds `offset`.
fn locate<'d, 'i>(doc: &'d DeTable<'i>, offset: usize) -> Option<Found<'d, 'i>> {
    let holds =
        |span: &Range<usize>| span.contains(&offset) || (span.is_empty() && span.start == offset);
    let mut best: Option<Found<'d, 'i>> = None;
    walk(doc, &mut |entry| {
        for span in [entry.key_span, entry.value_span]
            .iter()
            .filter(|s| holds(s))
        {
            if best.as_ref().is_none_or(|b| span.len() < b.width) {
                best = Some(Found {
                    path: entry.path.to_owned(),
                    value: entry.value,
                    width: span.len(),
                });
            }
        }
    });
    best
}

/// The path of the last key named `name` defined before byte `offset`: the first definition
/// of a key that is defined again at `offset`.
fn first_definition(doc: &DeTable<'_>, name: &str, offset: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk(doc, &mut |entry| {
        let start = entry.key_span.start;
        let later = best
            .as_ref()
            .is_none_or(|(best_start, _)| start > *best_start);
        if entry.name == name && start < offset && later {
            best = Some((start, entry.path.to_owned()));
        }
    });
    best.map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(result: Result<Config, ConfigError>) -> (Option<usize>, Option<String>, String) {
        match result {
            Err(ConfigError::Parse {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn invalid_key(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::from_toml_str("", "empty.toml").unwrap();
        assert_eq!(c, Config::default());
        let s = &c.server;
        assert_eq!(s.address, "127.0.0.1:8000");
        assert_eq!(s.advertise_address, None);
        assert_eq!(s.threads, 4);
        assert_eq!(s.max_concurrent_calls, 10_000);
        assert_eq!(s.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(s.max_connections, 10_000);
        assert_eq!(s.shutdown_grace, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
        assert_eq!(s.max_calls_per_connection, 4_096);
        assert_eq!(s.max_unwritten_bytes, 64 << 20);
        assert_eq!(s.max_metadata_entries, 64);
        assert_eq!(s.max_metadata_bytes, 16 << 10);
        assert_eq!(s.frame_timeout, Duration::from_secs(10));
        assert_eq!(s.min_frame_rate, 64 << 10);
        assert_eq!(s.caller_clock, CallerClock::SameHost);
        assert_eq!(s.write_timeout, Duration::from_secs(30));
        let k = &c.client;
        assert_eq!(k.timeout, Duration::from_secs(3));
        assert_eq!(k.connect_timeout, Duration::from_secs(1));
        assert_eq!(k.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(k.ping_interval, Duration::from_secs(10));
        assert_eq!(k.ping_timeout, Duration::from_secs(5));
        assert_eq!(k.write_timeout, Duration::from_secs(30));
        assert_eq!(k.reconnect_backoff, Duration::from_millis(100));
        assert_eq!(k.reconnect_backoff_max, Duration::from_secs(5));
        assert_eq!(k.threads, 2);
        assert_eq!(
            c.registry,
            RegistryConfig::Static {
                services: BTreeMap::new()
            }
        );
        let l = &c.logging;
        assert_eq!(l.dir, Some(PathBuf::from("logs")));
        assert_eq!(l.file_prefix, "mprpc.log");
        assert_eq!(l.level, "info");
        assert!(!l.stderr);
        // Defaults pass validation.
        Config::default().validate("default").unwrap();
    }

    #[test]
    fn zookeeper_defaults_and_empty_sections() {
        let c = Config::from_toml_str(
            "[server]\n[client]\n[logging]\n[registry]\nkind = \"zookeeper\"\nconnect = \"zk:2181\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.registry,
            RegistryConfig::Zookeeper {
                connect: "zk:2181".into(),
                root: "/mprpc".into(),
                session_timeout: Duration::from_secs(10),
            }
        );
        let c = Config::from_toml_str("[registry]\nkind = \"static\"\n", "t.toml").unwrap();
        assert_eq!(c.registry, RegistryConfig::default());
    }

    #[test]
    fn module_doc_example_parses() {
        let text = "[server]\naddress = \"127.0.0.1:8000\"\nthreads = 4\n\n[client]\ntimeout = \
                    \"3s\"\n\n[registry]\nkind = \"static\"\n[registry.services]\n\
                    \"fixbug.UserServiceRpc\" = [\"127.0.0.1:8000\"]\n\n[logging]\ndir = \
                    \"logs\"\nlevel = \"info\"\n";
        let c = Config::from_toml_str(text, "doc.toml").unwrap();
        let RegistryConfig::Static { services } = &c.registry else {
            panic!("not static")
        };
        assert_eq!(services["fixbug.UserServiceRpc"], ["127.0.0.1:8000"]);
    }

    #[test]
    fn full_toml_example_parses() {
        let text = r#"
# every key, none at its default
[server]
address = "0.0.0.0:9000"
advertise_address = "10.0.0.5:9000"
admin_address = "127.0.0.1:9100"
threads = 8
max_concurrent_calls = 500
max_calls_per_connection = 100
max_unwritten_bytes = 1000000
max_metadata_entries = 8
max_metadata_bytes = 512
frame_timeout = "3s"
min_frame_rate = 1000
caller_clock = "synchronized"
max_frame_size = 1048576
max_connections = 200
shutdown_grace = "30s"
idle_timeout = "1min"
write_timeout = "20s"
weight = 250

[client]
timeout = "500ms"
connect_timeout = "2s"
max_frame_size = 2048
ping_interval = "15s"
ping_timeout = "3s"
write_timeout = "7s"
reconnect_backoff = "50ms"
reconnect_backoff_max = "10s"
threads = 1
load_balance = "least_loaded"

[registry]
kind = "zookeeper"
connect = "zk1:2181,10.0.0.2:2181,[::1]:2181"
root = "/services/rpc"
session_timeout = "20s"

[logging]
dir = "/var/log/mprpc"
file_prefix = "provider.log"
level = "mprpc=debug,warn"
stderr = true
"#;
        let c = Config::from_toml_str(text, "full.toml").unwrap();
        assert_eq!(
            c.server,
            ServerConfig {
                address: "0.0.0.0:9000".into(),
                advertise_address: Some("10.0.0.5:9000".into()),
                threads: 8,
                weight: 250,
                admin_address: Some("127.0.0.1:9100".into()),
                max_concurrent_calls: 500,
                max_calls_per_connection: 100,
                max_unwritten_bytes: 1_000_000,
                max_metadata_entries: 8,
                max_metadata_bytes: 512,
                frame_timeout: Duration::from_secs(3),
                min_frame_rate: 1000,
                caller_clock: CallerClock::Synchronized,
                max_frame_size: 1 << 20,
                max_connections: 200,
                shutdown_grace: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                write_timeout: Duration::from_secs(20),
            }
        );
        assert_eq!(
            c.client,
            ClientConfig {
                timeout: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(2),
                max_frame_size: 2048,
                ping_interval: Duration::from_secs(15),
                ping_timeout: Duration::from_secs(3),
                write_timeout: Duration::from_secs(7),
                reconnect_backoff: Duration::from_millis(50),
                reconnect_backoff_max: Duration::from_secs(10),
                threads: 1,
                load_balance: LoadBalance::LeastLoaded,
            }
        );
        assert_eq!(
            c.registry,
            RegistryConfig::Zookeeper {
                connect: "zk1:2181,10.0.0.2:2181,[::1]:2181".into(),
                root: "/services/rpc".into(),
                session_timeout: Duration::from_secs(20),
            }
        );
        assert_eq!(
            c.logging,
            LoggingConfig {
                dir: Some("/var/log/mprpc".into()),
                file_prefix: "provider.log".into(),
                level: "mprpc=debug,warn".into(),
                stderr: true,
            }
        );
    }

    #[test]
    fn empty_log_dir_means_no_file() {
        let c = Config::from_toml_str("[logging]\ndir = \"\"\n", "t.toml").unwrap();
        assert_eq!(c.logging.dir, None);
    }

    #[test]
    fn unknown_key_gives_line_and_key() {
        let text = "# provider\n[server]\nadress = \"127.0.0.1:8000\"\n";
        let err = Config::from_toml_str(text, "examples/provider.toml").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "examples/provider.toml: line 3: key `server.adress`: unknown field `adress`, \
                 expected one of `address`"
            ),
            "{shown}"
        );
        let (line, key, _) = parse_err(Err(err));
        assert_eq!((line, key.as_deref()), (Some(3), Some("server.adress")));

        let (line, key, _) = parse_err(Config::from_toml_str("\n\nservr = 1\n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(3), Some("servr")));
    }

    #[test]
    fn wrong_type_gives_line_and_key() {
        let text = "[server]\naddress = \"127.0.0.1:8000\"\n\n\nthreads = \"four\"\n";
        let err = Config::from_toml_str(text, "p.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.toml: line 5: key `server.threads`: invalid type: string \"four\", expected usize"
        );
        let (line, key, _) = parse_err(Config::from_toml_str(
            "[client]\ntimeout = \"3 parsecs\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(2), Some("client.timeout")));
        let (line, key, _) = parse_err(Config::from_toml_str("server.threads = -1\n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(1), Some("server.threads")));
    }

    #[test]
    fn registry_errors_point_at_the_field() {
        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zookeeper\"\nconnect = 5\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(3), Some("registry.connect")));
        assert!(message.contains("expected a string"), "{message}");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zk\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(2), Some("registry.kind")));

        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zookeeper\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(1), Some("registry.connect")));
        assert_eq!(message, "missing field `connect`");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nservices = {}\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(1), Some("registry.kind")));

        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"static\"\n\nconnect = \"zk:1\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(4), Some("registry.connect")));
        assert!(message.starts_with("unknown field `connect`"), "{message}");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"static\"\n[registry.services]\n\"a.B\" = [\"h:1\", 3]\n",
            "t.toml",
        ));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("registry.services.\"a.B\"[1]"))
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let (line, key, _) = parse_err(Config::from_toml_str("[server]\nthreads = \n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(2), Some("server.threads")));
        let (line, key, _) = parse_err(Config::from_toml_str("[server\n", "t.toml"));
        assert_eq!((line, key), (Some(1), None));
        let (line, key, message) = parse_err(Config::from_toml_str(
            "[server]\nthreads = 4\nthreads = 5\n",
            "t.toml",
        ));
        assert_eq!(line, Some(3));
        assert_eq!(key.as_deref(), Some("server.threads"));
        assert!(message.contains("duplicate"), "{message}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("[server]\nthreads = 0", "server.threads"),
            (
                "[server]\nmax_concurrent_calls = 0",
                "server.max_concurrent_calls",
            ),
            ("[server]\nmax_frame_size = 1023", "server.max_frame_size"),
            (
                "[server]\nmax_frame_size = 1073741825",
                "server.max_frame_size",
            ),
            ("[server]\naddress = \"8000\"", "server.address"),
            ("[server]\naddress = \":8000\"", "server.address"),
            (
                "[server]\nadvertise_address = \"h:0\"",
                "server.advertise_address",
            ),
            ("[server]\nadmin_address = \"9100\"", "server.admin_address"),
            (
                "[server]\nadmin_address = \"localhost:http\"",
                "server.admin_address",
            ),
            ("[client]\nmax_frame_size = 100", "client.max_frame_size"),
            ("[client]\ntimeout = \"0s\"", "client.timeout"),
            ("[client]\nthreads = 0", "client.threads"),
            (
                "[client]\nreconnect_backoff_max = \"1ms\"",
                "client.reconnect_backoff_max",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"\"",
                "registry.connect",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1,\"",
                "registry.connect",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1,b\"",
                "registry.connect",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"mprpc\"",
                "registry.root",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/mprpc/\"",
                "registry.root",
            ),
            (
                "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/a//b\"",
                "registry.root",
            ),
            ("[logging]\nlevel = \"mprpc=loud\"", "logging.level"),
            ("[logging]\nlevel = \"\"", "logging.level"),
            ("[logging]\nfile_prefix = \"a/b\"", "logging.file_prefix"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_str(text, "v.toml").unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("v.toml: key `{key}`: ")),
                "{text:?}: {err}"
            );
            assert_eq!(invalid_key(Err(err)), key, "{text:?}");
        }
        let ok = "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/\"\n\
                  [logging]\nlevel = \"warn,mprpc::server=trace\"\n";
        Config::from_toml_str(ok, "ok.toml").unwrap();
    }

    #[test]
    fn static_registry_bad_address_names_key() {
        let text = "[registry]\nkind = \"static\"\n[registry.services]\n\
                    \"fixbug.UserServiceRpc\" = [\"127.0.0.1:8000\", \"localhost\"]\n";
        let err = Config::from_toml_str(text, "c.toml").unwrap_err();
        assert!(err.to_string().contains("localhost"), "{err}");
        assert_eq!(
            invalid_key(Err(err)),
            "registry.services.\"fixbug.UserServiceRpc\"[1]"
        );
        for bad in [
            "h:0",
            "h:x",
            "h:70000",
            "::1:80",
            "300.1.1.1:80",
            "a b:80",
            ":80",
        ] {
            let text = format!("[registry]\nkind = \"static\"\nservices = {{ s = [\"{bad}\"] }}\n");
            let err = Config::from_toml_str(&text, "c.toml").unwrap_err();
            assert_eq!(invalid_key(Err(err)), "registry.services.s[0]", "{bad}");
        }
        let text = "[registry]\nkind = \"static\"\nservices = { s = [\"[::1]:80\", \
                    \"host-1.example.com:443\", \"10.0.0.1:1\", \"node_2:9\"] }\n";
        Config::from_toml_str(text, "c.toml").unwrap();
    }

    #[test]
    fn format_detection() {
        use ConfigFormat::*;
        assert_eq!(ConfigFormat::detect(""), Toml);
        assert_eq!(ConfigFormat::detect("# only a comment\n"), Toml);
        assert_eq!(ConfigFormat::detect("[server]\n"), Toml);
        assert_eq!(ConfigFormat::detect("server.threads = 2\n"), Toml);
        assert_eq!(
            ConfigFormat::detect("\r\n# c\r\nrpcserverip=1.2.3.4\r\n"),
            Legacy
        );
        assert_eq!(ConfigFormat::detect("\t zookeeperport\t= 2181\n"), Legacy);
        assert_eq!(ConfigFormat::detect("rpcserverport\n"), Toml);
        assert_eq!(ConfigFormat::detect("[x]\nrpcserverip=1.2.3.4\n"), Toml);
    }

    #[test]
    fn legacy_file_with_crlf_tabs_and_comments_parses() {
        let text = "\u{feff}# rpc node\r\n\r\n  rpcserverip\t=\t127.0.0.1  # provider ip\r\n\
                    rpcserverport = 8000\r\n\t# zookeeper\r\nzookeeperip=10.0.0.7\t#zk\r\n\
                    zookeeperport=2181\r\n";
        assert_eq!(ConfigFormat::detect(text), ConfigFormat::Legacy);
        let c = Config::from_legacy_str(text, "test.conf").unwrap();
        assert_eq!(c.server.address, "127.0.0.1:8000");
        assert_eq!(
            c.registry,
            RegistryConfig::Zookeeper {
                connect: "10.0.0.7:2181".into(),
                root: "/mprpc".into(),
                session_timeout: Duration::from_secs(10),
            }
        );
        assert_eq!(c.client, ClientConfig::default());
        assert_eq!(c.logging, LoggingConfig::default());
    }

    #[test]
    fn legacy_server_only_ipv6_and_port_zero() {
        let c = Config::from_legacy_str("rpcserverip=::1\nrpcserverport=0\n", "t.conf").unwrap();
        assert_eq!(c.server.address, "[::1]:0");
        assert_eq!(c.registry, RegistryConfig::default());
        let c = Config::from_legacy_str("zookeeperip=zk.local\nzookeeperport=2181", "t").unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert!(matches!(c.registry, RegistryConfig::Zookeeper { .. }));
    }

    #[test]
    fn legacy_errors() {
        let check = |text: &str, line: Option<usize>, key: Option<&str>| {
            let (l, k, message) = parse_err(Config::from_legacy_str(text, "t.conf"));
            assert_eq!((l, k.as_deref()), (line, key), "{text:?}: {message}");
        };
        // unknown key
        check(
            "rpcserverip=1.2.3.4\n# x\nrpcserverprot=80\n",
            Some(3),
            Some("rpcserverprot"),
        );
        // repeated key
        check(
            "rpcserverip=1.2.3.4\nrpcserverip=1.2.3.5\n",
            Some(2),
            Some("rpcserverip"),
        );
        // no `=`
        check("rpcserverip=1.2.3.4\nrpcserverport 80\n", Some(2), None);
        // empty value
        check(
            "rpcserverip=\nrpcserverport=80\n",
            Some(1),
            Some("rpcserverip"),
        );
        // bad ports
        check(
            "rpcserverip=h\nrpcserverport=65536\n",
            Some(2),
            Some("rpcserverport"),
        );
        check(
            "rpcserverip=h\nrpcserverport=-1\n",
            Some(2),
            Some("rpcserverport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=0\n",
            Some(2),
            Some("zookeeperport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=21 81\n",
            Some(2),
            Some("zookeeperport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=2181#c\n",
            Some(2),
            Some("zookeeperport"),
        );
        // bad ip
        check(
            "rpcserverip=1.2.3\nrpcserverport=80\n",
            Some(1),
            Some("rpcserverip"),
        );
        // nothing at all
        check("# empty\n", None, None);
    }

    #[test]
    fn legacy_missing_half_of_a_pair_names_it() {
        let err = Config::from_legacy_str("rpcserverip=127.0.0.1\n", "t.conf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.conf: key `rpcserverport`: missing, but `rpcserverip` is given on line 1"
        );
        let (_, key, _) = parse_err(Config::from_legacy_str(
            "rpcserverip=127.0.0.1\nrpcserverport=1\nzookeeperport=2181\n",
            "t.conf",
        ));
        assert_eq!(key.as_deref(), Some("zookeeperip"));
    }

    #[test]
    fn load_detects_the_format_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("test.conf");
        std::fs::write(&legacy, "rpcserverip=127.0.0.1\nrpcserverport=8000\n").unwrap();
        assert_eq!(
            Config::load(&legacy).unwrap().server.address,
            "127.0.0.1:8000"
        );

        let toml = dir.path().join("provider.toml");
        std::fs::write(&toml, "[server]\nthreads = 0\n").unwrap();
        let err = Config::load(&toml).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: key `server.threads`", toml.display())),
            "{err}"
        );

        let missing = dir.path().join("nope.toml");
        let err = Config::load(&missing).unwrap_err();
        assert!(matches!(&err, ConfigError::Io { path, .. } if path == &missing));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
        // Said once: the reason is in the message, not repeated as a cause.
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn a_file_that_is_not_utf8_names_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"[client]\n# caf\xe9 cr\xe8me\n").unwrap();
        let err = Config::load(&latin1).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 2: byte 0xe9 at column 6 is not UTF-8; save the file as UTF-8",
                latin1.display()
            )
        );
        let err = utf8(b"\xc3\xa9t\xc3\xa9 \xff".to_vec(), "t.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.toml: line 1: byte 0xff at column 5 is not UTF-8; save the file as UTF-8"
        );
    }
}
