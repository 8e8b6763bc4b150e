//! The systems under test, each a server and a client of the same echo workload.
//!
//! | target | server | client |
//! | --- | --- | --- |
//! | [`mprpc`] | mprpc's `Server` hosting the generated `BenchServer` | the generated `BenchClient` over a `Channel` (one connection) |
//! | [`mprpc`] with layers | the same, with three no-op user layers | the same, with three no-op outer layers: the cost of layers |
//! | [`mprpc`] over TLS | the same with `[server.tls]` (rustls, ring) | the same with `[client.tls]` trusting the run's CA |
//! | [`tonic`] | a tonic server of the same `.proto` (gRPC over HTTP/2) | a tonic client over a tonic `Channel` (one HTTP/2 connection) |
//! | [`tonic`] over TLS | the same with `ServerTlsConfig` (rustls, ring) | the same with `ClientTlsConfig` trusting the run's CA |
//! | [`tonic`] on mprpc | the [`mprpc`] provider with `[server.protocols] grpc` (gRPC on its own port) | the [`tonic`] client |
//! | [`raw`] pipelined | a hand-written echo of `u32` length-prefixed frames | many frames in flight on one connection, replies in order |
//! | [`raw`] per call | the same echo server | a new TCP connection for every call (the original C++ mprpc's way) |
//!
//! A [`Target`] is a type with two associated functions: serve echo on a listener, and connect
//! one client ([`Caller`]) to an address. [`with_target!`](crate::with_target) turns a
//! [`TargetKind`] picked at run time into the type, for generic code. The TLS targets find
//! their files through the [`Certs`] passed to both functions (the other targets ignore it).

pub mod mprpc;
pub mod raw;
pub mod tonic;

use std::future::Future;
use std::net::SocketAddr;

use crate::certs::Certs;

/// What every reply of a `subscribe` stream carries, in both frameworks' handlers.
static REPLY_FILL: [u8; 64 * 1024] = [0x5A; 64 * 1024];

/// The payload of each reply of a `subscribe` stream of `size`-byte replies: a slice of a
/// static buffer up to 64 KiB, which costs nothing to clone or drop, so that server streaming
/// measures the frameworks rather than the handler (a payload shared by reference count costs
/// its atomic operations per reply in both frameworks' handlers and in prost's encoding, which
/// clones a `bytes` field to copy it). Larger replies share one buffer by reference count.
pub fn reply_payload(size: u32) -> bytes::Bytes {
    match REPLY_FILL.get(..size as usize) {
        Some(fill) => bytes::Bytes::from_static(fill),
        None => bytes::Bytes::from(vec![0x5A; size as usize]),
    }
}

/// A system under test: how to serve the echo service, and how to call it.
pub trait Target {
    /// One client connection (for [`TargetKind::RawPerCall`]: the address it dials per call).
    type Caller: Caller;

    /// Serves echo on `listener` until the process exits (the server process never stops it
    /// otherwise). Returns only on a fatal error. A TLS target needs `certs`.
    fn serve(
        listener: tokio::net::TcpListener,
        certs: Option<&Certs>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Connects one client to `address` and checks it with one call. A TLS target needs
    /// `certs`.
    fn connect(
        address: SocketAddr,
        certs: Option<&Certs>,
    ) -> impl Future<Output = anyhow::Result<Self::Caller>> + Send;
}

/// The certificates a TLS target cannot do without.
pub(crate) fn required(certs: Option<&Certs>, target: TargetKind) -> anyhow::Result<&Certs> {
    certs.ok_or_else(|| anyhow::anyhow!("{target} needs certificates (bench serve --tls-dir)"))
}

/// Makes echo calls. Cheap to clone; clones share the connection.
pub trait Caller: Clone + Send + Sync + 'static {
    /// Sends `payload` and waits for the echo. An error is named by its status code (or by
    /// what went wrong), so that the report can count errors by kind. The payload comes as
    /// [`Bytes`](bytes::Bytes), as a caller of a framework whose messages hold `Bytes` has
    /// it: a framework's request refers to it (no copy in the harness); the raw echo copies
    /// it into its frame, as a framework's encoding does.
    fn call<'a>(
        &'a self,
        payload: &'a bytes::Bytes,
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;
}

/// Makes `caller`'s first call (a short echo, which opens its connection), naming `to` if it
/// fails.
pub(crate) async fn first_call<C: Caller>(caller: C, to: &str) -> anyhow::Result<C> {
    caller
        .call(&bytes::Bytes::from_static(b"hello"))
        .await
        .map_err(|e| anyhow::anyhow!("the first call to {to} failed: {e}"))?;
    Ok(caller)
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
    /// mprpc over TLS (`[server.tls]`, `[client.tls]`).
    MprpcTls,
    /// mprpc's own caller against a provider that also serves the original's protocol,
    /// HTTP/JSON and gRPC on its port: what protocol detection costs.
    MprpcDetect,
    /// gRPC: tonic's server and client, with prost messages.
    Tonic,
    /// tonic over TLS (rustls with ring, like mprpc's).
    TonicTls,
    /// tonic's client calling the mprpc provider's gRPC front end (`protocols.grpc`).
    TonicOnMprpc,
    /// Raw length-prefixed TCP echo, many calls pipelined on each connection.
    RawPipelined,
    /// Raw length-prefixed TCP echo, a new connection for each call.
    RawPerCall,
}

impl TargetKind {
    /// Every target, in report order.
    pub const ALL: [TargetKind; 9] = [
        TargetKind::Mprpc,
        TargetKind::MprpcLayers,
        TargetKind::MprpcTls,
        TargetKind::MprpcDetect,
        TargetKind::Tonic,
        TargetKind::TonicTls,
        TargetKind::TonicOnMprpc,
        TargetKind::RawPipelined,
        TargetKind::RawPerCall,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Mprpc => "mprpc",
            TargetKind::MprpcLayers => "mprpc-layers",
            TargetKind::MprpcTls => "mprpc-tls",
            TargetKind::MprpcDetect => "mprpc-detect",
            TargetKind::Tonic => "tonic",
            TargetKind::TonicTls => "tonic-tls",
            TargetKind::TonicOnMprpc => "tonic-on-mprpc",
            TargetKind::RawPipelined => "raw-pipelined",
            TargetKind::RawPerCall => "raw-per-call",
        }
    }

    /// Whether calls share long-lived connections (false: a connection per call, so the
    /// number of connections is not a setting of its own).
    pub fn multiplexed(self) -> bool {
        self != TargetKind::RawPerCall
    }

    /// Whether it runs over TLS (and so needs [`Certs`]).
    pub fn tls(self) -> bool {
        matches!(self, TargetKind::MprpcTls | TargetKind::TonicTls)
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
/// with_target!(kind, T => runtime.block_on(T::serve(listener, certs)))
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
            $crate::targets::TargetKind::MprpcTls => {
                type $t = $crate::targets::mprpc::MprpcTls;
                $body
            }
            $crate::targets::TargetKind::MprpcDetect => {
                type $t = $crate::targets::mprpc::MprpcDetect;
                $body
            }
            $crate::targets::TargetKind::Tonic => {
                type $t = $crate::targets::tonic::Tonic;
                $body
            }
            $crate::targets::TargetKind::TonicTls => {
                type $t = $crate::targets::tonic::TonicTls;
                $body
            }
            $crate::targets::TargetKind::TonicOnMprpc => {
                type $t = $crate::targets::tonic::TonicOnMprpc;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::RunCerts;

    /// A runtime for a test's servers and clients.
    fn two_workers() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Serves `S` on a fresh port of this runtime, with `certs`.
    async fn start<S: Target>(certs: &Certs) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let certs = certs.clone();
        tokio::spawn(async move { S::serve(listener, Some(&certs)).await });
        address
    }

    /// Whether a client of `C` gets an echo from `address` within 5 s.
    async fn echoes<C: Target>(address: SocketAddr, certs: &Certs) -> bool {
        let call = async {
            let caller = C::connect(address, Some(certs)).await?;
            caller
                .call(&bytes::Bytes::from(vec![7; 5000]))
                .await
                .map_err(|e| anyhow::anyhow!(e))
        };
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), call).await,
            Ok(Ok(()))
        )
    }

    #[test]
    fn tls_targets_echo_over_tls_only() {
        let runtime = two_workers();
        let made = RunCerts::make().unwrap();
        let certs = made.certs();
        runtime.block_on(async {
            let mprpc_tls = start::<mprpc::MprpcTls>(certs).await;
            let tonic_tls = start::<tonic::TonicTls>(certs).await;
            let mprpc_plain = start::<mprpc::Mprpc>(certs).await;
            let tonic_plain = start::<tonic::Tonic>(certs).await;
            assert!(echoes::<mprpc::MprpcTls>(mprpc_tls, certs).await);
            assert!(echoes::<tonic::TonicTls>(tonic_tls, certs).await);
            // Each side refuses the other kind: the TLS targets really run over TLS.
            assert!(!echoes::<mprpc::Mprpc>(mprpc_tls, certs).await);
            assert!(!echoes::<mprpc::MprpcTls>(mprpc_plain, certs).await);
            assert!(!echoes::<tonic::Tonic>(tonic_tls, certs).await);
            assert!(!echoes::<tonic::TonicTls>(tonic_plain, certs).await);
            assert!(mprpc::MprpcTls::connect(mprpc_tls, None).await.is_err());
        });
        made.close().unwrap();
    }

    #[test]
    fn tonic_calls_mprpc_only_with_grpc_on() {
        let runtime = two_workers();
        let made = RunCerts::make().unwrap();
        let certs = made.certs();
        runtime.block_on(async {
            let grpc = start::<tonic::TonicOnMprpc>(certs).await;
            let plain = start::<mprpc::Mprpc>(certs).await;
            assert!(echoes::<tonic::TonicOnMprpc>(grpc, certs).await);
            // mprpc's own clients still reach the same port.
            assert!(echoes::<mprpc::Mprpc>(grpc, certs).await);
            // Without `protocols.grpc` the provider does not answer gRPC.
            assert!(!echoes::<tonic::TonicOnMprpc>(plain, certs).await);
        });
        made.close().unwrap();
    }
}
