//! Bearer tokens and allow lists over real TCP (and mutual TLS): accepted and refused tokens,
//! the token kept from the handler, per-method allow lists by token name and by certificate,
//! refusals counted, tokens from a file and from the environment, and a 1 MiB token.

use std::collections::BTreeMap;

use mprpc::auth::token_hash;
use mprpc::client::Channel;
use mprpc::config::{
    AllowRule, ClientAuth, ClientConfig, ClientTls, ServerAuth, ServerConfig, ServerTls,
};
use mprpc::metrics::Metrics;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::certs::TestCa;
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService, PRINCIPAL_KEY};

const ECHO: &str = "mprpc.test.Echo";

fn server_auth(allow: Vec<AllowRule>) -> ServerAuth {
    let mut tokens = BTreeMap::new();
    tokens.insert("billing".to_owned(), token_hash("billing-s3cret"));
    tokens.insert("ops".to_owned(), token_hash("ops-s3cret"));
    ServerAuth {
        tokens,
        tokens_file: None,
        allow,
    }
}

async fn start(
    auth: ServerAuth,
    tls: Option<ServerTls>,
    metrics: Metrics,
) -> (std::net::SocketAddr, LocalServer) {
    let config = ServerConfig {
        auth: Some(auth),
        tls,
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .with_metrics(metrics)
        .add_service(EchoServer::new(EchoService::named("x")));
    spawn_local(server).await.expect("start provider")
}

fn client(
    addr: std::net::SocketAddr,
    auth: Option<ClientAuth>,
    tls: Option<ClientTls>,
) -> EchoClient {
    let config = ClientConfig {
        auth,
        tls,
        ..ClientConfig::default()
    };
    EchoClient::new(Channel::to_addresses(vec![addr.to_string()], config))
}

fn token(token: &str) -> Option<ClientAuth> {
    Some(ClientAuth {
        token: Some(token.to_owned()),
        ..ClientAuth::default()
    })
}

fn ask(key: &str) -> EchoRequest {
    EchoRequest {
        metadata_key: key.into(),
        ..EchoRequest::default()
    }
}

#[tokio::test]
async fn tokens_are_accepted_refused_and_kept_from_the_handler() {
    let metrics = Metrics::new();
    let (addr, handle) = start(server_auth(vec![]), None, metrics.clone()).await;

    let good = client(addr, token("billing-s3cret"), None);
    assert_eq!(
        good.echo(ask(PRINCIPAL_KEY)).await.unwrap().metadata_value,
        "billing"
    );
    let seen = good
        .echo(ask("authorization"))
        .await
        .unwrap()
        .metadata_value;
    assert_eq!(seen, "", "the handler saw the token");

    let wrong = client(addr, token("guess"), None)
        .echo(ask(""))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong}");
    assert!(
        !wrong.message().contains("guess"),
        "the token was echoed: {wrong}"
    );
    let none = client(addr, None, None).echo(ask("")).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none}");
    assert!(none.message().contains("bearer token"), "{none}");

    // A token of 1 MiB: refused, clearly, and not echoed; the provider carries on.
    let huge = "t".repeat(1 << 20);
    let mut request = Request::new(EchoRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {huge}"));
    let status = client(addr, None, None).echo(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(status.message().len() < 1000, "{}", status.message().len());
    good.echo(ask("")).await.expect("the provider carries on");

    let rejected = metrics.snapshot().rejected;
    assert_eq!(
        rejected.get(&Code::Unauthenticated),
        Some(&2),
        "{rejected:?}"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn allow_lists_bind_the_methods_they_name() {
    let metrics = Metrics::new();
    let allow = vec![AllowRule {
        service: ECHO.to_owned(),
        method: Some("Echo".to_owned()),
        principals: vec!["ops".to_owned()],
    }];
    let (addr, handle) = start(server_auth(allow), None, metrics.clone()).await;
    client(addr, token("ops-s3cret"), None)
        .echo(ask(""))
        .await
        .expect("ops may call Echo");
    let denied = client(addr, token("billing-s3cret"), None)
        .echo(ask(""))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied}");
    assert_eq!(
        denied.message(),
        format!("`billing` may not call {ECHO}/Echo")
    );
    assert_eq!(
        metrics.snapshot().rejected.get(&Code::PermissionDenied),
        Some(&1)
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_is_a_principal_for_the_allow_lists() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let ca_path = ca.write(dir.path());
    let files = ca.provider(dir.path(), "provider");
    let mut tls = ServerTls::new(&files.cert, &files.key);
    tls.client_ca = Some(ca_path.clone());
    let allow = vec![AllowRule {
        service: ECHO.to_owned(),
        method: None,
        principals: vec!["CN=auditor".to_owned()],
    }];
    let (addr, handle) = start(server_auth(allow), Some(tls), Metrics::new()).await;
    let with_cert = |cn: &str| {
        let files = ca.client(dir.path(), cn);
        let mut tls = ClientTls::new(&ca_path);
        tls.cert = Some(files.cert);
        tls.key = Some(files.key);
        tls
    };
    let auditor = client(addr, None, Some(with_cert("auditor")));
    assert_eq!(
        auditor
            .echo(ask(PRINCIPAL_KEY))
            .await
            .unwrap()
            .metadata_value,
        "CN=auditor"
    );
    let other = client(addr, None, Some(with_cert("intern")))
        .echo(ask(""))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other}");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_come_from_files_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens");
    std::fs::write(
        &tokens_file,
        format!("# name hash\nfiled {}\n", token_hash("from-a-file")),
    )
    .unwrap();
    let auth = ServerAuth {
        tokens_file: Some(tokens_file),
        ..ServerAuth::default()
    };
    let (addr, handle) = start(auth, None, Metrics::new()).await;

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-a-file\n").unwrap();
    let from_file = ClientAuth {
        token_file: Some(token_file),
        ..ClientAuth::default()
    };
    let reply = client(addr, Some(from_file), None)
        .echo(ask(PRINCIPAL_KEY))
        .await
        .unwrap();
    assert_eq!(reply.metadata_value, "filed");

    // A variable of this test's own (the process's environment is shared by the tests).
    let var = format!("MPRPC_TEST_TOKEN_{}", std::process::id());
    std::env::set_var(&var, "from-a-file");
    let from_env = ClientAuth {
        token_env: Some(var.clone()),
        ..ClientAuth::default()
    };
    client(addr, Some(from_env), None)
        .echo(ask(""))
        .await
        .expect("token from $VAR");
    let missing = ClientAuth {
        token_env: Some(format!("{var}_UNSET")),
        ..ClientAuth::default()
    };
    let status = client(addr, Some(missing), None)
        .echo(ask(""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
    assert!(status.message().contains("_UNSET"), "{status}");
    handle.shutdown().await.unwrap();
}
