//! `bridgeml serve`: the serving sidecar (see docs/SERVING.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use bridgeml_serve::manifest::Manifest;
use bridgeml_serve::server::{run_blocking, Options};
use clap::Args;

use crate::output::Outcome;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Deployment manifest (`bridgeml init` writes one).
    #[arg(long, default_value = "bridgeml.toml")]
    pub config: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address.
    #[arg(long)]
    pub public: bool,
}

pub fn run(a: ServeArgs) -> anyhow::Result<Outcome> {
    if !a.listen.ip().is_loopback() && !a.public {
        bail!(
            "--listen {} is not a loopback address; pass --public to expose the server",
            a.listen
        );
    }
    let manifest = Manifest::load(&a.config)?;
    run_blocking(&manifest, a.listen, Options::default(), |addr| {
        println!("bridgeml serve: listening on http://{addr}");
    })?;
    eprintln!("bridgeml serve: stopped; log flushed");
    Ok(Outcome::Success)
}
