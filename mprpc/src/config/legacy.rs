//! The original C++ mprpc's `key=value` format: telling it from TOML, and reading it into a
//! [`Config`]. The format and its rules are described in the module documentation of
//! [`crate::config`] and on [`Config::from_legacy_str`].

use std::collections::BTreeMap;

use super::check::check_host_port;
use super::registry::{default_zk_root, default_zk_session_timeout};
use super::{Config, ConfigError, RegistryConfig, ZkAccessConfig};

/// The keys of the legacy format.
const LEGACY_KEYS: [&str; 4] = [
    "rpcserverip",
    "rpcserverport",
    "zookeeperip",
    "zookeeperport",
];

/// Whether `text` is in the legacy format: its first line that is neither blank nor a
/// comment holds a `=` and one of [`LEGACY_KEYS`] before it.
pub(super) fn looks_legacy(text: &str) -> bool {
    let first = text
        .trim_start_matches('\u{feff}')
        .split('\n')
        .map(trim_legacy)
        .find(|line| !line.is_empty() && !line.starts_with('#'));
    matches!(
        first.and_then(|line| line.split_once('=')),
        Some((key, _)) if LEGACY_KEYS.contains(&trim_legacy(key))
    )
}

impl Config {
    /// Parses and validates a file in the original mprpc's `key=value` format. `origin`
    /// names the text in error messages.
    ///
    /// Rules, each a fix of a defect of the original reader:
    /// - a `\r` before the line break is dropped, and spaces and tabs around keys and values
    ///   are trimmed;
    /// - a line whose first non-blank character is `#` is a comment, and a `#` after a space
    ///   or tab starts a comment at the end of a line;
    /// - a line without `=`, a key other than `rpcserverip`, `rpcserverport`, `zookeeperip`,
    ///   `zookeeperport`, a key given twice, or an empty value is an error;
    /// - a port must be a number in 1..=65535 (0, "any free port", is allowed for
    ///   `rpcserverport` only);
    /// - the keys come in pairs (`rpcserverip` with `rpcserverport`, `zookeeperip` with
    ///   `zookeeperport`): one without the other is an error, and at least one pair is needed.
    ///
    /// `rpcserverip:rpcserverport` becomes `server.address` (an IPv6 address is put in
    /// brackets), where the provider also answers the original's protocol
    /// (`server.protocols.legacy`); `zookeeperip:zookeeperport` becomes a ZooKeeper `registry` with the default
    /// root and session timeout. Without ZooKeeper keys the registry is an empty static list.
    pub fn from_legacy_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let entries = legacy_entries(text, origin)?;
        let server = legacy_pair(&entries, origin, "rpcserverip", "rpcserverport", true)?;
        let zookeeper = legacy_pair(&entries, origin, "zookeeperip", "zookeeperport", false)?;
        if server.is_none() && zookeeper.is_none() {
            return Err(parse_error(
                origin,
                None,
                None,
                "no settings: expected `rpcserverip` and `rpcserverport`, or `zookeeperip` and \
                 `zookeeperport`"
                    .to_owned(),
            ));
        }

        let mut config = Config::default();
        if let Some(address) = server {
            config.server.address = address;
            // The original's callers expect its protocol on `rpcserverport`.
            config.server.protocols.legacy = true;
        }
        if let Some(connect) = zookeeper {
            config.registry = RegistryConfig::Zookeeper {
                connect,
                root: default_zk_root(),
                session_timeout: default_zk_session_timeout(),
                access: ZkAccessConfig::default(),
                // The original's callers look its layout up.
                legacy_layout: true,
            };
        }
        config.validate(origin)?;
        Ok(config)
    }
}

/// The keys of a legacy file, each with its value and the 1-based line it is given on.
type LegacyEntries<'a> = BTreeMap<&'static str, (&'a str, usize)>;

/// A [`ConfigError::Parse`] about `origin`, at `line` and `key` when they are known.
fn parse_error(
    origin: &str,
    line: Option<usize>,
    key: Option<&str>,
    message: String,
) -> ConfigError {
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        key: key.map(str::to_owned),
        message,
    }
}

/// Reads the lines of a legacy file into its entries: every line that is not blank or a
/// comment must be a known key, given once, with a value.
fn legacy_entries<'a>(text: &'a str, origin: &str) -> Result<LegacyEntries<'a>, ConfigError> {
    let mut entries = LegacyEntries::new();
    for (index, raw) in text.trim_start_matches('\u{feff}').split('\n').enumerate() {
        let number = index + 1;
        let line = trim_legacy(strip_legacy_comment(raw));
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(parse_error(
                origin,
                Some(number),
                None,
                format!("expected `key=value`, found `{line}`"),
            ));
        };
        let (key, value) = (trim_legacy(key), trim_legacy(value));
        let Some(known) = LEGACY_KEYS.iter().find(|k| **k == key) else {
            return Err(parse_error(
                origin,
                Some(number),
                Some(key),
                format!("unknown key, expected one of {}", LEGACY_KEYS.join(", ")),
            ));
        };
        if let Some((_, first)) = entries.get(known) {
            return Err(parse_error(
                origin,
                Some(number),
                Some(key),
                format!("repeated key (first given on line {first})"),
            ));
        }
        if value.is_empty() {
            return Err(parse_error(
                origin,
                Some(number),
                Some(key),
                "empty value".to_owned(),
            ));
        }
        entries.insert(known, (value, number));
    }
    Ok(entries)
}

/// One `host:port` from a pair of keys; `None` when neither is present, an error when only
/// one is. `port_zero` allows port 0.
fn legacy_pair(
    entries: &LegacyEntries<'_>,
    origin: &str,
    ip_key: &str,
    port_key: &str,
    port_zero: bool,
) -> Result<Option<String>, ConfigError> {
    match (entries.get(ip_key), entries.get(port_key)) {
        (None, None) => Ok(None),
        (Some((_, line)), None) | (None, Some((_, line))) => {
            let (missing, present) = if entries.contains_key(ip_key) {
                (port_key, ip_key)
            } else {
                (ip_key, port_key)
            };
            Err(parse_error(
                origin,
                None,
                Some(missing),
                format!("missing, but `{present}` is given on line {line}"),
            ))
        }
        (Some(&ip), Some(&port)) => {
            legacy_address(origin, (ip_key, ip), (port_key, port), port_zero).map(Some)
        }
    }
}

/// Checks an IP (or host name) and a port, each given as `(key, (value, line))`, and joins
/// them into `host:port`, an IPv6 address in brackets. `port_zero` allows port 0.
fn legacy_address(
    origin: &str,
    (ip_key, (ip, ip_line)): (&str, (&str, usize)),
    (port_key, (port, port_line)): (&str, (&str, usize)),
    port_zero: bool,
) -> Result<String, ConfigError> {
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0 || port_zero);
    if !port_ok {
        let range = if port_zero { "0..=65535" } else { "1..=65535" };
        return Err(parse_error(
            origin,
            Some(port_line),
            Some(port_key),
            format!("`{port}` is not a port number in {range}"),
        ));
    }
    let host = if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    let address = format!("{host}:{port}");
    if let Err(why) = check_host_port(&address, true) {
        return Err(parse_error(
            origin,
            Some(ip_line),
            Some(ip_key),
            format!("`{ip}` is not an IP address or host name ({why})"),
        ));
    }
    Ok(address)
}

/// Spaces, tabs and carriage returns: what surrounds keys and values in a legacy file.
fn trim_legacy(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r'])
}

/// Cuts a legacy line at a `#` that begins the line or follows a space or tab.
fn strip_legacy_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::parse_err;
    use crate::config::{
        ClientConfig, Config, ConfigFormat, LoggingConfig, RegistryConfig, ServerConfig,
    };

    #[test]
    fn format_detection() {
        use ConfigFormat::*;
        assert_eq!(ConfigFormat::detect(""), Toml);
        assert_eq!(ConfigFormat::detect("# only a comment\n"), Toml);
        assert_eq!(ConfigFormat::detect("[server]\n"), Toml);
        assert_eq!(ConfigFormat::detect("server.threads = 2\n"), Toml);
        assert_eq!(
            ConfigFormat::detect("\r\n# c\r\nrpcserverip=1.2.3.4\r\n"),
            Legacy
        );
        assert_eq!(ConfigFormat::detect("\t zookeeperport\t= 2181\n"), Legacy);
        assert_eq!(ConfigFormat::detect("rpcserverport\n"), Toml);
        assert_eq!(ConfigFormat::detect("[x]\nrpcserverip=1.2.3.4\n"), Toml);
    }

    #[test]
    fn legacy_file_with_crlf_tabs_and_comments_parses() {
        let text = "\u{feff}# rpc node\r\n\r\n  rpcserverip\t=\t127.0.0.1  # provider ip\r\n\
                    rpcserverport = 8000\r\n\t# zookeeper\r\nzookeeperip=10.0.0.7\t#zk\r\n\
                    zookeeperport=2181\r\n";
        assert_eq!(ConfigFormat::detect(text), ConfigFormat::Legacy);
        let c = Config::from_legacy_str(text, "test.conf").unwrap();
        assert_eq!(c.server.address, "127.0.0.1:8000");
        assert_eq!(
            c.registry,
            RegistryConfig::Zookeeper {
                connect: "10.0.0.7:2181".into(),
                root: "/mprpc".into(),
                session_timeout: Duration::from_secs(10),
                access: Default::default(),
                legacy_layout: true,
            }
        );
        assert_eq!(c.client, ClientConfig::default());
        assert_eq!(c.logging, LoggingConfig::default());
    }

    #[test]
    fn legacy_server_only_ipv6_and_port_zero() {
        let c = Config::from_legacy_str("rpcserverip=::1\nrpcserverport=0\n", "t.conf").unwrap();
        assert_eq!(c.server.address, "[::1]:0");
        assert!(
            c.server.protocols.legacy,
            "the original's callers are served"
        );
        assert_eq!(c.registry, RegistryConfig::default());
        let c = Config::from_legacy_str("zookeeperip=zk.local\nzookeeperport=2181", "t").unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert!(matches!(c.registry, RegistryConfig::Zookeeper { .. }));
    }

    #[test]
    fn legacy_errors() {
        let check = |text: &str, line: Option<usize>, key: Option<&str>| {
            let (l, k, message) = parse_err(Config::from_legacy_str(text, "t.conf"));
            assert_eq!((l, k.as_deref()), (line, key), "{text:?}: {message}");
        };
        // unknown key
        check(
            "rpcserverip=1.2.3.4\n# x\nrpcserverprot=80\n",
            Some(3),
            Some("rpcserverprot"),
        );
        // repeated key
        check(
            "rpcserverip=1.2.3.4\nrpcserverip=1.2.3.5\n",
            Some(2),
            Some("rpcserverip"),
        );
        // no `=`
        check("rpcserverip=1.2.3.4\nrpcserverport 80\n", Some(2), None);
        // empty value
        check(
            "rpcserverip=\nrpcserverport=80\n",
            Some(1),
            Some("rpcserverip"),
        );
        // bad ports
        check(
            "rpcserverip=h\nrpcserverport=65536\n",
            Some(2),
            Some("rpcserverport"),
        );
        check(
            "rpcserverip=h\nrpcserverport=-1\n",
            Some(2),
            Some("rpcserverport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=0\n",
            Some(2),
            Some("zookeeperport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=21 81\n",
            Some(2),
            Some("zookeeperport"),
        );
        check(
            "zookeeperip=h\nzookeeperport=2181#c\n",
            Some(2),
            Some("zookeeperport"),
        );
        // bad ip
        check(
            "rpcserverip=1.2.3\nrpcserverport=80\n",
            Some(1),
            Some("rpcserverip"),
        );
        // nothing at all
        check("# empty\n", None, None);
    }

    #[test]
    fn legacy_missing_half_of_a_pair_names_it() {
        let err = Config::from_legacy_str("rpcserverip=127.0.0.1\n", "t.conf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.conf: key `rpcserverport`: missing, but `rpcserverip` is given on line 1"
        );
        let (_, key, _) = parse_err(Config::from_legacy_str(
            "rpcserverip=127.0.0.1\nrpcserverport=1\nzookeeperport=2181\n",
            "t.conf",
        ));
        assert_eq!(key.as_deref(), Some("zookeeperip"));
    }
}
