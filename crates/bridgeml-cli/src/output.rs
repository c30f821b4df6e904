//! Rendering of typed reports: every command builds a serde report and
//! renders it here as a human table or as JSON with a stable schema.

use std::io::Write;

use serde::Serialize;

/// `--format` of every reporting command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables (default).
    #[default]
    Table,
    /// JSON with a stable schema, for scripts.
    Json,
}

/// How a command ended when it did run: exit code 0 or 1. Errors (exit 2) travel as `anyhow::Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked passed (exit 0).
    Success,
    /// The command ran and a check failed (exit 1).
    CheckFailed,
}

impl Outcome {
    pub fn from_pass(pass: bool) -> Self {
        if pass {
            Outcome::Success
        } else {
            Outcome::CheckFailed
        }
    }
}

/// Prints `report` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(report: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)?;
    Ok(())
}

/// A table with a header row, rendered with box-drawing-free ASCII so it
/// pastes cleanly into logs and pull requests.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(header.iter().copied());
    t
}
