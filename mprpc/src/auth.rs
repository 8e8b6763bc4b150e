//! Who is calling, and whether they may: bearer tokens and allow lists.
//!
//! A provider with `[server.auth]` authenticates every call before anything else runs: by
//! its bearer token (metadata `authorization: Bearer <token>`), else by the certificate its
//! client presented under mutual TLS. The token is compared by its SHA-256 with the hashes
//! the provider holds, and removed from the metadata, so no handler, layer or log line sees
//! it. The caller is then a [`Principal`], in the request's extensions, and the allow lists
//! decide whether it may call the method. A refusal says `Unauthenticated` or
//! `PermissionDenied`, names the principal (never the token), and is counted in
//! `mprpc_rejected_calls_total`.

use std::path::Path;

use crate::config::{parse_hash, AllowRule, ClientAuth, ServerAuth};
use crate::tls::PeerIdentity;
use crate::{Metadata, Status};

/// The metadata key of the bearer token.
pub const AUTHORIZATION_KEY: &str = "authorization";

/// The longest token looked at; a longer one is refused without being hashed.
const MAX_TOKEN_BYTES: usize = 4096;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// A bearer token, by the name the provider's config gives it.
    Token(String),
    /// A client certificate (mutual TLS).
    Certificate(PeerIdentity),
}

impl Principal {
    /// How the principal is named in messages and logs: the token's name, or the
    /// certificate's subject.
    pub fn name(&self) -> &str {
        match self {
            Principal::Token(name) => name,
            Principal::Certificate(identity) => identity.subject(),
        }
    }

    /// Whether an allow list entry names this principal.
    fn is(&self, entry: &str) -> bool {
        match self {
            Principal::Token(name) => name == entry,
            Principal::Certificate(identity) => identity.is(entry),
        }
    }
}

/// Why the auth settings could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(String);

/// A provider's tokens and rules, made once from its config.
#[derive(Debug)]
pub(crate) struct Auth {
    /// Token names and the SHA-256 of each token.
    tokens: Vec<(String, [u8; 32])>,
    rules: Vec<AllowRule>,
}

impl Auth {
    /// The tokens of the config and of its `tokens_file`, and the rules.
    pub(crate) fn new(config: &ServerAuth) -> Result<Auth, AuthError> {
        let mut tokens: Vec<(String, [u8; 32])> = config
            .tokens
            .iter()
            .filter_map(|(name, hash)| Some((name.clone(), parse_hash(hash)?)))
            .collect();
        if let Some(path) = &config.tokens_file {
            tokens.extend(read_tokens_file(path)?);
        }
        Ok(Auth {
            tokens,
            rules: config.allow.clone(),
        })
    }

    /// Who is calling: the bearer token's name (the token is removed from `metadata`), or
    /// the client certificate's identity.
    pub(crate) fn authenticate(
        &self,
        metadata: &mut Metadata,
        identity: Option<&PeerIdentity>,
    ) -> Result<Principal, Status> {
        let Some(value) = metadata.remove(AUTHORIZATION_KEY) else {
            return match identity {
                Some(identity) => Ok(Principal::Certificate(identity.clone())),
                None => Err(Status::unauthenticated(
                    "this provider needs a bearer token (metadata `authorization: Bearer ...`) \
                     or a client certificate",
                )),
            };
        };
        let token = value.strip_prefix("Bearer ").ok_or_else(|| {
            Status::unauthenticated("the `authorization` metadata is not `Bearer <token>`")
        })?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Status::unauthenticated("the bearer token is not valid"));
        }
        let hash = sha256(token.as_bytes());
        // Every entry is compared in full, found or not, so the time taken tells nothing.
        let mut found = None;
        for (name, known) in &self.tokens {
            if same_hash(known, &hash) && found.is_none() {
                found = Some(name);
            }
        }
        match found {
            Some(name) => Ok(Principal::Token(name.clone())),
            None => Err(Status::unauthenticated("the bearer token is not valid")),
        }
    }

    /// Whether `principal` may call `service`/`method`.
    pub(crate) fn authorize(
        &self,
        principal: &Principal,
        service: &str,
        method: &str,
    ) -> Result<(), Status> {
        let mut rules = self
            .rules
            .iter()
            .filter(|r| r.service == service && r.method.as_deref().is_none_or(|m| m == method))
            .peekable();
        if rules.peek().is_none() {
            return Ok(());
        }
        let allowed = rules.any(|r| r.principals.iter().any(|p| principal.is(p)));
        if allowed {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "`{}` may not call {service}/{method}",
                principal.name()
            )))
        }
    }
}

/// A consumer's bearer token, as sent: `Bearer <token>`. Its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// The token of `[client.auth]`, from the config, its file or its variable.
    pub(crate) fn new(config: &ClientAuth) -> Result<BearerToken, AuthError> {
        let token = if let Some(token) = &config.token {
            token.clone()
        } else if let Some(path) = &config.token_file {
            std::fs::read_to_string(path).map_err(|e| {
                AuthError(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?
        } else if let Some(var) = &config.token_env {
            std::env::var(var)
                .map_err(|e| AuthError(format!("cannot read the token from ${var}: {e}")))?
        } else {
            return Err(AuthError("[client.auth] names no token".to_owned()));
        };
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace)
        {
            return Err(AuthError(format!(
                "the bearer token must be 1 to {MAX_TOKEN_BYTES} bytes without spaces"
            )));
        }
        Ok(BearerToken(format!("Bearer {token}")))
    }

    /// Puts the token in a call's metadata.
    pub(crate) fn add_to(&self, metadata: &mut Metadata) {
        metadata.insert(AUTHORIZATION_KEY, self.0.clone());
    }
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Whether two hashes are equal, comparing every byte whatever the first difference, so the
/// time taken tells nothing about where they differ.
pub(crate) fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a token is written in `[server.auth] tokens`: `sha256:<hex>`.
pub fn token_hash(token: &str) -> String {
    let hex: String = sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The tokens of a `tokens_file`: `name sha256:<hex>` per line, `#` comments.
fn read_tokens_file(path: &Path) -> Result<Vec<(String, [u8; 32])>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AuthError(format!(
            "cannot read the tokens file {}: {e}",
            path.display()
        ))
    })?;
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once(char::is_whitespace)
            .and_then(|(name, hash)| Some((name.to_owned(), parse_hash(hash)?)));
        // The line is not quoted back: it might hold a token pasted by mistake.
        let entry = parsed.ok_or_else(|| {
            AuthError(format!(
                "the tokens file {} line {}: expected `name sha256:<64 hex digits>`",
                path.display(),
                n + 1
            ))
        })?;
        tokens.push(entry);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let mut config = ServerAuth::default();
        config.tokens.insert("billing".into(), token_hash("s3cret"));
        config.allow.push(AllowRule {
            service: "pkg.Users".into(),
            method: Some("Delete".into()),
            principals: vec!["ops".into(), "CN=admin".into()],
        });
        Auth::new(&config).unwrap()
    }

    #[test]
    fn a_known_token_is_its_name_and_is_removed() {
        let mut m = Metadata::new();
        m.insert(AUTHORIZATION_KEY, "Bearer s3cret");
        let who = auth().authenticate(&mut m, None).unwrap();
        assert_eq!(who, Principal::Token("billing".into()));
        assert_eq!(m.get(AUTHORIZATION_KEY), None);
    }

    #[test]
    fn wrong_missing_or_huge_tokens_are_unauthenticated_and_not_echoed() {
        for value in [
            "Bearer nope",
            "Basic czNjcmV0",
            &format!("Bearer {}", "x".repeat(1 << 20)),
        ] {
            let mut m = Metadata::new();
            m.insert(AUTHORIZATION_KEY, value);
            let e = auth().authenticate(&mut m, None).unwrap_err();
            assert_eq!(e.code(), crate::Code::Unauthenticated);
            assert!(!e.message().contains("nope") && !e.message().contains("czNj"));
        }
        let e = auth().authenticate(&mut Metadata::new(), None).unwrap_err();
        assert_eq!(e.code(), crate::Code::Unauthenticated);
        let id = PeerIdentity::new("CN=admin", vec![]);
        let who = auth()
            .authenticate(&mut Metadata::new(), Some(&id))
            .unwrap();
        assert_eq!(who.name(), "CN=admin");
    }

    #[test]
    fn allow_lists_bind_only_the_methods_they_name() {
        let a = auth();
        let billing = Principal::Token("billing".into());
        assert!(a.authorize(&billing, "pkg.Users", "Get").is_ok());
        let denied = a.authorize(&billing, "pkg.Users", "Delete").unwrap_err();
        assert_eq!(denied.code(), crate::Code::PermissionDenied);
        assert_eq!(denied.message(), "`billing` may not call pkg.Users/Delete");
        let admin = Principal::Certificate(PeerIdentity::new("CN=admin", vec![]));
        assert!(a.authorize(&admin, "pkg.Users", "Delete").is_ok());
    }

    #[test]
    fn hashes_read_back() {
        let h = token_hash("abc");
        assert_eq!(
            h,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hash(&h), Some(sha256(b"abc")));
        assert_eq!(parse_hash("sha256:xyz"), None);
    }
}
