//! The `[server.protocols]` section: which protocols a provider answers on its port, beside
//! mprpc's own (always on).

use serde::Deserialize;

/// The protocols served on the provider's port besides mprpc's own; each is told apart by a
/// connection's first bytes (`docs/PROTOCOL.md`, "Protocol detection").
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolsConfig {
    /// The original C++ mprpc's requests (a little-endian header size, an `RpcHeader`, the
    /// arguments; the reply is the bare response and a half-close), so that the original's
    /// callers can call this provider. Default false in a TOML file; a provider started with
    /// the original's `key=value` file serves it.
    pub legacy: bool,
    /// HTTP/1.1 with JSON bodies: `POST /package.Service/Method` with the request as JSON
    /// returns the reply as JSON (`curl -d '{"name": "..."}' host:port/fixbug.UserServiceRpc/Login`),
    /// `GET /` lists the services. Default false: it widens what the port answers.
    pub http: bool,
    /// gRPC (HTTP/2, `application/grpc`): unary calls of every hosted service, with
    /// `grpc-timeout` as the deadline, headers as metadata, the status in trailers, and
    /// `grpc.health.v1.Health/Check` and server reflection, so that any gRPC client (Go,
    /// Java, Python, `grpcurl`) can call the provider. Default false: it widens what the port answers.
    pub grpc: bool,
}
