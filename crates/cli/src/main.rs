//! `prompt`: promptvault's server and command-line client in one binary.
//!
//! This file only wires the process: parse the command line (clap exits 2 on usage errors),
//! install the TLS crypto provider, start the runtime, run the command, and turn a failure into
//! `error: <detail> (<code>)` on stderr and an exit code (see [`error::Exit`]).

mod args;
mod backend;
mod commands;
mod error;
mod input;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the serve path allocates on every request, and
/// glibc's malloc was a quarter of its instructions (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::{
    args::{Cli, Command},
    error::CliError,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default crypto provider; another caller may have installed one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `serve` sets up its own logging from the settings; other commands log only when asked.
    if !matches!(cli.command, Command::Serve(_)) && std::env::var_os("RUST_LOG").is_some() {
        promptvault_server::telemetry::init(promptvault_server::settings::LogFormat::Text);
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            CliError::internal(
                "runtime",
                format!("cannot start the async runtime: {error}"),
            )
        })
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{}", error.report());
            error.exit_code()
        }
    }
}
