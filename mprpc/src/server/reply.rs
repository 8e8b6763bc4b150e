//! Response metadata set by a handler.
//!
//! A handler returns a bare message, so the metadata it wants to send back goes through
//! [`reply_metadata`], in the manner of Dubbo's `RpcContext` and gRPC-Go's `grpc.SetHeader`:
//! it writes to a slot that belongs to the call the current task is running, and the
//! provider sends the slot's pairs with the reply, or with the failure. Layers set response
//! metadata on the [`Response`] (or [`Status`]) they return instead, and see what the handler
//! set there.

use std::cell::RefCell;
use std::future::Future;

use crate::{Body, Metadata, Response, Status};

tokio::task_local! {
    static REPLY: RefCell<Metadata>;
}

/// Runs `f` on the response metadata of the call this task is handling: what `f` adds goes
/// to the caller with the reply (or with the failure). `None` outside a handler (and in a
/// task the handler spawned: the slot belongs to the handler's own task).
///
/// ```
/// # async fn login() -> Result<(), mprpc::Status> {
/// mprpc::server::reply_metadata(|m| m.insert("session-expires", "3600"));
/// # Ok(()) }
/// ```
pub fn reply_metadata<R>(f: impl FnOnce(&mut Metadata) -> R) -> Option<R> {
    REPLY.try_with(|slot| f(&mut slot.borrow_mut())).ok()
}

/// Runs a handler with a response-metadata slot, and puts what it set into its outcome.
pub(crate) async fn run_handler(
    handler: impl Future<Output = Result<Body, Status>>,
) -> Result<Response<Body>, Status> {
    let (metadata, outcome) = REPLY
        .scope(RefCell::new(Metadata::new()), async {
            let outcome = handler.await;
            (REPLY.with(RefCell::take), outcome)
        })
        .await;
    match outcome {
        Ok(body) => Ok(Response::from_parts(metadata, body)),
        Err(mut status) => {
            status.metadata_mut().extend(metadata);
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_a_handler_sets_comes_back_with_its_outcome() {
        assert_eq!(reply_metadata(|_| ()), None);
        let ok = run_handler(async {
            reply_metadata(|m| m.append("k", "1")).unwrap();
            Ok(Body::from_static(b"x"))
        })
        .await
        .unwrap();
        assert_eq!(ok.metadata().get("k"), Some("1"));
        let failed = run_handler(async {
            reply_metadata(|m| m.append("why", "limit")).unwrap();
            Err(Status::resource_exhausted("slow down"))
        })
        .await
        .unwrap_err();
        assert_eq!(failed.metadata().get("why"), Some("limit"));
    }
}
