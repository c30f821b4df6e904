//! `bridgeml spec`: inspect, fingerprint and fit preprocessing specs.

use std::path::PathBuf;

use anyhow::Context;
use bridgeml_core::Table;
use bridgeml_preprocess::spec::ENGINE_FORMAT_VERSION;
use bridgeml_preprocess::{tabular, Spec};
use serde::Serialize;

use crate::output::{print_json, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    #[command(subcommand)]
    command: SpecCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SpecCommand {
    /// Print the spec's fingerprint: sha256 of its canonical form and the engine's format version.
    Hash {
        /// The spec file (.toml or .json).
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Validate a spec and print it in canonical form with every default filled in.
    Check {
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Fit a tabular spec's statistics (means, stds, min/max, imputation values, categories) on training data.
    Fit {
        /// The tabular spec to fit.
        #[arg(long)]
        spec: PathBuf,
        /// Training data: .csv or .parquet.
        #[arg(long)]
        data: PathBuf,
        /// Where to write the fitted spec (TOML).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Serialize)]
struct HashReport {
    spec: PathBuf,
    fingerprint: String,
    engine_format_version: &'static str,
}

pub fn run(args: SpecArgs) -> anyhow::Result<Outcome> {
    match args.command {
        SpecCommand::Hash { spec, format } => {
            let parsed = Spec::from_path(&spec)?;
            let report = HashReport {
                fingerprint: parsed.fingerprint(),
                spec,
                engine_format_version: ENGINE_FORMAT_VERSION,
            };
            match format {
                Format::Json => print_json(&report)?,
                Format::Table => println!("{}", report.fingerprint),
            }
        }
        SpecCommand::Check { spec, format } => {
            let parsed = Spec::from_path(&spec)?;
            match format {
                Format::Json => print_json(&parsed)?,
                Format::Table => print!("{}", parsed.to_toml_string()),
            }
        }
        SpecCommand::Fit { spec, data, output } => {
            let parsed = Spec::from_path(&spec)?;
            let table = Table::read(&data)?;
            let fitted = tabular::fit(&parsed, &table, &data.display().to_string())?;
            let text = format!(
                "# Fitted by `bridgeml spec fit` on {} ({} rows).\n# fingerprint: {}\n{}",
                data.display(),
                table.n_rows(),
                fitted.fingerprint(),
                fitted.to_toml_string()
            );
            std::fs::write(&output, text)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "wrote {} ({} features)",
                output.display(),
                tabular::feature_names(&fitted).len()
            );
        }
    }
    Ok(Outcome::Success)
}
