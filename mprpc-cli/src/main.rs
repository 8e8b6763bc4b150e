//! `mprpc`: the command-line tool for mprpc services.
//!
//! It finds providers through the registry of a config file (`-i FILE`), or talks to one
//! provider directly (`--addr HOST:PORT`), and learns what a provider hosts from its built-in
//! reflection service, so that no `.proto` file is needed on the command line:
//!
//! - `list`: the services and their providers (or, with `--addr`, what one provider hosts);
//! - `describe`: a service's methods and messages;
//! - `call`: one call, JSON in and JSON out (JSON lines for the streams of streaming methods);
//! - `watch`: a service's providers coming and going, live;
//! - `bench`: a load generator with a latency summary (messages/s for streaming methods).
//!
//! # Layout
//!
//! | module | what |
//! | --- | --- |
//! | `main.rs` | the options (clap) and the dispatch to a command |
//! | [`commands`] | one file per command |
//! | [`target`] | the global options: config file, registry, channels to providers |
//! | [`dynamic`] | descriptors fetched by reflection, and JSON to and from protobuf |
//! | [`exit`] | exit codes and the reporting of errors |

mod commands;
mod dynamic;
mod exit;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "mprpc",
    version,
    about = "List, describe, call, watch and load-test mprpc services",
    long_about = "List, describe, call, watch and load-test mprpc services.\n\n\
        Providers are found through the registry of the config file (-i FILE), or one provider \
        is addressed directly (--addr HOST:PORT). What a provider hosts, and the types of its \
        methods, come from its built-in reflection service: no .proto file is needed.",
    after_long_help = exit::EXIT_CODES_HELP
)]
struct Cli {
    /// Where to find providers, and the client settings.
    #[command(flatten)]
    target: target::TargetArgs,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Their help texts are on their `Args` (a doc comment here would replace
/// the long help there).
#[derive(Debug, Subcommand)]
enum Command {
    List(commands::list::Args),
    Describe(commands::describe::Args),
    Call(commands::call::Args),
    Watch(commands::watch::Args),
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return exit::report(&anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    let outcome = runtime.block_on(run(cli));
    // Background tasks (a registry session, connections) must not hold the exit up.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(&e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = target::Target::new(&cli.target)?;
    match cli.command {
        Command::List(args) => commands::list::run(&target, args).await,
        Command::Describe(args) => commands::describe::run(&target, args).await,
        Command::Call(args) => commands::call::run(&target, args).await,
        Command::Watch(args) => commands::watch::run(&target, args).await,
        Command::Bench(args) => commands::bench::run(&target, args).await,
    }
}
