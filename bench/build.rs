//! Generates the benchmark service twice from `proto/bench.proto`: mprpc's server trait and
//! client (into `OUT_DIR`), and tonic's (into `OUT_DIR/tonic`), both without `protoc`: the
//! descriptors for tonic come from `protox`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    // Both frameworks get `bytes` fields as `bytes::Bytes`, so decoding a payload slices the
    // read buffer instead of copying it (what a user who cares about large payloads does).
    let mut config = mprpc_build::prost_build::Config::new();
    config.bytes(["."]);
    mprpc_build::configure().compile_with_config(config, &["proto/bench.proto"], &["proto"])?;

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let tonic_out = out.join("tonic");
    std::fs::create_dir_all(&tonic_out)?;
    let descriptors = protox::compile(["proto/bench.proto"], ["proto"])
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    tonic_prost_build::configure()
        .bytes(".")
        .out_dir(&tonic_out)
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto/bench.proto");
    Ok(())
}
