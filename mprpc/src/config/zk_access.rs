//! The keys of a ZooKeeper `[registry]` that say who mprpc is in ZooKeeper and how it guards
//! the nodes it makes: `auth`, `auth_file`, `auth_env`, `protected` and `read_identity`.
//!
//! The password is never printed: this type's `Debug` shows where it comes from, not what it
//! is, and no error message quotes it. It is read from its file or variable when the registry
//! is built ([`crate::registry::from_config`]), not here.

use std::path::PathBuf;

use super::check::Check;
use super::ConfigError;

/// ZooKeeper digest authentication and node protection for `kind = "zookeeper"`.
///
/// Without any of its keys, mprpc connects anonymously and its nodes are open to all, as in
/// the original mprpc.
#[derive(Clone, Default, PartialEq)]
pub struct ZkAccessConfig {
    /// `"user:password"`: the digest identity mprpc authenticates as (prefer a file or a
    /// variable: a config file is often shared).
    pub auth: Option<String>,
    /// A file holding `user:password` (surrounding whitespace ignored).
    pub auth_file: Option<PathBuf>,
    /// An environment variable holding `user:password`.
    pub auth_env: Option<String>,
    /// Whether the registry is protected: providers register only under nodes that nobody but
    /// their owners may change, and consumers refuse provider nodes that anyone may change.
    /// Default: true when an identity is set (`auth`, `auth_file` or `auth_env`).
    pub protected: Option<bool>,
    /// The digest id (`user:BASE64(SHA1(user:password))`, as ZooKeeper writes it) of the
    /// consumers' identity, the only one besides the provider's that may read the nodes mprpc
    /// makes. Default: anyone may read them.
    pub read_identity: Option<String>,
}

impl std::fmt::Debug for ZkAccessConfig {
    /// Where the identity comes from; never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkAccessConfig")
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("auth_file", &self.auth_file)
            .field("auth_env", &self.auth_env)
            .field("protected", &self.protected)
            .field("read_identity", &self.read_identity)
            .finish()
    }
}

impl ZkAccessConfig {
    /// Whether an identity is configured (`auth`, `auth_file` or `auth_env`).
    pub fn has_identity(&self) -> bool {
        self.auth.is_some() || self.auth_file.is_some() || self.auth_env.is_some()
    }

    /// Whether the registry is protected: `protected`, or by default whether an identity is
    /// configured.
    pub fn is_protected(&self) -> bool {
        self.protected.unwrap_or_else(|| self.has_identity())
    }

    /// The names of the keys that are set, for the `kind = "static"` check.
    pub(super) fn keys_set(&self) -> impl Iterator<Item = &'static str> {
        [
            ("auth", self.auth.is_some()),
            ("auth_file", self.auth_file.is_some()),
            ("auth_env", self.auth_env.is_some()),
            ("protected", self.protected.is_some()),
            ("read_identity", self.read_identity.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
    }

    /// At most one source of the identity; `auth` of the form `user:password`; a
    /// `read_identity` of the digest form, and only with an identity. No message quotes `auth`.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let sources = [
            self.auth.is_some(),
            self.auth_file.is_some(),
            self.auth_env.is_some(),
        ];
        check.that(
            sources.iter().filter(|s| **s).count() <= 1,
            "registry.auth",
            "set at most one of `auth`, `auth_file` and `auth_env`",
        )?;
        if let Some(auth) = &self.auth {
            if let Err(m) = check_user_password(auth) {
                return Err(check.invalid("registry.auth", m));
            }
        }
        if let Some(id) = &self.read_identity {
            check_digest_id(id).map_err(|m| check.invalid("registry.read_identity", m))?;
            check.that(
                self.has_identity(),
                "registry.read_identity",
                "needs an identity for mprpc itself (`auth`, `auth_file` or `auth_env`): \
                 without one the nodes it makes are open to all",
            )?;
        }
        Ok(())
    }
}

/// Checks a `user:password`, in a message that never quotes it.
pub(crate) fn check_user_password(text: &str) -> Result<(), String> {
    let ok = match text.split_once(':') {
        Some((user, password)) => {
            !user.is_empty()
                && !password.is_empty()
                && !user.contains(char::is_whitespace)
                && !text.contains(['\n', '\r'])
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(
            "must be `user:password`, both non-empty, the user without spaces \
             (the value is not shown)"
                .to_owned(),
        )
    }
}

/// Checks ZooKeeper's digest id, `user:BASE64(SHA1(user:password))`.
pub(crate) fn check_digest_id(text: &str) -> Result<(), String> {
    let hash_ok = |hash: &str| {
        hash.len() == 28
            && hash.ends_with('=')
            && hash[..27]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    match text.split_once(':') {
        Some((user, hash)) if !user.is_empty() && hash_ok(hash) => Ok(()),
        _ => Err(format!(
            "`{text}` must be ZooKeeper's digest id `user:BASE64(SHA1(user:password))`, as \
             `printf %s user:password | openssl dgst -binary -sha1 | openssl base64` prints the \
             part after `user:`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::invalid_key;
    use crate::config::{Config, RegistryConfig};

    fn zk(extra: &str) -> Result<Config, ConfigError> {
        let text = format!("[registry]\nkind = \"zookeeper\"\nconnect = \"zk:2181\"\n{extra}");
        Config::from_toml_str(&text, "t.toml")
    }

    fn access(config: Config) -> ZkAccessConfig {
        match config.registry {
            RegistryConfig::Zookeeper { access, .. } => access,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identity_and_protection_parse() {
        let a = access(zk("").unwrap());
        assert_eq!(a, ZkAccessConfig::default());
        assert!(!a.is_protected());

        let a = access(zk("auth = \"prov:s3cret\"\n").unwrap());
        assert_eq!(a.auth.as_deref(), Some("prov:s3cret"));
        assert!(a.is_protected());

        let a = access(zk("auth_env = \"ZK_AUTH\"\nprotected = false\n").unwrap());
        assert!(!a.is_protected());
        let a = access(zk("protected = true\n").unwrap());
        assert!(a.is_protected() && !a.has_identity());

        let id = "reader:BvFaefuhWURhnvpD7ipe45CKTpk=";
        let a = access(
            zk(&format!(
                "auth_file = \"/run/zk\"\nread_identity = \"{id}\"\n"
            ))
            .unwrap(),
        );
        assert_eq!(a.read_identity.as_deref(), Some(id));
        assert_eq!(a.auth_file, Some(PathBuf::from("/run/zk")));
    }

    #[test]
    fn bad_identities_name_the_key_and_never_the_password() {
        let err = zk("auth = \"prov:s3cret\"\nauth_env = \"X\"\n").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(invalid_key(Err(err)), "registry.auth");

        for bad in ["s3cret", ":s3cret", "prov:", "my user:s3cret"] {
            let err = zk(&format!("auth = \"{bad}\"\n")).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert_eq!(invalid_key(Err(err)), "registry.auth", "{bad}");
        }

        for bad in [
            "reader",
            "reader:s3cret",
            "reader:BvFaefuhWURhnvpD7ipe45CKTpk",
        ] {
            let text = format!("auth = \"p:w\"\nread_identity = \"{bad}\"\n");
            assert_eq!(invalid_key(zk(&text)), "registry.read_identity", "{bad}");
        }
        let text = "read_identity = \"reader:BvFaefuhWURhnvpD7ipe45CKTpk=\"\n";
        assert_eq!(invalid_key(zk(text)), "registry.read_identity");

        let err = Config::from_toml_str("[registry]\nkind = \"static\"\nauth = \"p:w\"\n", "t")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `auth`"), "{err}");
        assert!(!err.to_string().contains("p:w"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = zk("auth = \"prov:s3cret\"\n").unwrap();
        let shown = format!("{config:?} {:?}", config.registry);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
