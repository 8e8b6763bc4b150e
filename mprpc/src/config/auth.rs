//! The `[server.auth]` and `[client.auth]` sections: bearer tokens and who may call what.
//!
//! A provider never holds a token in clear: it keeps each token's SHA-256 (`sha256:<hex>`,
//! as `printf %s "$TOKEN" | sha256sum` prints it), under a name that the allow lists and the
//! logs use instead. A consumer's token is read from the config, a file or an environment
//! variable, and is never printed: its `Debug` shows where it came from, not what it is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::Check;
use super::ConfigError;

/// A provider's authentication and authorisation settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerAuth {
    /// Accepted bearer tokens: name → `sha256:<64 hex digits>` of the token.
    pub tokens: BTreeMap<String, String>,
    /// More tokens, one per line in a file: `name sha256:<hex>`; `#` starts a comment.
    pub tokens_file: Option<PathBuf>,
    /// Who may call what. A call to a method that no rule names is allowed to every caller
    /// that authenticated; one that a rule names, only to the principals of its rules.
    pub allow: Vec<AllowRule>,
}

/// One allow-list rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// The fully qualified service, `package.Service`.
    pub service: String,
    /// One method; every method of the service when omitted.
    #[serde(default)]
    pub method: Option<String>,
    /// Token names, and certificate identities (`CN=name`, a common name, or `DNS:name`).
    pub principals: Vec<String>,
}

/// Where a consumer's bearer token comes from: exactly one of the three.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAuth {
    /// The token itself (prefer a file or a variable: a config file is often shared).
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token.
    pub token_env: Option<String>,
}

impl std::fmt::Debug for ClientAuth {
    /// Where the token comes from; never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .finish()
    }
}

impl ServerAuth {
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        for (name, hash) in &self.tokens {
            check.that(
                parse_hash(hash).is_some(),
                &format!("server.auth.tokens.{name}"),
                "must be `sha256:` and 64 hex digits (the token's SHA-256, not the token)",
            )?;
        }
        for rule in &self.allow {
            check.that(
                !rule.principals.is_empty(),
                "server.auth.allow",
                "a rule needs at least one principal",
            )?;
        }
        Ok(())
    }
}

impl ClientAuth {
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let sources = [
            self.token.is_some(),
            self.token_file.is_some(),
            self.token_env.is_some(),
        ];
        check.that(
            sources.iter().filter(|s| **s).count() == 1,
            "client.auth",
            "set exactly one of `token`, `token_file` and `token_env`",
        )
    }
}

/// The 32 bytes of a `sha256:<hex>` token hash.
pub(crate) fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.trim().strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
