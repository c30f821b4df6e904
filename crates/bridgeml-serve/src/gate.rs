//! The gate over a deployment bundle with its prediction log: the shadow
//! gate's evidence comes from the log (read here, next to the server that
//! writes it); everything else from `bridgeml_gate::run`. Shared by
//! `bridgeml gate` and `bridgeml demo`.

use std::path::{Path, PathBuf};

use bridgeml_gate::gates::ShadowEvidence;
use bridgeml_gate::manifest::Manifest;
use bridgeml_gate::run::{run_gate, RunOptions};
use bridgeml_gate::{GateName, GateReport};

use crate::report::{shadow_report, ReportRule};
use crate::Result;

/// Shadow evidence from the log (`log`, else the manifest's `[server] log`),
/// or why there is none.
pub fn shadow_evidence(
    manifest: &Manifest,
    log: Option<PathBuf>,
) -> Result<(Option<ShadowEvidence>, Option<String>)> {
    if manifest.shadow.is_none() && log.is_none() {
        return Ok((None, Some("no [shadow] candidate in the manifest".into())));
    }
    let log = log.unwrap_or_else(|| manifest.resolve(&manifest.server.log));
    if !log.exists() {
        return Ok((
            None,
            Some(format!("no prediction log yet ({})", log.display())),
        ));
    }
    let t = &manifest.gate.thresholds;
    let rule = ReportRule {
        min_hours: t.min_shadow_hours,
        max_disagreement: t.max_segment_disagreement,
        ..ReportRule::default()
    };
    let r = shadow_report(&log, None, None, rule)?;
    if r.compared == 0 {
        return Ok((
            None,
            Some(format!("{}: no shadowed requests logged", log.display())),
        ));
    }
    Ok((
        Some(ShadowEvidence {
            hours: r.hours_covered,
            samples: r.compared as usize,
            segments: r
                .segments
                .iter()
                .map(|s| (s.segment.clone(), s.compared as usize, s.disagreement_rate))
                .collect(),
            overall_disagreement: r.overall.disagreement_rate,
        }),
        None,
    ))
}

/// Loads the manifest and runs every gate; `created` is the report's time stamp.
pub fn gate_report(
    config: &Path,
    log: Option<PathBuf>,
    quick: bool,
    created: String,
    progress: impl FnMut(GateName),
) -> Result<GateReport> {
    let manifest = Manifest::load(config)?;
    let (shadow, shadow_skip_reason) = shadow_evidence(&manifest, log)?;
    let opts = RunOptions {
        quick,
        shadow,
        shadow_skip_reason,
        created,
    };
    Ok(run_gate(&manifest, &opts, progress)?)
}
