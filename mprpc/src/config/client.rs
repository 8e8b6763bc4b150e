//! The `[client]` section: the consumer's settings.

use std::time::Duration;

use serde::Deserialize;

use super::auth::ClientAuth;
use super::check::Check;
use super::compression::CompressionConfig;
use super::resilience::{validate_methods, HedgeConfig, MethodTable, OutlierConfig, RetryConfig};
use super::tls::ClientTls;
use super::{ConfigError, DEFAULT_MAX_FRAME_SIZE};

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
    /// TLS to the providers (`[client.tls]`). Default: none, plaintext.
    pub tls: Option<ClientTls>,
    /// The bearer token sent with every call (`[client.auth]`). Default: none.
    pub auth: Option<ClientAuth>,
    /// Retries of idempotent calls, and their budget (`[client.retry]`).
    pub retry: RetryConfig,
    /// Hedged calls to idempotent methods (`[client.hedge]`). Default: off.
    pub hedge: HedgeConfig,
    /// Ejection of providers that keep failing (`[client.outlier]`).
    pub outlier: OutlierConfig,
    /// Per-method (or per-service) settings: `[client.methods."pkg.Service/Method"]`.
    pub methods: MethodTable,
    /// Flow control of streaming calls: bytes of one stream's messages this side takes in
    /// before the sender must wait for it to read them. At least 1 KiB. Default 2 MiB.
    pub stream_window: usize,
    /// Flow control of streaming calls: bytes of all the streams' messages on one connection
    /// this side takes in before the senders must wait. At least 1 KiB. Default 16 MiB.
    pub connection_window: usize,
    /// Budget of a streaming call from its start to its end, when the request sets none
    /// (`Request::with_timeout`). Default: none (a stream may last as long as both sides
    /// want; the caller's dropping it, or a dead provider, ends it).
    #[serde(with = "humantime_serde::option")]
    pub stream_timeout: Option<Duration>,
    /// Compression of requests, and of the replies asked for (`[client.compression]`).
    /// Default: off.
    pub compression: CompressionConfig,
}

/// How a consumer spreads calls over the providers of a service.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
            tls: None,
            auth: None,
            retry: RetryConfig::default(),
            hedge: HedgeConfig::default(),
            outlier: OutlierConfig::default(),
            methods: MethodTable::new(),
            stream_window: 2 * 1024 * 1024,
            connection_window: 16 * 1024 * 1024,
            stream_timeout: None,
            compression: CompressionConfig::default(),
        }
    }
}

impl ClientConfig {
    /// Checks every value against its documented range.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.positive(self.timeout, "client.timeout")?;
        check.positive(self.connect_timeout, "client.connect_timeout")?;
        check.frame_size(self.max_frame_size, "client.max_frame_size")?;
        check.positive(self.ping_interval, "client.ping_interval")?;
        check.positive(self.ping_timeout, "client.ping_timeout")?;
        check.positive(self.write_timeout, "client.write_timeout")?;
        check.positive(self.reconnect_backoff, "client.reconnect_backoff")?;
        check.that(
            self.reconnect_backoff_max >= self.reconnect_backoff,
            "client.reconnect_backoff_max",
            "must be at least `client.reconnect_backoff`",
        )?;
        check.that(self.threads >= 1, "client.threads", "must be at least 1")?;
        let windows = [
            (self.stream_window, "client.stream_window"),
            (self.connection_window, "client.connection_window"),
        ];
        for (window, key) in windows {
            check.that(window >= 1024, key, "must be at least 1024")?;
        }
        if let Some(tls) = &self.tls {
            tls.validate(check)?;
        }
        self.retry.validate(check)?;
        self.hedge.validate(check)?;
        self.outlier.validate(check)?;
        validate_methods(check, &self.methods)?;
        match &self.auth {
            Some(auth) => auth.validate(check),
            None => Ok(()),
        }
    }
}
