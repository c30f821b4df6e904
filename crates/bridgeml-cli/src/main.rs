//! The `bridgeml` command line: argument parsing and rendering only; all
//! computation lives in the library crates.

mod commands;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::Outcome;

/// bridgeml closes the gap between validation accuracy and what users see in
/// production: preprocessing parity, runtime profiling, quantization audits,
/// drift monitoring, OOD guard rails and shadow testing.
#[derive(Debug, Parser)]
#[command(name = "bridgeml", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {}
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
