//! The `[server]` section: the provider's settings.

use std::time::Duration;

use serde::Deserialize;

use super::adaptive_limit::AdaptiveLimitConfig;
use super::auth::ServerAuth;
use super::check::Check;
use super::compression::CompressionConfig;
use super::protocols::ProtocolsConfig;
use super::tls::ServerTls;
use super::{ConfigError, DEFAULT_MAX_FRAME_SIZE};
use crate::protocol::limits::{
    MetadataLimits, DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_METADATA_ENTRIES,
};

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
    /// The SHA-256 (`sha256:<hex>`) of a token every admin page but `/health` asks for
    /// (`Authorization: Bearer <token>`). Default: none, the pages are open.
    pub admin_token: Option<String>,
    /// Whether the admin pages are served over TLS, with `[server.tls]`'s certificate.
    /// Default false.
    pub admin_tls: bool,
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
    /// (The small replies a plain TCP connection's reader writes itself count too, while they
    /// wait for the client to make room.) At least 1. Default 64 MiB.
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
    /// TLS on the RPC port (`[server.tls]`). Default: none, plaintext.
    pub tls: Option<ServerTls>,
    /// Bearer tokens and allow lists (`[server.auth]`). Default: none, every caller may call
    /// everything.
    pub auth: Option<ServerAuth>,
    /// A concurrency limit that follows the latency, under the static ones
    /// (`[server.adaptive_limit]`): calls over it are refused `ResourceExhausted` at once.
    /// Default: none, only the static limits.
    pub adaptive_limit: Option<AdaptiveLimitConfig>,
    /// Flow control of streaming calls: bytes of one stream's messages this side takes in
    /// before the sender must wait for it to read them. At least 1 KiB. Default 2 MiB.
    pub stream_window: usize,
    /// Flow control of streaming calls: bytes of all the streams' messages on one connection
    /// this side takes in before the senders must wait. At least 1 KiB. Default 16 MiB.
    pub connection_window: usize,
    /// Protocols answered on the port besides mprpc's own (`[server.protocols]`).
    pub protocols: ProtocolsConfig,
    /// Compression of replies, for callers that ask for it (`[server.compression]`).
    /// Default: off.
    pub compression: CompressionConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1:8000".to_owned(),
            advertise_address: None,
            threads: 4,
            weight: 100,
            admin_address: None,
            admin_token: None,
            admin_tls: false,
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
            tls: None,
            auth: None,
            adaptive_limit: None,
            stream_window: 2 * 1024 * 1024,
            connection_window: 16 * 1024 * 1024,
            protocols: ProtocolsConfig::default(),
            compression: CompressionConfig::default(),
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

    /// Checks every value against its documented range.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.host_port(&self.address, true, "server.address")?;
        if let Some(advertise) = &self.advertise_address {
            check.host_port(advertise, false, "server.advertise_address")?;
        }
        if let Some(admin) = &self.admin_address {
            check.host_port(admin, true, "server.admin_address")?;
        }
        check.that(self.threads >= 1, "server.threads", "must be at least 1")?;
        if let Some(token) = &self.admin_token {
            check.that(
                super::parse_hash(token).is_some(),
                "server.admin_token",
                "must be `sha256:` and 64 hex digits (the token's SHA-256, not the token)",
            )?;
        }
        check.that(
            !self.admin_tls || self.tls.is_some(),
            "server.admin_tls",
            "needs [server.tls], whose certificate it uses",
        )?;
        check.limit(self.max_concurrent_calls, "server.max_concurrent_calls")?;
        check.that(
            self.max_calls_per_connection >= 1,
            "server.max_calls_per_connection",
            "must be at least 1",
        )?;
        check.that(
            self.max_unwritten_bytes >= 1,
            "server.max_unwritten_bytes",
            "must be at least 1",
        )?;
        check.frame_size(self.max_frame_size, "server.max_frame_size")?;
        check.that(
            self.max_metadata_entries >= 1,
            "server.max_metadata_entries",
            "must be at least 1",
        )?;
        check.that(
            self.max_metadata_bytes >= 1,
            "server.max_metadata_bytes",
            "must be at least 1",
        )?;
        check.positive(self.frame_timeout, "server.frame_timeout")?;
        check.that(
            self.min_frame_rate >= 1,
            "server.min_frame_rate",
            "must be at least 1",
        )?;
        check.limit(self.max_connections, "server.max_connections")?;
        check.positive(self.idle_timeout, "server.idle_timeout")?;
        check.positive(self.write_timeout, "server.write_timeout")?;
        let windows = [
            (self.stream_window, "server.stream_window"),
            (self.connection_window, "server.connection_window"),
        ];
        for (window, key) in windows {
            check.that(window >= 1024, key, "must be at least 1024")?;
        }
        if let Some(tls) = &self.tls {
            tls.validate(check)?;
        }
        if let Some(adaptive) = &self.adaptive_limit {
            adaptive.validate(check)?;
        }
        match &self.auth {
            Some(auth) => auth.validate(check),
            None => Ok(()),
        }
    }
}
