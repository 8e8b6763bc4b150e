//! Who this process is in ZooKeeper, and how the nodes it makes are guarded.
//!
//! With an identity (`[registry] auth = "user:password"`, from the config, a file or a
//! variable), the session authenticates with ZooKeeper's `digest` scheme, and every node mprpc
//! makes (the root, the service nodes, `providers`, the provider nodes) gets the ACL
//!
//! ```text
//! digest:user:BASE64(SHA1(user:password))  ALL    the provider identity
//! world:anyone                              READ   (or digest:<read_identity> READ)
//! ```
//!
//! so that nobody else can create, change or delete anything under the root. Without one, the
//! nodes are open to all, as in the original mprpc.
//!
//! A **protected** registry (the default with an identity) also refuses to trust what anyone
//! may change: a provider does not register under a root, service or `providers` node whose
//! ACL lets `world:anyone` write, create, delete or administer ([`Guard::check_parents`]), and
//! a consumer skips provider nodes that anyone may change, or that sit under a `providers`
//! node that anyone may add to ([`super::listing`]).
//!
//! The password is never printed: [`ZkAccess`]'s `Debug` shows the user only, and no error
//! message quotes it.

use std::collections::HashSet;
use std::sync::Mutex;

use futures_util::future::join_all;
use zookeeper_client::{
    Acl, Acls, AuthId, Client, CreateMode, CreateOptions, Error as ZkError, Permission,
};

use crate::config::{check_digest_id, check_user_password, ZkAccessConfig};
use crate::registry::RegistryError;
use crate::sync::lock;

/// The permissions that let whoever holds them change a node or what is under it.
const CHANGE: [Permission; 4] = [
    Permission::WRITE,
    Permission::CREATE,
    Permission::DELETE,
    Permission::ADMIN,
];

/// This process's ZooKeeper identity and protection (see the [module](self)).
#[derive(Clone, Default)]
pub struct ZkAccess {
    /// `user:password`, and the user alone for messages.
    identity: Option<(String, String)>,
    protected: bool,
    read_identity: Option<String>,
}

impl std::fmt::Debug for ZkAccess {
    /// The user, never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkAccess")
            .field("user", &self.user())
            .field("protected", &self.protected)
            .field("read_identity", &self.read_identity)
            .finish()
    }
}

impl ZkAccess {
    /// Anonymous, unprotected: nodes open to all (the default).
    pub fn open() -> ZkAccess {
        ZkAccess::default()
    }

    /// Authenticates as `user_password` (`user:password`), protected.
    pub fn with_identity(user_password: &str) -> Result<ZkAccess, RegistryError> {
        let user_password = user_password.trim();
        check_user_password(user_password)
            .map_err(|m| RegistryError::Config(format!("the ZooKeeper identity {m}")))?;
        let user = user_password
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(ZkAccess {
            identity: Some((user_password.to_owned(), user)),
            protected: true,
            read_identity: None,
        })
    }

    /// Sets whether the registry is protected (see the [module](self)).
    pub fn protected(mut self, protected: bool) -> ZkAccess {
        self.protected = protected;
        self
    }

    /// Lets only the consumer identity `digest_id` (`user:BASE64(SHA1(user:password))`), besides
    /// this one, read the nodes this process makes.
    pub fn read_identity(mut self, digest_id: &str) -> Result<ZkAccess, RegistryError> {
        check_digest_id(digest_id).map_err(RegistryError::Config)?;
        self.read_identity = Some(digest_id.to_owned());
        Ok(self)
    }

    /// From the `[registry]` keys, reading the identity from its file or variable.
    pub fn from_config(config: &ZkAccessConfig) -> Result<ZkAccess, RegistryError> {
        let secret = if let Some(secret) = &config.auth {
            Some(secret.clone())
        } else if let Some(path) = &config.auth_file {
            Some(std::fs::read_to_string(path).map_err(|e| {
                RegistryError::Config(format!(
                    "cannot read registry.auth_file {}: {e}",
                    path.display()
                ))
            })?)
        } else if let Some(var) = &config.auth_env {
            Some(std::env::var(var).map_err(|e| {
                RegistryError::Config(format!("cannot read registry.auth_env ${var}: {e}"))
            })?)
        } else {
            None
        };
        let mut access = match secret {
            Some(secret) => ZkAccess::with_identity(&secret)?,
            None => ZkAccess::open(),
        };
        access.protected = config.is_protected();
        if let Some(id) = &config.read_identity {
            access = access.read_identity(id)?;
        }
        Ok(access)
    }

    /// The user of the identity, if there is one.
    pub fn user(&self) -> Option<&str> {
        self.identity.as_ref().map(|(_, user)| user.as_str())
    }

    /// Whether the registry is protected.
    pub fn is_protected(&self) -> bool {
        self.protected
    }

    /// Why this process may not register at all: protected without an identity.
    pub(super) fn may_register(&self) -> Result<(), RegistryError> {
        if self.protected && self.identity.is_none() {
            return Err(RegistryError::Denied(
                "registry.protected is set without an identity: a protected registry takes \
                 registrations only from an authenticated provider (set registry.auth, \
                 registry.auth_file or registry.auth_env)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The credentials for `Connector::with_auth("digest", ...)`.
    pub(super) fn digest_auth(&self) -> Option<&[u8]> {
        self.identity.as_ref().map(|(secret, _)| secret.as_bytes())
    }

    /// Who this is, for messages: "the identity `user`" or "an anonymous session".
    fn who(&self) -> String {
        match self.user() {
            Some(user) => format!("the identity `{user}`"),
            None => "an anonymous session".to_owned(),
        }
    }
}

/// ZooKeeper's digest id of `user` with `password`: `user:BASE64(SHA1(user:password))`, as
/// ACLs name it (`digest:<id>`).
pub fn digest_id(user: &str, password: &str) -> String {
    let sha1 = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{user}:{password}").as_bytes(),
    );
    format!("{user}:{}", base64(sha1.as_ref()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The permissions `acls` give `world:anyone` that let it change the node or its children
/// (write, create, delete, administer); `None` if it may at most read.
pub(super) fn world_may_change(acls: &[Acl]) -> Option<Permission> {
    let world = acls
        .iter()
        .filter(|acl| *acl.auth_id() == AuthId::anyone())
        .fold(Permission::NONE, |p, acl| p | acl.permission());
    let change = CHANGE
        .iter()
        .fold(Permission::NONE, |p, c| p | (world & *c));
    (change != Permission::NONE).then_some(change)
}

/// How the session guards the nodes it makes, and checks the ones it registers under.
pub(super) struct Guard {
    access: ZkAccess,
    /// The registry's root, `""` for `/`.
    root: String,
    /// The ACL of the nodes this process makes; empty when they are open to all.
    acls: Vec<Acl>,
    /// The unprotected nodes already warned about (unprotected registries only).
    warned: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Guard {
    /// The access and the root; not the ACL, which holds the password's hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("access", &self.access)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(super) fn new(access: ZkAccess, root: String) -> Guard {
        let acls = match &access.identity {
            None => Vec::new(),
            Some((secret, _)) => {
                let (user, password) = secret.split_once(':').unwrap_or_default();
                let readers = match &access.read_identity {
                    Some(id) => AuthId::new("digest", id),
                    None => AuthId::anyone(),
                };
                vec![
                    Acl::new(
                        Permission::ALL,
                        AuthId::new("digest", &digest_id(user, password)),
                    ),
                    Acl::new(Permission::READ, readers),
                ]
            }
        };
        Guard {
            access,
            root,
            acls,
            warned: Mutex::default(),
        }
    }

    pub(super) fn access(&self) -> &ZkAccess {
        &self.access
    }

    /// How to create a node of `mode`: with this process's ACL, or open to all.
    pub(super) fn create_options(&self, mode: CreateMode) -> CreateOptions<'_> {
        if self.acls.is_empty() {
            mode.with_acls(Acls::anyone_all())
        } else {
            mode.with_acls(Acls::new(&self.acls))
        }
    }

    /// The nodes mprpc makes above the provider node at `path`: the root (unless it is `/`),
    /// the service and its `providers`.
    fn parents<'p>(&self, path: &'p str) -> Vec<&'p str> {
        path.match_indices('/')
            .map(|(i, _)| &path[..i])
            .filter(|parent| parent.len() >= self.root.len() && !parent.is_empty())
            .collect()
    }

    /// With an identity or protection, checks that no node above `path` that mprpc would
    /// make lets anyone change it: an error if protected, a warning otherwise. Missing nodes
    /// pass (they will be made with this process's ACL).
    pub(super) async fn check_parents(
        &self,
        client: &Client,
        path: &str,
    ) -> Result<(), RegistryError> {
        if self.acls.is_empty() && !self.access.protected {
            return Ok(());
        }
        let parents = self.parents(path);
        let read = join_all(parents.iter().map(|p| client.get_acl(p))).await;
        for (parent, read) in parents.into_iter().zip(read) {
            let acls = match read {
                Ok((acls, _)) => acls,
                Err(ZkError::NoNode) => continue,
                Err(ZkError::NoAuth) => return Err(self.denied("read", parent, parent)),
                Err(e) => {
                    return Err(RegistryError::Unavailable(format!(
                        "cannot read the ACL of {parent}: {e}"
                    )))
                }
            };
            let Some(open) = world_may_change(&acls) else {
                continue;
            };
            let problem = format!("{parent} lets anyone change it (world:anyone may {open})");
            if self.access.protected {
                return Err(RegistryError::Denied(format!(
                    "not registering {path}: {problem}; a protected registry registers only \
                     under nodes that nobody but their owners may change: restrict its ACL \
                     (see docs/REGISTRY.md), or set registry.protected = false"
                )));
            }
            if lock(&self.warned).insert(parent.to_owned()) {
                tracing::warn!(%path, "registering under an unprotected node: {problem}");
            }
        }
        Ok(())
    }

    /// ZooKeeper refused (`NoAuth`) to let this process `verb` `node`, guarded by `owner`.
    pub(super) fn denied(&self, verb: &str, node: &str, owner: &str) -> RegistryError {
        let hint = match self.access.identity {
            Some(_) => "; or registry.auth's password is wrong",
            None => "; set registry.auth",
        };
        RegistryError::Denied(format!(
            "ZooKeeper does not let {} {verb} {node}: {owner} belongs to another identity{hint}",
            self.access.who()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_are_zookeepers() {
        // As ZooKeeper's DigestAuthenticationProvider.generateDigest("super:admin") prints it.
        assert_eq!(
            digest_id("super", "admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
        assert_eq!(digest_id("u", "pw"), "u:BvFaefuhWURhnvpD7ipe45CKTpk=");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn only_what_anyone_may_change_counts() {
        let anyone = |p| Acl::new(p, AuthId::anyone());
        let digest = |p| Acl::new(p, AuthId::new("digest", "u:x"));
        assert_eq!(world_may_change(&[anyone(Permission::READ)]), None);
        assert_eq!(world_may_change(&[digest(Permission::ALL)]), None);
        assert_eq!(world_may_change(&[]), None);
        assert_eq!(
            world_may_change(&[anyone(Permission::ALL)]),
            Some(Permission::WRITE | Permission::CREATE | Permission::DELETE | Permission::ADMIN)
        );
        let p = world_may_change(&[
            digest(Permission::ALL),
            anyone(Permission::READ),
            anyone(Permission::CREATE),
        ]);
        assert_eq!(p, Some(Permission::CREATE));
        assert_eq!(p.unwrap().to_string(), "CREATE");
    }

    #[test]
    fn the_acl_names_the_identity_and_the_readers() {
        let guard = Guard::new(ZkAccess::open(), "/mprpc".into());
        assert!(guard.acls.is_empty());
        let access = ZkAccess::with_identity("prov:s3cret").unwrap();
        let guard = Guard::new(access.clone(), "/mprpc".into());
        assert_eq!(
            guard.acls,
            [
                Acl::new(
                    Permission::ALL,
                    AuthId::new("digest", &digest_id("prov", "s3cret"))
                ),
                Acl::new(Permission::READ, AuthId::anyone()),
            ]
        );
        let reader = digest_id("reader", "pw");
        let guard = Guard::new(access.read_identity(&reader).unwrap(), "/mprpc".into());
        assert_eq!(
            guard.acls[1],
            Acl::new(Permission::READ, AuthId::new("digest", &reader))
        );
        assert_eq!(
            guard.parents("/mprpc/a.B/providers/h:1"),
            ["/mprpc", "/mprpc/a.B", "/mprpc/a.B/providers"]
        );
        let guard = Guard::new(ZkAccess::open(), String::new());
        assert_eq!(
            guard.parents("/a.B/providers/h:1"),
            ["/a.B", "/a.B/providers"]
        );
    }

    #[test]
    fn the_identity_comes_from_a_file_or_a_variable_and_errors_never_quote_it() {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "  prov:s3cret  ").unwrap();
        let config = ZkAccessConfig {
            auth_file: Some(file.path().to_owned()),
            ..ZkAccessConfig::default()
        };
        let access = ZkAccess::from_config(&config).unwrap();
        assert_eq!(access.digest_auth(), Some(&b"prov:s3cret"[..]));
        assert!(access.is_protected());
        let access = ZkAccess::from_config(&ZkAccessConfig {
            protected: Some(false),
            ..config.clone()
        })
        .unwrap();
        assert!(!access.is_protected());

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "s3cret").unwrap();
        let config = ZkAccessConfig {
            auth_file: Some(bad.path().to_owned()),
            ..ZkAccessConfig::default()
        };
        let err = ZkAccess::from_config(&config).unwrap_err().to_string();
        assert!(
            err.contains("user:password") && !err.contains("s3cret"),
            "{err}"
        );

        let config = ZkAccessConfig {
            auth_env: Some("MPRPC_TEST_NO_SUCH_VARIABLE".into()),
            ..ZkAccessConfig::default()
        };
        let err = ZkAccess::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("$MPRPC_TEST_NO_SUCH_VARIABLE"), "{err}");
        let config = ZkAccessConfig {
            auth_file: Some("/nonexistent/zk-auth".into()),
            ..ZkAccessConfig::default()
        };
        let err = ZkAccess::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/zk-auth"), "{err}");
    }

    #[test]
    fn the_password_is_never_shown() {
        let access = ZkAccess::with_identity("prov:s3cret")
            .unwrap()
            .protected(false);
        let guard = Guard::new(access.clone(), "/mprpc".into());
        let shown = format!(
            "{access:?} {guard:?} {}",
            guard.denied("create", "/a", "/b")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("prov"), "{shown}");
        let err = ZkAccess::with_identity("s3cret").unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!access.is_protected());
    }
}
