//! Generated code for unusual inputs must at least be valid Rust.

use std::fs;

/// Compiles `files` (name, source) from one directory; returns every generated file.
fn generate(builder: mprpc_build::Builder, files: &[(&str, &str)]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for (name, source) in files {
        fs::write(dir.path().join(name), source).unwrap();
    }
    let protos: Vec<_> = files
        .iter()
        .map(|(name, _)| dir.path().join(name))
        .collect();
    builder
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&protos, &[dir.path()])
        .unwrap();
    let mut generated: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        // The descriptor files embedded by providers' reflection are binary.
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let code = fs::read_to_string(&path).unwrap();
            syn::parse_file(&code).unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{code}"));
            (name, code)
        })
        .collect();
    generated.sort();
    generated
}

const NO_PACKAGE: &str = r#"
syntax = "proto3";
import "google/protobuf/empty.proto";
import "google/protobuf/timestamp.proto";

message Item { string name = 1; }

/* Keywords everywhere. */
service Catalog {
  rpc Type(Item) returns (Item);
  rpc Match(google.protobuf.Empty) returns (google.protobuf.Timestamp);
  rpc Self(Item) returns (google.protobuf.Empty);
}

service Nothing {}
"#;

#[test]
fn no_package_and_keyword_methods() {
    let generated = generate(mprpc_build::configure(), &[("catalog.proto", NO_PACKAGE)]);
    let (_, code) = generated
        .iter()
        .find(|(name, _)| name == "_.rs")
        .expect("a file without a package goes to _.rs");
    assert!(
        code.contains(r#"pub const SERVICE_NAME: &str = "Catalog";"#),
        "{code}"
    );
    assert!(code.contains("fn r#type("), "{code}");
    assert!(code.contains("fn r#match("), "{code}");
    assert!(code.contains("fn self_("), "{code}");
    assert!(code.contains(r#""Type" => {"#), "{code}");
    assert!(
        code.contains("::mprpc::codegen::Request<super::Item>"),
        "{code}"
    );
    assert!(code.contains("::mprpc::codegen::IntoRequest<()>"), "{code}");
    assert!(code.contains("::prost_types::Timestamp"), "{code}");
    assert!(code.contains("pub mod nothing_server {"), "{code}");
}

#[test]
fn types_from_other_packages() {
    let generated = generate(
        mprpc_build::configure(),
        &[
            (
                "common.proto",
                "syntax = \"proto3\";\npackage shop.common;\nmessage Money { int64 cents = 1; }\n",
            ),
            (
                "orders.proto",
                "syntax = \"proto3\";\npackage shop.orders;\nimport \"common.proto\";\n\
                 message Order { string id = 1; }\n\
                 service Orders { rpc Price(Order) returns (shop.common.Money); }\n",
            ),
        ],
    );
    let names: Vec<_> = generated.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["shop.common.rs", "shop.orders.rs"]);
    let code = &generated[1].1;
    assert!(code.contains(r#""shop.orders.Orders""#), "{code}");
    assert!(code.contains("super::super::common::Money"), "{code}");
}

#[test]
fn server_or_client_only() {
    const SERVICE: &str =
        "syntax = \"proto3\";\npackage p;\nmessage M {}\nservice S { rpc Do(M) returns (M); }\n";
    let server = generate(
        mprpc_build::configure().build_client(false),
        &[("s.proto", SERVICE)],
    );
    assert!(server[0].1.contains("pub mod s_server"));
    assert!(!server[0].1.contains("pub mod s_client"));
    let client = generate(
        mprpc_build::configure().build_server(false),
        &[("s.proto", SERVICE)],
    );
    assert!(!client[0].1.contains("pub mod s_server"));
    assert!(client[0].1.contains("pub mod s_client"));
}
