//! The Markdown report, sized for a pull-request comment: the verdict, one
//! table of gates, and each gate's checks folded in a `<details>` block.

use std::fmt::Write as _;

use super::{fmt_check_limit, fmt_check_value, fmt_value, Artifact, GateReport, Status};
use crate::svg::escape as html_escape;

/// Escapes text for Markdown inline context (table cells included): `<`, `>`
/// and `&` become entities (so no HTML gets through, even raw in the source),
/// other punctuation Markdown would interpret gets a backslash, and line
/// breaks become spaces so a table row stays one line.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn status_md(s: Status) -> String {
    let word = s.as_str().to_uppercase();
    match s {
        Status::Fail | Status::Warn => format!("**`{word}`**"),
        Status::Pass | Status::Skip => format!("`{word}`"),
    }
}

fn artifact_md(label: &str, a: &Option<Artifact>) -> Option<String> {
    a.as_ref().map(|a| {
        let short: String = a.fingerprint.chars().take(19).collect();
        format!("{label} {} ({})", md_escape(&a.path), md_escape(&short))
    })
}

/// Renders the report as GitHub-flavoured Markdown.
pub fn render_markdown(report: &GateReport) -> String {
    let mut m = String::new();
    let count = |s: Status| report.gates.iter().filter(|g| g.status == s).count();
    let _ = writeln!(
        m,
        "### {}: {}\n",
        md_escape(&report.title),
        status_md_verdict(report)
    );
    let _ = writeln!(
        m,
        "{} pass, {} warn, {} fail, {} skip; exit code {}  ",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip),
        report.exit_code
    );
    let mut meta: Vec<String> = Vec::new();
    meta.extend(artifact_md("model", &report.model));
    meta.extend(artifact_md("spec", &report.spec));
    meta.push(format!("manifest {}", md_escape(&report.manifest)));
    meta.push(md_escape(&report.created));
    let _ = writeln!(m, "{}\n", meta.join(" · "));

    m.push_str("| Gate | Status | Summary |\n| --- | --- | --- |\n");
    for g in &report.gates {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            md_escape(&g.name.title()),
            status_md(g.status),
            md_escape(&g.summary)
        );
    }

    for g in &report.gates {
        if g.checks.is_empty() && g.thresholds.is_empty() {
            continue;
        }
        // Inside <summary> Markdown is not processed: HTML escaping there.
        let _ = write!(
            m,
            "\n<details{}><summary><b>{}</b>: {}</summary>\n\n",
            if g.status == Status::Fail {
                " open"
            } else {
                ""
            },
            html_escape(&g.name.title()),
            g.status.as_str().to_uppercase()
        );
        if !g.checks.is_empty() {
            m.push_str(
                "| Check | Value | Limit | Status | Note |\n| --- | --- | --- | --- | --- |\n",
            );
            for c in &g.checks {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} |",
                    md_escape(&c.name),
                    md_escape(&fmt_check_value(c)),
                    md_escape(&fmt_check_limit(c)),
                    status_md(c.status),
                    md_escape(&c.message)
                );
            }
        }
        if !g.thresholds.is_empty() {
            let t: Vec<String> = g
                .thresholds
                .iter()
                .map(|(k, v)| format!("{} = {}", md_escape(k), md_escape(&fmt_value(v))))
                .collect();
            let _ = writeln!(m, "\nThresholds: {}", t.join(", "));
        }
        m.push_str("\n</details>\n");
    }
    if report.gates.iter().any(|g| !g.plots.is_empty()) {
        m.push_str("\nPlots: see report.html.\n");
    }
    m
}

fn status_md_verdict(report: &GateReport) -> String {
    format!("**`{}`**", report.verdict.as_str().to_uppercase())
}
