//! Scale figures: memory per idle connection, throughput as providers are added behind the
//! registry, and registering and discovering many providers in ZooKeeper.
//!
//! - [`bursts`]: bursts of thousands of connections that each make one call and close; the
//!   server's resident memory after each burst (does it come back?).
//! - [`idle`]: open thousands of connections to one server process, each used for one call
//!   and then left idle; the server's resident memory before and after, per connection.
//! - [`providers`]: one mprpc `Channel` spreading calls round robin over 1, 2, 3 provider
//!   processes listed in a static registry.
//! - [`zk`]: a private ZooKeeper (`scripts/zk.sh`); one `ZkRegistry` registers 1,000
//!   instances, another discovers them; time and memory of each.

pub mod bursts;
pub mod idle;
pub mod providers;
pub mod zk;

use std::time::Duration;

use crate::targets::TargetKind;

/// The parts of the scale run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Memory per idle connection.
    Idle,
    /// Memory after bursts of connections that close.
    Bursts,
    /// Calls/s with 1..N providers.
    Providers,
    /// Registering and discovering instances in ZooKeeper.
    Zk,
}

/// Settings of the scale run.
#[derive(Clone, Debug, clap::Args)]
pub struct ScaleOptions {
    /// Parts to run, comma-separated (ZooKeeper first: its memory figures are deltas of this
    /// process, cleanest before anything else ran in it).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "zk,idle,providers"
    )]
    pub parts: Vec<Part>,
    /// Idle connections to open to one server.
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Targets whose servers get the idle connections, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "mprpc,tonic,raw-pipelined"
    )]
    pub idle_targets: Vec<TargetKind>,
    /// Bursts of connections (`bursts` part).
    #[arg(long, default_value_t = 7)]
    pub bursts: usize,
    /// Connections per burst (`bursts` part).
    #[arg(long, default_value_t = 10_000)]
    pub burst_connections: usize,
    /// How long each burst is given to close and settle before the server's RSS is read.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    pub burst_settle: Duration,
    /// Largest number of providers (the run goes 1, 2, ... up to it).
    #[arg(long, default_value_t = 3)]
    pub providers: usize,
    /// Calls in flight for the providers part.
    #[arg(long, default_value_t = 128)]
    pub provider_concurrency: usize,
    /// Payload bytes for the providers part.
    #[arg(long, default_value_t = 64)]
    pub provider_payload: usize,
    /// Repetitions of each providers point.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Warm-up of each providers point (e.g. 1s).
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// Measurement window of each providers point (e.g. 2s).
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Instances to register in ZooKeeper.
    #[arg(long, default_value_t = 1000)]
    pub zk_instances: usize,
    /// Pin the servers (providers) to CPU 0 and the client to CPU 1; by default everything
    /// shares both CPUs.
    #[arg(long)]
    pub pin: bool,
}
