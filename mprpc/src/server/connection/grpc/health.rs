//! `grpc.health.v1.Health/Check`, the standard health service load balancers and
//! orchestrators ask: `SERVING` for the provider as a whole (`service` empty) and for each
//! hosted service, `NOT_SERVING` while it shuts down, `NotFound` for a service it does not
//! host (as the protocol says). `Watch` (a stream) is not served.

use bytes::Bytes;
use prost::Message;

use super::super::Connection;
use crate::Status;

/// The health service's name.
pub(super) const SERVICE: &str = "grpc.health.v1.Health";

/// `HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `HealthCheckResponse`: `status` 1 SERVING, 2 NOT_SERVING.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// Answers `method` of the health service.
pub(super) fn check(conn: &Connection, method: &str, message: Bytes) -> Result<Bytes, Status> {
    if method != "Check" {
        return Err(Status::unimplemented(format!(
            "{SERVICE}/{method} is not served (Check is)"
        )));
    }
    let request = HealthCheckRequest::decode(message)
        .map_err(|e| Status::invalid_argument(format!("not a HealthCheckRequest: {e}")))?;
    if !request.service.is_empty() && conn.shared.router.get(&request.service).is_none() {
        return Err(Status::not_found(format!(
            "no service `{}` on this provider",
            crate::server::dispatch::quote(&request.service)
        )));
    }
    let status = if *conn.shutdown.borrow() {
        NOT_SERVING
    } else {
        SERVING
    };
    Ok(Bytes::from(HealthCheckResponse { status }.encode_to_vec()))
}
