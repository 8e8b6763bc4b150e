//! One module per subcommand: its options (`Args`) and its `run`.

pub(crate) mod bench;
pub(crate) mod call;
pub(crate) mod describe;
pub(crate) mod list;
pub(crate) mod request;
pub(crate) mod watch;
