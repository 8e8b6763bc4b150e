//! Tests of the whole file: defaults, full examples, validation, loading.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::compression::Encoding;

pub(super) fn parse_err(
    result: Result<Config, ConfigError>,
) -> (Option<usize>, Option<String>, String) {
    match result {
        Err(ConfigError::Parse {
            line, key, message, ..
        }) => (line, key, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

pub(super) fn invalid_key(result: Result<Config, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected a validation error, got {other:?}"),
    }
}
#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::from_toml_str("", "empty.toml").unwrap();
    assert_eq!(c, Config::default());
    let s = &c.server;
    assert_eq!(s.address, "127.0.0.1:8000");
    assert_eq!(s.advertise_address, None);
    assert_eq!(s.threads, 4);
    assert_eq!(s.max_concurrent_calls, 10_000);
    assert_eq!(s.max_frame_size, 16 * 1024 * 1024);
    assert_eq!(s.max_connections, 10_000);
    assert_eq!(s.shutdown_grace, Duration::from_secs(10));
    assert_eq!(s.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.max_calls_per_connection, 4_096);
    assert!(
        !s.protocols.legacy,
        "a TOML file turns the legacy protocol on explicitly"
    );
    assert_eq!(s.max_unwritten_bytes, 64 << 20);
    assert_eq!(s.max_metadata_entries, 64);
    assert_eq!(s.max_metadata_bytes, 16 << 10);
    assert_eq!(s.frame_timeout, Duration::from_secs(10));
    assert_eq!(s.min_frame_rate, 64 << 10);
    assert_eq!(s.caller_clock, CallerClock::SameHost);
    assert_eq!(s.write_timeout, Duration::from_secs(30));
    let k = &c.client;
    assert_eq!(k.timeout, Duration::from_secs(3));
    assert_eq!(k.connect_timeout, Duration::from_secs(1));
    assert_eq!(k.max_frame_size, 16 * 1024 * 1024);
    assert_eq!(k.ping_interval, Duration::from_secs(10));
    assert_eq!(k.ping_timeout, Duration::from_secs(5));
    assert_eq!(k.write_timeout, Duration::from_secs(30));
    assert_eq!(k.reconnect_backoff, Duration::from_millis(100));
    assert_eq!(k.reconnect_backoff_max, Duration::from_secs(5));
    assert_eq!(k.threads, 2);
    assert_eq!(
        c.registry,
        RegistryConfig::Static {
            services: BTreeMap::new()
        }
    );
    let l = &c.logging;
    assert_eq!(l.dir, Some(PathBuf::from("logs")));
    assert_eq!(l.file_prefix, "mprpc.log");
    assert_eq!(l.level, "info");
    assert!(!l.stderr);
    // Defaults pass validation.
    Config::default().validate("default").unwrap();
}
#[test]
fn module_doc_example_parses() {
    let text = "[server]\naddress = \"127.0.0.1:8000\"\nthreads = 4\n\n[client]\ntimeout = \
                \"3s\"\n\n[registry]\nkind = \"static\"\n[registry.services]\n\
                \"fixbug.UserServiceRpc\" = [\"127.0.0.1:8000\"]\n\n[logging]\ndir = \
                \"logs\"\nlevel = \"info\"\n";
    let c = Config::from_toml_str(text, "doc.toml").unwrap();
    let RegistryConfig::Static { services } = &c.registry else {
        panic!("not static")
    };
    assert_eq!(services["fixbug.UserServiceRpc"], ["127.0.0.1:8000"]);
}

#[test]
fn full_toml_example_parses() {
    let text = r#"
# every key, none at its default
[server]
address = "0.0.0.0:9000"
advertise_address = "10.0.0.5:9000"
admin_address = "127.0.0.1:9100"
threads = 8
max_concurrent_calls = 500
max_calls_per_connection = 100
max_unwritten_bytes = 1000000
max_metadata_entries = 8
max_metadata_bytes = 512
frame_timeout = "3s"
min_frame_rate = 1000
caller_clock = "synchronized"
max_frame_size = 1048576
max_connections = 200
shutdown_grace = "30s"
idle_timeout = "1min"
write_timeout = "20s"
weight = 250
stream_window = 65536
connection_window = 1048576

[server.protocols]
legacy = true

[server.compression]
encoding = "zstd"
threshold = 512

[client]
timeout = "500ms"
connect_timeout = "2s"
max_frame_size = 2048
ping_interval = "15s"
ping_timeout = "3s"
write_timeout = "7s"
reconnect_backoff = "50ms"
reconnect_backoff_max = "10s"
threads = 1
load_balance = "least_loaded"
stream_window = 4096
stream_timeout = "1h"

[registry]
kind = "zookeeper"
connect = "zk1:2181,10.0.0.2:2181,[::1]:2181"
root = "/services/rpc"
session_timeout = "20s"
legacy_layout = true

[logging]
dir = "/var/log/mprpc"
file_prefix = "provider.log"
level = "mprpc=debug,warn"
stderr = true
"#;
    let c = Config::from_toml_str(text, "full.toml").unwrap();
    assert_eq!(
        c.server,
        ServerConfig {
            address: "0.0.0.0:9000".into(),
            advertise_address: Some("10.0.0.5:9000".into()),
            threads: 8,
            weight: 250,
            admin_address: Some("127.0.0.1:9100".into()),
            admin_token: None,
            admin_tls: false,
            max_concurrent_calls: 500,
            max_calls_per_connection: 100,
            max_unwritten_bytes: 1_000_000,
            max_metadata_entries: 8,
            max_metadata_bytes: 512,
            frame_timeout: Duration::from_secs(3),
            min_frame_rate: 1000,
            caller_clock: CallerClock::Synchronized,
            max_frame_size: 1 << 20,
            max_connections: 200,
            shutdown_grace: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(20),
            tls: None,
            auth: None,
            adaptive_limit: None,
            stream_window: 65536,
            connection_window: 1 << 20,
            protocols: ProtocolsConfig {
                legacy: true,
                http: false,
                grpc: false,
            },
            compression: CompressionConfig {
                encoding: Some(Encoding::Zstd),
                threshold: 512,
            },
        }
    );
    assert_eq!(
        c.client,
        ClientConfig {
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            max_frame_size: 2048,
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(7),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(10),
            threads: 1,
            load_balance: LoadBalance::LeastLoaded,
            tls: None,
            auth: None,
            stream_window: 4096,
            stream_timeout: Some(Duration::from_secs(3600)),
            ..ClientConfig::default()
        }
    );
    assert_eq!(
        c.registry,
        RegistryConfig::Zookeeper {
            connect: "zk1:2181,10.0.0.2:2181,[::1]:2181".into(),
            root: "/services/rpc".into(),
            session_timeout: Duration::from_secs(20),
            access: Default::default(),
            legacy_layout: true,
        }
    );
    assert_eq!(
        c.logging,
        LoggingConfig {
            dir: Some("/var/log/mprpc".into()),
            file_prefix: "provider.log".into(),
            level: "mprpc=debug,warn".into(),
            stderr: true,
        }
    );
}

#[test]
fn validation_names_the_key() {
    let cases = [
        ("[server]\nthreads = 0", "server.threads"),
        (
            "[server]\nmax_concurrent_calls = 0",
            "server.max_concurrent_calls",
        ),
        ("[server]\nmax_frame_size = 1023", "server.max_frame_size"),
        (
            "[server]\nmax_frame_size = 1073741825",
            "server.max_frame_size",
        ),
        ("[server]\naddress = \"8000\"", "server.address"),
        ("[server]\naddress = \":8000\"", "server.address"),
        (
            "[server]\nadvertise_address = \"h:0\"",
            "server.advertise_address",
        ),
        ("[server]\nadmin_address = \"9100\"", "server.admin_address"),
        (
            "[server]\nadmin_address = \"localhost:http\"",
            "server.admin_address",
        ),
        ("[client]\nmax_frame_size = 100", "client.max_frame_size"),
        ("[client]\ntimeout = \"0s\"", "client.timeout"),
        ("[client]\nthreads = 0", "client.threads"),
        (
            "[client]\nreconnect_backoff_max = \"1ms\"",
            "client.reconnect_backoff_max",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"\"",
            "registry.connect",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1,\"",
            "registry.connect",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1,b\"",
            "registry.connect",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"mprpc\"",
            "registry.root",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/mprpc/\"",
            "registry.root",
        ),
        (
            "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/a//b\"",
            "registry.root",
        ),
        ("[logging]\nlevel = \"mprpc=loud\"", "logging.level"),
        ("[logging]\nlevel = \"\"", "logging.level"),
        ("[logging]\nfile_prefix = \"a/b\"", "logging.file_prefix"),
    ];
    for (text, key) in cases {
        let err = Config::from_toml_str(text, "v.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("v.toml: key `{key}`: ")),
            "{text:?}: {err}"
        );
        assert_eq!(invalid_key(Err(err)), key, "{text:?}");
    }
    let ok = "[registry]\nkind = \"zookeeper\"\nconnect = \"a:1\"\nroot = \"/\"\n\
              [logging]\nlevel = \"warn,mprpc::server=trace\"\n";
    Config::from_toml_str(ok, "ok.toml").unwrap();
}

#[test]
fn load_detects_the_format_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("test.conf");
    std::fs::write(&legacy, "rpcserverip=127.0.0.1\nrpcserverport=8000\n").unwrap();
    assert_eq!(
        Config::load(&legacy).unwrap().server.address,
        "127.0.0.1:8000"
    );

    let toml = dir.path().join("provider.toml");
    std::fs::write(&toml, "[server]\nthreads = 0\n").unwrap();
    let err = Config::load(&toml).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: key `server.threads`", toml.display())),
        "{err}"
    );

    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(&err, ConfigError::Io { path, .. } if path == &missing));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
    // Said once: the reason is in the message, not repeated as a cause.
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[client]\n# caf\xe9 cr\xe8me\n").unwrap();
    let err = Config::load(&latin1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2: byte 0xe9 at column 6 is not UTF-8; save the file as UTF-8",
            latin1.display()
        )
    );
    let err = utf8(b"\xc3\xa9t\xc3\xa9 \xff".to_vec(), "t.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml: line 1: byte 0xff at column 5 is not UTF-8; save the file as UTF-8"
    );
}

#[test]
fn tls_sections_parse_and_check() {
    let text = r#"
[server.tls]
cert = "provider.pem"
key = "provider.key"
client_ca = "ca.pem"
mode = "optional"
handshake_timeout = "2s"

[client.tls]
ca = "ca.pem"
cert = "client.pem"
key = "client.key"
server_name = "provider.internal"
"#;
    let c = Config::from_toml_str(text, "tls.toml").unwrap();
    let server = c.server.tls.unwrap();
    assert_eq!(
        server.client_ca.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );
    assert_eq!(server.mode, crate::config::TlsMode::Optional);
    assert_eq!(server.handshake_timeout, Duration::from_secs(2));
    assert_eq!(server.reload_interval, Duration::from_secs(10));
    let client = c.client.tls.unwrap();
    assert_eq!(client.server_name.as_deref(), Some("provider.internal"));

    let half = "[client.tls]\nca = \"ca.pem\"\ncert = \"client.pem\"\n";
    let e = Config::from_toml_str(half, "half.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`cert` and `key` go together"), "{e}");
    let typo = "[server.tls]\ncert = \"a\"\nkey = \"b\"\nclient_cert = \"c\"\n";
    assert!(Config::from_toml_str(typo, "typo.toml").is_err());
}

#[test]
fn resilience_tables_parse_and_are_checked() {
    let text = r#"
        [client.retry]
        max_attempts = 4
        budget_ratio = 0.1
        [client.hedge]
        delay = "p95"
        [client.outlier]
        consecutive_failures = 0
        [client.methods."fixbug.UserServiceRpc/Login"]
        idempotent = false
        hedge_delay = "off"
        timeout = "200ms"
        [client.methods."fixbug.FriendServiceRpc"]
        max_attempts = 2
        hedge_delay = "15ms"
    "#;
    let c = Config::from_toml_str(text, "r.toml").unwrap().client;
    assert_eq!((c.retry.max_attempts, c.retry.budget_ratio), (4, 0.1));
    assert_eq!(c.hedge.delay, Some(HedgeDelay::Quantile(0.95)));
    assert_eq!(c.outlier.consecutive_failures, 0);
    let login = &c.methods["fixbug.UserServiceRpc/Login"];
    assert_eq!(login.idempotent, Some(false));
    assert_eq!(login.hedge_delay, Some(None));
    assert_eq!(login.timeout, Some(Duration::from_millis(200)));
    let friends = &c.methods["fixbug.FriendServiceRpc"];
    assert_eq!(friends.max_attempts, Some(2));
    assert_eq!(
        friends.hedge_delay,
        Some(Some(HedgeDelay::Fixed(Duration::from_millis(15))))
    );

    let bad = |t: &str| Config::from_toml_str(t, "bad.toml");
    assert_eq!(
        invalid_key(bad("[client.retry]\nmax_attempts = 0")),
        "client.retry.max_attempts"
    );
    assert_eq!(
        invalid_key(bad("[client.outlier]\nmax_ejection_percent = 101")),
        "client.outlier.max_ejection_percent"
    );
    assert_eq!(
        invalid_key(bad("[client.methods.\"a/b/c\"]\nmax_attempts = 2")),
        "client.methods.\"a/b/c\""
    );
    let (_, _, message) = parse_err(bad("[client.hedge]\ndelay = \"p200\""));
    assert!(message.contains("p200"), "{message}");
}

#[test]
fn an_unknown_compression_is_named_with_its_key() {
    let text = "[client.compression]\nencoding = \"brotli\"";
    let err = Config::from_toml_str(text, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("client.compression.encoding"), "{err}");
    assert!(err.contains("unknown encoding `brotli`"), "{err}");
    let text =
        "[client.compression]\nencoding = \"none\"\n[server.compression]\nencoding = \"gzip\"";
    let config = Config::from_toml_str(text, "c.toml").unwrap();
    assert_eq!(config.client.compression.encoding, None);
    assert_eq!(config.server.compression.encoding, Some(Encoding::Gzip));
}
