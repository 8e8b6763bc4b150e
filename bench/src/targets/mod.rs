//! The systems under test, each a server and a client of the same echo workload.
//!
//! | target | server | client |
//! | --- | --- | --- |
//! | [`mprpc`] | mprpc's `Server` hosting the generated `BenchServer` | the generated `BenchClient` over a `Channel` (one connection) |
//! | [`mprpc`] with layers | the same, with three no-op user layers | the same, with three no-op outer layers: the cost of layers |
//! | [`tonic`] | a tonic server of the same `.proto` (gRPC over HTTP/2) | a tonic client over a tonic `Channel` (one HTTP/2 connection) |
//! | [`raw`] pipelined | a hand-written echo of `u32` length-prefixed frames | many frames in flight on one connection, replies in order |
//! | [`raw`] per call | the same echo server | a new TCP connection for every call (the original C++ mprpc's way) |
//!
//! A [`Target`] is a type with two associated functions: serve echo on a listener, and connect
//! one client ([`Caller`]) to an address. [`with_target!`](crate::with_target) turns a
//! [`TargetKind`] picked at run time into the type, for generic code.

pub mod mprpc;
pub mod raw;
pub mod tonic;

use std::future::Future;
use std::net::SocketAddr;

/// A system under test: how to serve the echo service, and how to call it.
pub trait Target {
    /// One client connection (for [`TargetKind::RawPerCall`]: the address it dials per call).
    type Caller: Caller;

    /// Serves echo on `listener` until the process exits (the server process never stops it
    /// otherwise). Returns only on a fatal error.
    fn serve(listener: tokio::net::TcpListener) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Connects one client to `address` and checks it with one call.
    fn connect(address: SocketAddr) -> impl Future<Output = anyhow::Result<Self::Caller>> + Send;
}

/// Makes echo calls. Cheap to clone; clones share the connection.
pub trait Caller: Clone + Send + Sync + 'static {
    /// Sends `payload` and waits for the echo. An error is named by its status code (or by
    /// what went wrong), so that the report can count errors by kind.
    fn call<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;
}

/// Checks that a reply echoed the whole payload.
pub(crate) fn check_len(got: usize, sent: usize) -> Result<(), String> {
    if got == sent {
        Ok(())
    } else {
        Err(format!("wrong reply ({got} bytes for {sent})"))
    }
}

/// The targets, as named on the command line and in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum TargetKind {
    /// mprpc's provider and channel.
    Mprpc,
    /// The same with three no-op user layers on each side.
    MprpcLayers,
    /// gRPC: tonic's server and client, with prost messages.
    Tonic,
    /// Raw length-prefixed TCP echo, many calls pipelined on each connection.
    RawPipelined,
    /// Raw length-prefixed TCP echo, a new connection for each call.
    RawPerCall,
}

impl TargetKind {
    /// Every target, in report order.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Mprpc,
        TargetKind::MprpcLayers,
        TargetKind::Tonic,
        TargetKind::RawPipelined,
        TargetKind::RawPerCall,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Mprpc => "mprpc",
            TargetKind::MprpcLayers => "mprpc-layers",
            TargetKind::Tonic => "tonic",
            TargetKind::RawPipelined => "raw-pipelined",
            TargetKind::RawPerCall => "raw-per-call",
        }
    }

    /// Whether calls share long-lived connections (false: a connection per call, so the
    /// number of connections is not a setting of its own).
    pub fn multiplexed(self) -> bool {
        self != TargetKind::RawPerCall
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` with `$t` standing for the [`Target`] type of the [`TargetKind`] `$kind`:
///
/// ```ignore
/// with_target!(kind, T => runtime.block_on(T::serve(listener)))
/// ```
#[macro_export]
macro_rules! with_target {
    ($kind:expr, $t:ident => $body:expr) => {
        match $kind {
            $crate::targets::TargetKind::Mprpc => {
                type $t = $crate::targets::mprpc::Mprpc;
                $body
            }
            $crate::targets::TargetKind::MprpcLayers => {
                type $t = $crate::targets::mprpc::MprpcLayers;
                $body
            }
            $crate::targets::TargetKind::Tonic => {
                type $t = $crate::targets::tonic::Tonic;
                $body
            }
            $crate::targets::TargetKind::RawPipelined => {
                type $t = $crate::targets::raw::RawPipelined;
                $body
            }
            $crate::targets::TargetKind::RawPerCall => {
                type $t = $crate::targets::raw::RawPerCall;
                $body
            }
        }
    };
}
