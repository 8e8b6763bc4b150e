//! `consumer -i FILE [--addr ADDR]`: calls the example services.

use std::process::ExitCode;

use clap::Parser;
use mprpc_examples::{consumer, report};

fn main() -> ExitCode {
    report::exit(consumer::run(consumer::Args::parse()))
}
