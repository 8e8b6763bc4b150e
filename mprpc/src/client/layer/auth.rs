//! The consumer's bearer token: with `[client.auth]`, every call carries
//! `authorization: Bearer <token>` in its metadata (a provider with `[server.auth]` checks it
//! and removes it). A token that could not be read fails every call with the reason, which
//! names where the token was to come from, never the token. See [`crate::auth`].

use crate::auth::BearerToken;
use crate::{Body, Request, Status};

/// Adds the channel's token to `request`, or says why there is none to add.
pub(super) fn add_token(
    token: &Result<Option<BearerToken>, Status>,
    request: &mut Request<Body>,
) -> Result<(), Status> {
    match token {
        Ok(Some(token)) => token.add_to(request.metadata_mut()),
        Ok(None) => {}
        Err(status) => return Err(status.clone()),
    }
    Ok(())
}
