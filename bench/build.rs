//! Generates the benchmark service.

fn main() -> std::io::Result<()> {
    mprpc_build::compile_protos(&["proto/bench.proto"], &["proto"])
}
