//! The `[registry]` section: where providers are registered and found.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::{check_host_port, Check};
use super::toml_error::toml_key;
use super::zk_access::ZkAccessConfig;
use super::ConfigError;

/// Where providers are registered and found.
///
/// In TOML the variant is chosen by `kind`, which is required when `[registry]` is present:
/// `kind = "static"` takes `services`; `kind = "zookeeper"` takes `connect` (required),
/// `root`, `session_timeout`, and the keys of [`ZkAccessConfig`] (`auth`, `auth_file`,
/// `auth_env`, `protected`, `read_identity`). Without a `[registry]` table the registry is an
/// empty static list.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RawRegistry")]
pub enum RegistryConfig {
    /// A fixed list of provider addresses per fully qualified service name. Needs nothing
    /// installed; providers do not register anywhere.
    Static {
        /// `"package.Service" = ["host:port", ...]`. Default: empty.
        services: BTreeMap<String, Vec<String>>,
    },
    /// A ZooKeeper ensemble.
    Zookeeper {
        /// Connect string: `host:port[,host:port...]`. Required.
        connect: String,
        /// Path under which services are registered: starts with `/`, no trailing `/` (except
        /// the root `/` itself), no empty, `.` or `..` component. Default `/mprpc`.
        root: String,
        /// Session timeout, more than zero. Default 10 s.
        session_timeout: Duration,
        /// Digest authentication and node protection (flat keys of `[registry]`). Default:
        /// anonymous, nodes open to all.
        access: ZkAccessConfig,
        /// The original C++ mprpc's layout too: providers also keep `/{Service}/{Method}`
        /// (data `host:port`), so that the original's callers find them. Default false in a
        /// TOML file, true with the original's `key=value` file.
        legacy_layout: bool,
    },
}

pub(super) fn default_zk_root() -> String {
    "/mprpc".to_owned()
}

pub(super) fn default_zk_session_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::Static {
            services: BTreeMap::new(),
        }
    }
}

/// The `[registry]` table as written, before `kind` picks the variant.
///
/// serde's internally tagged enums buffer the table and lose the position of every error in
/// it; a plain struct keeps them, so a wrong type in `registry.connect` is reported at its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    kind: RegistryKind,
    services: Option<BTreeMap<String, Vec<String>>>,
    connect: Option<String>,
    root: Option<String>,
    #[serde(default, with = "humantime_serde")]
    session_timeout: Option<Duration>,
    auth: Option<String>,
    auth_file: Option<PathBuf>,
    auth_env: Option<String>,
    protected: Option<bool>,
    read_identity: Option<String>,
    legacy_layout: Option<bool>,
}

impl RawRegistry {
    /// The keys of [`ZkAccessConfig`], taken out of the table.
    fn take_access(&mut self) -> ZkAccessConfig {
        ZkAccessConfig {
            auth: self.auth.take(),
            auth_file: self.auth_file.take(),
            auth_env: self.auth_env.take(),
            protected: self.protected.take(),
            read_identity: self.read_identity.take(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RegistryKind {
    Static,
    Zookeeper,
}

impl TryFrom<RawRegistry> for RegistryConfig {
    type Error = String;

    fn try_from(mut raw: RawRegistry) -> Result<Self, String> {
        let access = raw.take_access();
        match raw.kind {
            RegistryKind::Static => {
                let stray = [
                    ("connect", raw.connect.is_some()),
                    ("root", raw.root.is_some()),
                    ("session_timeout", raw.session_timeout.is_some()),
                    ("legacy_layout", raw.legacy_layout.is_some()),
                ];
                let stray = stray
                    .iter()
                    .filter_map(|(name, present)| present.then_some(*name))
                    .chain(access.keys_set())
                    .next();
                if let Some(name) = stray {
                    return Err(format!(
                        "unknown field `{name}`, kind `static` takes only `services`"
                    ));
                }
                Ok(RegistryConfig::Static {
                    services: raw.services.unwrap_or_default(),
                })
            }
            RegistryKind::Zookeeper => {
                if raw.services.is_some() {
                    return Err(
                        "unknown field `services`, kind `zookeeper` takes `connect`, \
                                `root`, `session_timeout`, `auth`, `auth_file`, `auth_env`, \
                                `protected`, `read_identity` and `legacy_layout`"
                            .to_owned(),
                    );
                }
                let connect = raw.connect.ok_or("missing field `connect`")?;
                Ok(RegistryConfig::Zookeeper {
                    connect,
                    root: raw.root.unwrap_or_else(default_zk_root),
                    session_timeout: raw
                        .session_timeout
                        .unwrap_or_else(default_zk_session_timeout),
                    access,
                    legacy_layout: raw.legacy_layout.unwrap_or(false),
                })
            }
        }
    }
}

impl RegistryConfig {
    /// Checks every address, and ZooKeeper's root and timeout.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        match self {
            RegistryConfig::Static { services } => {
                for (service, addresses) in services {
                    let key = format!("registry.services.{}", toml_key(service));
                    check.that(!service.is_empty(), &key, "empty service name")?;
                    for (i, address) in addresses.iter().enumerate() {
                        check.host_port(address, false, &format!("{key}[{i}]"))?;
                    }
                }
            }
            RegistryConfig::Zookeeper {
                connect,
                root,
                session_timeout,
                access,
                ..
            } => {
                check.that(
                    !connect.is_empty(),
                    "registry.connect",
                    "empty connect string",
                )?;
                for server in connect.split(',') {
                    check_host_port(server, false).map_err(|m| {
                        check.invalid("registry.connect", format!("in `{connect}`: {m}"))
                    })?;
                }
                check_zk_root(root).map_err(|m| check.invalid("registry.root", m))?;
                check.positive(*session_timeout, "registry.session_timeout")?;
                access.validate(check)?;
            }
        }
        Ok(())
    }
}

/// Checks a ZooKeeper path: absolute, no trailing `/` (but `/` itself is fine), no empty,
/// `.` or `..` component.
fn check_zk_root(root: &str) -> Result<(), String> {
    if !root.starts_with('/') {
        return Err(format!("`{root}` must start with `/`"));
    }
    if root == "/" {
        return Ok(());
    }
    if root.ends_with('/') {
        return Err(format!("`{root}` must not end with `/`"));
    }
    if root[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!("`{root}` has an empty, `.` or `..` component"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{invalid_key, parse_err};
    use crate::config::Config;

    #[test]
    fn zookeeper_defaults_and_empty_sections() {
        let c = Config::from_toml_str(
            "[server]\n[client]\n[logging]\n[registry]\nkind = \"zookeeper\"\nconnect = \"zk:2181\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.registry,
            RegistryConfig::Zookeeper {
                connect: "zk:2181".into(),
                root: "/mprpc".into(),
                session_timeout: Duration::from_secs(10),
                access: ZkAccessConfig::default(),
                legacy_layout: false,
            }
        );
        let c = Config::from_toml_str("[registry]\nkind = \"static\"\n", "t.toml").unwrap();
        assert_eq!(c.registry, RegistryConfig::default());
    }

    #[test]
    fn registry_errors_point_at_the_field() {
        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zookeeper\"\nconnect = 5\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(3), Some("registry.connect")));
        assert!(message.contains("expected a string"), "{message}");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zk\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(2), Some("registry.kind")));

        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"zookeeper\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(1), Some("registry.connect")));
        assert_eq!(message, "missing field `connect`");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nservices = {}\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(1), Some("registry.kind")));

        let (line, key, message) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"static\"\n\nconnect = \"zk:1\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(4), Some("registry.connect")));
        assert!(message.starts_with("unknown field `connect`"), "{message}");

        let (line, key, _) = parse_err(Config::from_toml_str(
            "[registry]\nkind = \"static\"\n[registry.services]\n\"a.B\" = [\"h:1\", 3]\n",
            "t.toml",
        ));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("registry.services.\"a.B\"[1]"))
        );
    }

    #[test]
    fn static_registry_bad_address_names_key() {
        let text = "[registry]\nkind = \"static\"\n[registry.services]\n\
                    \"fixbug.UserServiceRpc\" = [\"127.0.0.1:8000\", \"localhost\"]\n";
        let err = Config::from_toml_str(text, "c.toml").unwrap_err();
        assert!(err.to_string().contains("localhost"), "{err}");
        assert_eq!(
            invalid_key(Err(err)),
            "registry.services.\"fixbug.UserServiceRpc\"[1]"
        );
        for bad in [
            "h:0",
            "h:x",
            "h:70000",
            "::1:80",
            "300.1.1.1:80",
            "a b:80",
            ":80",
        ] {
            let text = format!("[registry]\nkind = \"static\"\nservices = {{ s = [\"{bad}\"] }}\n");
            let err = Config::from_toml_str(&text, "c.toml").unwrap_err();
            assert_eq!(invalid_key(Err(err)), "registry.services.s[0]", "{bad}");
        }
        let text = "[registry]\nkind = \"static\"\nservices = { s = [\"[::1]:80\", \
                    \"host-1.example.com:443\", \"10.0.0.1:1\", \"node_2:9\"] }\n";
        Config::from_toml_str(text, "c.toml").unwrap();
    }
}
