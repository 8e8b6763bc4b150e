//! One module per subcommand: its options (`Args`) and its `run`.

pub mod bench;
pub mod call;
pub mod describe;
pub mod list;
pub mod request;
pub mod watch;
