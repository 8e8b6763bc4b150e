//! Generates the example services' messages, server traits and clients.

fn main() -> std::io::Result<()> {
    mprpc_build::compile_protos(&["proto/user.proto", "proto/friend.proto"], &["proto"])
}
