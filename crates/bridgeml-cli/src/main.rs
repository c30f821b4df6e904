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
enum Command {
    /// Top-k classes of inputs through a preprocessing spec and a model.
    Predict(commands::predict::PredictArgs),
    /// Latency distribution per batch size, or activation ranges (--activations).
    Profile(commands::profile::ProfileArgs),
    /// Output divergence between two runtimes or two models.
    Diverge(commands::diverge::DivergeArgs),
    /// Parameters, weight bytes, MACs and peak activation memory of a model.
    Budget(commands::budget::BudgetArgs),
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Predict(a) => commands::predict::run(a),
        Command::Profile(a) => commands::profile::run(a),
        Command::Diverge(a) => commands::diverge::run(a),
        Command::Budget(a) => commands::budget::run(a),
    }
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
