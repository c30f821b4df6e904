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
#[command(name = "bridgeml", version, propagate_version = true)]
#[command(
    about = "Close the gap between validation accuracy and production: preprocessing parity, runtime profiling, quantization audits, drift monitoring, OOD guard rails, shadow tests."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole deployment gap in one run: train, quantize, guard, monitor, simulate traffic, gate.
    Demo(commands::demo::DemoArgs),
    /// Inspect, fingerprint and fit preprocessing specs.
    Spec(commands::spec::SpecArgs),
    /// Run a preprocessing spec on inputs and write the tensor as .npy.
    Preprocess(commands::preprocess::PreprocessArgs),
    /// Compare the engine with another pipeline's tensors and diagnose differences.
    Parity(commands::parity::ParityArgs),
    /// Print each input's preprocessed-tensor hash (the one the server logs).
    Hash(commands::preprocess::HashArgs),
    /// Compare current data with a reference (PSI, KS, chi-square, MMD, ...); calibrate; label shift.
    Drift(commands::drift::DriftArgs),
    /// Evaluate the retraining trigger policy on monitor outputs.
    Policy(commands::policy::PolicyArgs),
    /// Top-k classes of inputs through a preprocessing spec and a model.
    Predict(commands::predict::PredictArgs),
    /// Latency distribution per batch size, or activation ranges (--activations).
    Profile(commands::profile::ProfileArgs),
    /// Output divergence between two runtimes or two models.
    Diverge(commands::diverge::DivergeArgs),
    /// Parameters, weight bytes, MACs and peak activation memory of a model.
    Budget(commands::budget::BudgetArgs),
    /// Write a commented minimal deployment manifest (bridgeml.toml).
    Init(commands::init::InitArgs),
    /// Serve the manifest's model over HTTP with logging, monitors and shadow.
    Serve(commands::serve::ServeArgs),
    /// Shadow-test reports from the prediction log.
    Shadow(commands::shadow::ShadowArgs),
    /// The pre-deployment gate: every check the manifest has data for; exit 1 when one fails.
    Gate(commands::gate::GateArgs),
    /// The steady-state (30-day) view of a deployment from its prediction log.
    Report(commands::report::ReportArgs),
    /// OOD guard rails: calibrate a threshold, score inputs, evaluate against an OOD set.
    Guard(commands::guard::GuardArgs),
    /// INT8 post-training quantization into a QDQ ONNX model (calibrated through the spec).
    Quantize(commands::quantize::QuantizeArgs),
    /// Audits: `audit quant` shows which classes pay for a quantized model.
    Audit(commands::audit::AuditArgs),
    /// Train a small CNN/MLP from an architecture file and export FP32 ONNX.
    Train(commands::train::TrainArgs),
    /// Quantization-aware fine-tuning of an FP32 ONNX model; exports QDQ ONNX.
    Qat(commands::qat::QatArgs),
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Spec(args) => commands::spec::run(args),
        Command::Preprocess(args) => commands::preprocess::run_preprocess(args),
        Command::Parity(args) => commands::parity::run(args),
        Command::Hash(args) => commands::preprocess::run_hash(args),
        Command::Drift(args) => commands::drift::run(args),
        Command::Policy(args) => commands::policy::run(args),
        Command::Predict(a) => commands::predict::run(a),
        Command::Profile(a) => commands::profile::run(a),
        Command::Diverge(a) => commands::diverge::run(a),
        Command::Budget(a) => commands::budget::run(a),
        Command::Init(a) => commands::init::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Shadow(a) => commands::shadow::run(a),
        Command::Gate(a) => commands::gate::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Guard(args) => commands::guard::run(args),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Audit(a) => commands::audit::run(a),
        Command::Train(args) => commands::train::run(args),
        Command::Qat(args) => commands::qat::run(args),
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
