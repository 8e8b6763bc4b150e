//! Authentication and authorisation, the outermost built-in: with `[server.auth]`, every call
//! names its caller (a bearer token, or the client certificate under mutual TLS) and must be
//! on the allow lists for its method, or it is refused (`Unauthenticated`,
//! `PermissionDenied`), counted as rejected, and goes no further. The caller's
//! [`Principal`] is put in the request's extensions. See [`crate::auth`].

use super::stack::Call;
use crate::auth::{Auth, Principal};
use crate::metrics::Metrics;
use crate::tls::PeerIdentity;
use crate::Status;

/// Authenticates and authorises `call`, or refuses it.
pub(super) fn check(auth: &Auth, metrics: &Metrics, call: &mut Call) -> Result<(), Status> {
    let request = &mut call.request;
    let identity = request.extensions().get::<PeerIdentity>().cloned();
    let admitted = auth
        .authenticate(request.metadata_mut(), identity.as_ref())
        .and_then(|principal| {
            auth.authorize(&principal, call.service.name(), call.method)?;
            Ok(principal)
        });
    match admitted {
        Ok(principal) => {
            request.extensions_mut().insert::<Principal>(principal);
            Ok(())
        }
        Err(status) => {
            metrics.rejected(status.code());
            tracing::debug!(
                service = call.service.name(),
                method = call.method,
                "refused: {status}"
            );
            Err(status)
        }
    }
}
