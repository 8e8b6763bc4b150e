//! Code generation for [mprpc](https://example.invalid/mprpc): `.proto` files to Rust, from a
//! `build.rs`.
//!
//! For every `.proto` package this writes one `<package>.rs` into `OUT_DIR` holding the
//! [prost](https://docs.rs/prost) messages and, for every service:
//!
//! * a `<service>_server` module with an async trait named after the service (one method per
//!   RPC) and a `<Service>Server<T>` adapter that hosts an implementation in an mprpc provider;
//! * a `<service>_client` module with `<Service>Client` (async, over a `Channel`) and
//!   `<Service>BlockingClient` (over a `BlockingChannel`).
//!
//! No `protoc` is needed: the files are parsed by [protox](https://docs.rs/protox), and
//! syntax errors come back as an [`io::Error`] naming the file and line.
//!
//! # Example
//!
//! `build.rs`, with the crate in `[build-dependencies]`:
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     mprpc_build::compile_protos(&["proto/user.proto"], &["proto"])
//! }
//! ```
//!
//! With `proto/user.proto` declaring `package fixbug;` and
//! `service UserServiceRpc { rpc Login(LoginRequest) returns (LoginResponse); }`, the crate
//! includes the generated code and implements the service:
//!
//! ```ignore
//! pub mod fixbug {
//!     mprpc::include_proto!("fixbug");
//! }
//!
//! use fixbug::user_service_rpc_server::{UserServiceRpc, UserServiceRpcServer};
//! use fixbug::{LoginRequest, LoginResponse};
//! use mprpc::{Request, Status};
//!
//! struct Users;
//!
//! impl UserServiceRpc for Users {
//!     async fn login(&self, request: Request<LoginRequest>) -> Result<LoginResponse, Status> {
//!         let request = request.into_inner();
//!         Ok(LoginResponse { success: request.name == b"zhang san", ..Default::default() })
//!     }
//! }
//!
//! // Provider: host `UserServiceRpcServer::new(Users)`.
//! // Consumer:
//! //   let client = fixbug::user_service_rpc_client::UserServiceRpcClient::new(channel);
//! //   let reply = client.login(LoginRequest { name: b"zhang san".to_vec(), ..Default::default() }).await?;
//! ```
//!
//! Options go through [`configure`]:
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     mprpc_build::configure()
//!         .build_server(false) // this crate only calls the service
//!         .compile(&["proto/user.proto"], &["proto"])
//! }
//! ```
//!
//! # Naming
//!
//! The wire name of a service is `package.Service` as written in the file (`fixbug.UserServiceRpc`,
//! or just `UserServiceRpc` without a package) and the wire name of a method is its proto name
//! (`Login`). Rust names follow prost: `UserServiceRpc` gives the modules
//! `user_service_rpc_server` / `user_service_rpc_client`, `Login` gives the method `login`,
//! and a method that would be a keyword gets a raw identifier (`Type` becomes `r#type`).
//! A file without a package goes to `_.rs`, as with prost-build.
//!
//! # Limitations
//!
//! * A method named `New` (or anything whose snake case is `new`) clashes with the clients'
//!   constructor and is an error unless clients are not built.
//! * Request and response types are used as prost-build names them. Well-known types are
//!   `::prost_types::...` (so the crate needs `prost-types`, as with any prost code using
//!   them), except `google.protobuf.Empty`, which is `()`.
//! * A message named `<Service>Server` or `<Service>Client` that has nested types would give a
//!   prost module with the same name as the generated one.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

mod check;
mod generator;
mod streams;

pub use check::check_file_descriptor_set;
pub use generator::Generator;
/// The prost-build this crate drives, for [`Builder::compile_with_config`].
pub use prost_build;

/// Compiles `protos` (looked up in, and importing from, `includes`) into `OUT_DIR`, with the
/// server and client code of every service.
///
/// Prints `cargo:rerun-if-changed` for every proto file read. Same as
/// `configure().compile(protos, includes)`.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<()> {
    configure().compile(protos, includes)
}

/// A [`Builder`] with the default options: server and clients, output to `OUT_DIR`,
/// `cargo:rerun-if-changed` printed.
pub fn configure() -> Builder {
    Builder::default()
}

/// Options for a compilation; made by [`configure`].
#[derive(Clone, Debug)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    build_server: bool,
    build_client: bool,
    emit_rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            out_dir: None,
            build_server: true,
            build_client: true,
            emit_rerun_if_changed: true,
        }
    }
}

impl Builder {
    /// Where to write the `.rs` files (default: the `OUT_DIR` Cargo gives build scripts).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to generate the server trait and adapter of each service (default `true`).
    pub fn build_server(mut self, yes: bool) -> Self {
        self.build_server = yes;
        self
    }

    /// Whether to generate the async and blocking clients of each service (default `true`).
    pub fn build_client(mut self, yes: bool) -> Self {
        self.build_client = yes;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for every proto file read, imports included
    /// (default `true`; turn it off outside build scripts).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.emit_rerun_if_changed = yes;
        self
    }

    /// Compiles `protos` into Rust files.
    ///
    /// Every proto must lie under one of `includes`, which are also where imports are looked
    /// up (the well-known `google/protobuf/*.proto` files are built in).
    ///
    /// # Errors
    ///
    /// A proto that cannot be read or does not compile (the message names the file and line),
    /// a service the generator does not support (names that collide in Rust), or a failure to write the output.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        self.compile_with_config(prost_build::Config::new(), protos, includes)
    }

    /// Like [`compile`](Builder::compile), but with a prost-build configuration of your own,
    /// e.g. to add attributes to messages, or `config.bytes(["."])` to generate `bytes`
    /// fields as `bytes::Bytes`: a message of 64 KiB or more then sends such a field of 16 KiB
    /// or more from its own buffer, with no copy (see `mprpc::Body`). The builder sets its service generator and, if
    /// [`out_dir`](Builder::out_dir) was given, its output directory.
    ///
    /// # Errors
    ///
    /// As for [`compile`](Builder::compile).
    pub fn compile_with_config(
        self,
        mut config: prost_build::Config,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        let mut rerun = BTreeSet::new();
        if self.emit_rerun_if_changed {
            for proto in protos {
                let proto = proto.as_ref().to_path_buf();
                println!("cargo:rerun-if-changed={}", proto.display());
                rerun.insert(proto);
            }
        }

        let mut compiler =
            protox::Compiler::new(includes.iter().map(AsRef::as_ref)).map_err(protox_error)?;
        compiler.include_source_info(true).include_imports(true);
        compiler
            .open_files(protos.iter().map(AsRef::as_ref))
            .map_err(protox_error)?;

        if self.emit_rerun_if_changed {
            // Imports too: editing an imported file changes the generated code.
            for file in compiler.files() {
                if let Some(path) = file.path() {
                    if rerun.insert(path.to_path_buf()) {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
        }

        let fds = compiler.file_descriptor_set();
        check::check(&fds, self.build_client)?;

        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| io::Error::other("OUT_DIR is not set: call this from build.rs"))?,
        };
        config.out_dir(&out_dir);
        if self.build_server {
            // Each package with services embeds the whole set it was compiled from.
            let encoded = prost::Message::encode_to_vec(&fds);
            let packages: BTreeSet<&str> = fds
                .file
                .iter()
                .filter(|f| !f.service.is_empty())
                .map(|f| f.package())
                .collect();
            for package in packages {
                std::fs::write(
                    out_dir.join(generator::descriptor_file_name(package)),
                    &encoded,
                )?;
            }
        }
        config.service_generator(Box::new(
            Generator::new()
                .build_server(self.build_server)
                .build_client(self.build_client)
                .embed_descriptors(self.build_server),
        ));
        config.compile_fds(fds)
    }
}

/// A protox failure as an [`io::Error`] whose message says where: protox's `Debug` output is
/// `file:line:column: message` for parse and check errors, while its `Display` has only the
/// message.
fn protox_error(err: protox::Error) -> io::Error {
    let kind = if err.is_file_not_found() {
        io::ErrorKind::NotFound
    } else if err.is_io() {
        io::ErrorKind::Other
    } else {
        io::ErrorKind::InvalidInput
    };
    let mut message = format!("{err:?}");
    if let Some(file) = err.file() {
        if !message.contains(file) {
            message = format!("{file}: {message}");
        }
    }
    io::Error::new(kind, format!("mprpc-build: {message}"))
}
