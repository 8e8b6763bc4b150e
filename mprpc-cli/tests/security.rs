//! The `mprpc` command against a provider that requires TLS and a bearer token: the
//! `--tls-ca` and `--token-file` options, and the errors without them. The token never
//! appears in the output.

mod common;

use std::collections::BTreeMap;

use common::{cli, cli_ok};
use mprpc::auth::token_hash;
use mprpc::config::{ServerAuth, ServerConfig, ServerTls};
use mprpc::server::{spawn_local, Server};
use mprpc_tests::certs::TestCa;
use mprpc_tests::{EchoServer, EchoService};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let ca_path = ca.write(dir.path());
    let files = ca.provider(dir.path(), "provider");
    let mut tokens = BTreeMap::new();
    tokens.insert("cli".to_owned(), token_hash("cli-s3cret"));
    let config = ServerConfig {
        tls: Some(ServerTls::new(&files.cert, &files.key)),
        auth: Some(ServerAuth {
            tokens,
            ..ServerAuth::default()
        }),
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("e")));
    let (addr, provider) = spawn_local(server).await.unwrap();
    let addr = addr.to_string();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "cli-s3cret\n").unwrap();
    let (ca_arg, token_arg) = (ca_path.to_str().unwrap(), token_file.to_str().unwrap());

    let run = cli_ok(&[
        "--addr",
        &addr,
        "--tls-ca",
        ca_arg,
        "--token-file",
        token_arg,
        "list",
    ])
    .await;
    assert!(run.stdout.contains("mprpc.test.Echo"), "{run}");
    assert!(
        !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
        "{run}"
    );

    let plain = cli(&["--addr", &addr, "--token-file", token_arg, "list"]).await;
    assert_ne!(plain.code, Some(0), "{plain}");
    assert!(plain.stderr.contains("requires TLS"), "{plain}");

    let no_token = cli(&["--addr", &addr, "--tls-ca", ca_arg, "list"]).await;
    assert_ne!(no_token.code, Some(0), "{no_token}");
    assert!(no_token.stderr.contains("Unauthenticated"), "{no_token}");
    provider.shutdown().await.unwrap();
}
