//! Plain-text summary for a terminal: the verdict, one line per gate, and the
//! checks that did not pass under their gate.

use std::fmt::Write as _;

use super::{fmt_check_limit, fmt_check_value, GateReport, Status};

/// Renders the report as plain text (no colours, no markup).
pub fn render_text(report: &GateReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{}: {} (exit code {})",
        report.title,
        report.verdict.as_str().to_uppercase(),
        report.exit_code
    );
    let mut meta = vec![format!("manifest {}", report.manifest)];
    if let Some(m) = &report.model {
        meta.push(format!("model {} {}", m.path, m.fingerprint));
    }
    meta.push(report.created.clone());
    let _ = writeln!(t, "{}\n", meta.join(" | "));
    let width = report
        .gates
        .iter()
        .map(|g| g.name.as_str().chars().count())
        .max()
        .unwrap_or(0);
    for g in &report.gates {
        let _ = writeln!(
            t,
            "  {:<4}  {:<width$}  {}",
            g.status.as_str().to_uppercase(),
            g.name.as_str(),
            g.summary
        );
        for c in g
            .checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
        {
            let _ = write!(
                t,
                "  {:<4}  {:<width$}    - {}: {} (limit {})",
                "",
                "",
                c.name,
                fmt_check_value(c),
                fmt_check_limit(c)
            );
            if !c.message.is_empty() {
                let _ = write!(t, ": {}", c.message);
            }
            let _ = writeln!(t, " {}", c.status.as_str().to_uppercase());
        }
    }
    t
}
