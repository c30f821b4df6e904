//! `bridgeml init`: write a commented minimal deployment manifest.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bridgeml_serve::manifest::{init_manifest, InitOptions, Manifest};
use clap::Args;

use crate::output::Outcome;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// ONNX model to serve.
    #[arg(long)]
    pub model: PathBuf,
    /// Preprocessing spec the model was trained with.
    #[arg(long)]
    pub spec: PathBuf,
    /// Class names, one per line.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Directory to write bridgeml.toml into (default: the current one).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite an existing bridgeml.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: InitArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let out = a.dir.join("bridgeml.toml");
    if out.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", out.display());
    }
    let text = init_manifest(&InitOptions {
        model: a.model,
        spec: a.spec,
        labels: a.labels,
        dir: a.dir.clone(),
    })?;
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    // What we wrote must load as is.
    Manifest::load(&out)?;
    println!("wrote {}", out.display());
    Ok(Outcome::Success)
}
