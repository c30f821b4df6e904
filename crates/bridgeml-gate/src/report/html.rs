//! The self-contained HTML report: inline CSS and inline SVG, no scripts, no
//! external resources, so it opens offline and can be attached to a CI run.

use std::fmt::Write as _;

use super::{
    fmt_check_limit, fmt_check_value, fmt_value, Artifact, GateReport, GateResult, Status,
};
use crate::svg::{escape, render_plot};

const CSS: &str = r#"
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f5f6f8;
--pass:#17803d;--pass-bg:#dcf5e3;--warn:#a35a00;--warn-bg:#fdf0d5;--fail:#c02626;--fail-bg:#fde2e1;--skip:#4b5563;--skip-bg:#eceff3}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 40px}
h1{font-size:22px;margin:0;font-weight:650}
h2{font-size:17px;margin:0;font-weight:650}
h3{font-size:13px;margin:18px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;font-weight:600}
a{color:inherit}
code{font:12.5px/1.4 ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,monospace;background:#f1f3f6;padding:1px 5px;border-radius:4px;word-break:break-all}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;margin-top:18px}
.head{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
.head .counts{margin-left:auto;color:var(--muted)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:14px 0 0}
.meta dt{color:var(--muted)}
.meta dd{margin:0;min-width:0}
.badge{display:inline-block;min-width:46px;text-align:center;padding:1px 8px;border-radius:999px;font-size:11.5px;font-weight:700;letter-spacing:.05em;text-transform:uppercase;border:1px solid transparent}
.badge.big{font-size:15px;padding:4px 16px}
.pass{color:var(--pass)}.badge.pass{background:var(--pass-bg);border-color:#b7e4c4}
.warn{color:var(--warn)}.badge.warn{background:var(--warn-bg);border-color:#f3d7a0}
.fail{color:var(--fail)}.badge.fail{background:var(--fail-bg);border-color:#f6bcb9}
.skip{color:var(--skip)}.badge.skip{background:var(--skip-bg);border-color:#d9dee5}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em;background:#fafbfc}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
tr.row-fail td{background:#fff7f7}
tr.row-warn td{background:#fffbf2}
.gates td:first-child{white-space:nowrap;font-weight:600}
.gates a{text-decoration:none}
.gates a:hover{text-decoration:underline}
section.gate{border-left:5px solid var(--skip)}
section.gate.s-pass{border-left-color:var(--pass)}
section.gate.s-warn{border-left-color:#e0a030}
section.gate.s-fail{border-left-color:var(--fail)}
section.gate .summary{margin:6px 0 0;color:#374151}
.thresholds{display:flex;flex-wrap:wrap;gap:6px}
.thresholds span{background:#f3f4f6;border-radius:6px;padding:2px 8px;font-size:12.5px}
.thresholds b{font-weight:600;color:var(--muted)}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
figure{margin:0;border:1px solid #eef0f3;border-radius:8px;padding:6px;background:#fff}
figure svg{display:block;width:100%;height:auto}
details{margin-top:14px}
summary{cursor:pointer;color:var(--muted);font-size:13px}
pre{background:#f8fafc;border:1px solid #eef0f3;border-radius:6px;padding:10px 12px;overflow:auto;font:12px/1.45 ui-monospace,"DejaVu Sans Mono",Menlo,monospace;max-height:360px}
footer{color:var(--muted);font-size:12px;margin-top:24px;text-align:center}
.hw{margin-top:12px;width:auto}
.hw td{padding:3px 10px 3px 0;border:0}
.hw td:first-child{color:var(--muted)}
"#;

fn badge(status: &str, big: bool) -> String {
    format!(
        r#"<span class="badge {s}{b}">{s}</span>"#,
        s = escape(status),
        b = if big { " big" } else { "" }
    )
}

/// An id fragment made of `[a-z0-9-]` only.
fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(40);
    out
}

fn artifact(a: &Option<Artifact>) -> String {
    match a {
        None => "<span class=\"skip\">–</span>".into(),
        Some(a) => {
            // Long digests are shortened on screen; the full one is the tooltip.
            let fp = &a.fingerprint;
            let short: String = if fp.chars().count() > 23 {
                fp.chars().take(23).collect::<String>() + "…"
            } else {
                fp.clone()
            };
            format!(
                r#"<code>{}</code> <code title="{}">{}</code>"#,
                escape(&a.path),
                escape(fp),
                escape(&short)
            )
        }
    }
}

/// Renders the report as one self-contained HTML document.
pub fn render_html(report: &GateReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!(
        "{}: {}",
        report.title,
        report.verdict.as_str().to_uppercase()
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );

    // Summary header.
    let count = |s: Status| report.gates.iter().filter(|g| g.status == s).count();
    let _ = write!(
        h,
        r#"<div class="card"><div class="head"><h1>{}</h1>{}<span class="counts">{} pass · {} warn · {} fail · {} skip · exit code {}</span></div>"#,
        escape(&report.title),
        badge(report.verdict.as_str(), true),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip),
        report.exit_code
    );
    let _ = write!(
        h,
        r#"<dl class="meta"><dt>Model</dt><dd>{}</dd><dt>Spec</dt><dd>{}</dd><dt>Manifest</dt><dd><code>{}</code></dd><dt>Created</dt><dd>{}</dd><dt>bridgeml</dt><dd>{} (report schema {})</dd></dl>"#,
        artifact(&report.model),
        artifact(&report.spec),
        escape(&report.manifest),
        escape(&report.created),
        escape(&report.bridgeml_version),
        report.schema_version
    );
    if !report.hardware.is_empty() {
        h.push_str(r#"<table class="hw"><tbody>"#);
        for (k, v) in &report.hardware {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(k),
                escape(&fmt_value(v))
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</div>\n");

    // Gate table.
    h.push_str(r#"<div class="card"><table class="gates"><thead><tr><th>Gate</th><th>Status</th><th>Summary</th><th>Checks</th></tr></thead><tbody>"#);
    for (i, g) in report.gates.iter().enumerate() {
        let passed = g.checks.iter().filter(|c| c.status == Status::Pass).count();
        let _ = write!(
            h,
            r##"<tr class="row-{s}"><td><a href="#{id}">{}</a></td><td>{}</td><td>{}</td><td class="num">{}</td></tr>"##,
            escape(&g.name.title()),
            badge(g.status.as_str(), false),
            escape(&g.summary),
            if g.checks.is_empty() {
                "–".to_string()
            } else {
                format!("{passed} / {} pass", g.checks.len())
            },
            s = g.status.as_str(),
            id = gate_id(i, g),
        );
    }
    h.push_str("</tbody></table></div>\n");

    for (i, g) in report.gates.iter().enumerate() {
        gate_section(&mut h, i, g);
    }

    let _ = write!(
        h,
        "<footer>Written by bridgeml {} · self-contained: no scripts, no network</footer>\n</main>\n</body>\n</html>\n",
        escape(&report.bridgeml_version)
    );
    h
}

fn gate_id(i: usize, g: &GateResult) -> String {
    format!("gate-{}-{}", i + 1, slug(g.name.as_str()))
}

fn gate_section(h: &mut String, i: usize, g: &GateResult) {
    let _ = write!(
        h,
        r#"<section class="card gate s-{s}" id="{id}"><div class="head"><h2>{}</h2>{}<span class="counts"><code>{}</code></span></div><p class="summary">{}</p>"#,
        escape(&g.name.title()),
        badge(g.status.as_str(), false),
        escape(g.name.as_str()),
        escape(&g.summary),
        s = g.status.as_str(),
        id = gate_id(i, g),
    );
    if !g.checks.is_empty() {
        h.push_str(r#"<h3>Checks</h3><table><thead><tr><th>Check</th><th>Value</th><th>Limit</th><th>Status</th><th>Note</th></tr></thead><tbody>"#);
        for c in &g.checks {
            let _ = write!(
                h,
                r#"<tr class="row-{s}"><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&c.name),
                escape(&fmt_check_value(c)),
                escape(&fmt_check_limit(c)),
                badge(c.status.as_str(), false),
                escape(&c.message),
                s = c.status.as_str()
            );
        }
        h.push_str("</tbody></table>");
    }
    if !g.thresholds.is_empty() {
        h.push_str(r#"<h3>Thresholds</h3><div class="thresholds">"#);
        for (k, v) in &g.thresholds {
            let _ = write!(
                h,
                "<span><b>{}</b> {}</span>",
                escape(k),
                escape(&fmt_value(v))
            );
        }
        h.push_str("</div>");
    }
    if !g.plots.is_empty() {
        h.push_str(r#"<h3>Plots</h3><div class="plots">"#);
        for p in &g.plots {
            let _ = write!(h, "<figure>{}</figure>", render_plot(p));
        }
        h.push_str("</div>");
    }
    if !g.evidence.is_empty() {
        let json = serde_json::to_string_pretty(&g.evidence).unwrap_or_default();
        let _ = write!(
            h,
            "<details><summary>Evidence ({} {})</summary><pre>{}</pre></details>",
            g.evidence.len(),
            if g.evidence.len() == 1 {
                "item"
            } else {
                "items"
            },
            escape(&json)
        );
    }
    h.push_str("</section>\n");
}
