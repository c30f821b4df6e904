//! The gate report: typed, serde-serializable, with a stable JSON schema
//! (documented in `docs/REPORTS.md`), the verdict rule, and the renderers.
//!
//! Every key is always written (absent values are `null` or empty), so a
//! consumer can rely on the key set; [`SCHEMA_VERSION`] changes when a key is
//! renamed or removed, not when one is added.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{GateError, Result};

mod html;
mod markdown;
mod text;

pub use html::render_html;
pub use markdown::render_markdown;
pub use text::render_text;

/// Version of the report JSON schema (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Overall outcome of a gate run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    /// The verdict of a set of statuses: `fail` if any failed, else `warn` if
    /// any warned, else `pass` (skipped gates do not count either way).
    pub fn from_statuses<I: IntoIterator<Item = Status>>(statuses: I) -> Verdict {
        let mut verdict = Verdict::Pass;
        for s in statuses {
            match s {
                Status::Fail => return Verdict::Fail,
                Status::Warn => verdict = Verdict::Warn,
                Status::Pass | Status::Skip => {}
            }
        }
        verdict
    }

    /// Process exit code: 0 for pass and warn (warnings are allowed), 1 for fail.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass | Verdict::Warn => 0,
            Verdict::Fail => 1,
        }
    }

    /// Lower-case name as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome of one gate or one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// Not evaluated (no data for it); the summary says why.
    Skip,
}

impl Status {
    /// Lower-case name as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }

    /// The worst of a set of check statuses, for a gate: fail > warn > pass;
    /// skip only when every check was skipped (or there are none).
    pub fn worst<I: IntoIterator<Item = Status>>(statuses: I) -> Status {
        let mut any_pass = false;
        let mut any_warn = false;
        for s in statuses {
            match s {
                Status::Fail => return Status::Fail,
                Status::Warn => any_warn = true,
                Status::Pass => any_pass = true,
                Status::Skip => {}
            }
        }
        if any_warn {
            Status::Warn
        } else if any_pass {
            Status::Pass
        } else {
            Status::Skip
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which gate a result belongs to. Serialized as its lower-case name; any
/// other name (e.g. a section of the 30-day `bridgeml report`) round-trips as
/// [`GateName::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateName {
    Parity,
    Quantization,
    Guard,
    Drift,
    Latency,
    Budget,
    Shadow,
    Policy,
    #[serde(untagged)]
    Other(String),
}

impl GateName {
    /// The eight gates of `bridgeml gate`, in report order.
    pub const ALL: [GateName; 8] = [
        GateName::Parity,
        GateName::Quantization,
        GateName::Guard,
        GateName::Drift,
        GateName::Latency,
        GateName::Budget,
        GateName::Shadow,
        GateName::Policy,
    ];

    /// The name as in the JSON.
    pub fn as_str(&self) -> &str {
        match self {
            GateName::Parity => "parity",
            GateName::Quantization => "quantization",
            GateName::Guard => "guard",
            GateName::Drift => "drift",
            GateName::Latency => "latency",
            GateName::Budget => "budget",
            GateName::Shadow => "shadow",
            GateName::Policy => "policy",
            GateName::Other(s) => s,
        }
    }

    /// A human title for headings.
    pub fn title(&self) -> String {
        match self {
            GateName::Parity => "Preprocessing parity".into(),
            GateName::Quantization => "Quantization".into(),
            GateName::Guard => "OOD guard".into(),
            GateName::Drift => "Drift baselines".into(),
            GateName::Latency => "Latency".into(),
            GateName::Budget => "Resource budget".into(),
            GateName::Shadow => "Shadow test".into(),
            GateName::Policy => "Retraining policy".into(),
            GateName::Other(s) => {
                let s = s.replace(['_', '-'], " ");
                let mut c = s.chars();
                match c.next() {
                    Some(first) => first.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            }
        }
    }
}

impl fmt::Display for GateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file the report is about, with its content fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub path: String,
    /// Content fingerprint as bridgeml-core writes it (e.g. `sha256:…`).
    pub fingerprint: String,
}

/// How a check's value is compared with its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// value <= limit
    Le,
    /// value < limit
    Lt,
    /// value >= limit
    Ge,
    /// value > limit
    Gt,
    /// value == limit
    Eq,
}

impl Comparison {
    /// Whether `value` satisfies `value <op> limit`.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Comparison::Le => value <= limit,
            Comparison::Lt => value < limit,
            Comparison::Ge => value >= limit,
            Comparison::Gt => value > limit,
            Comparison::Eq => value == limit,
        }
    }

    /// The operator as text: `<=`, `<`, `>=`, `>`, `==`.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Le => "<=",
            Comparison::Lt => "<",
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
            Comparison::Eq => "==",
        }
    }
}

/// The limit a check's value is held to: `value <op> limit.value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub op: Comparison,
    pub value: Value,
}

/// One measured item of a gate (e.g. `p95_ms`, `recall_drop[Shirt]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// The measured value (number, string such as a hash, bool), or null.
    #[serde(default)]
    pub value: Option<Value>,
    /// The limit it is held to, or null for informational checks.
    #[serde(default)]
    pub limit: Option<Limit>,
    /// Unit of value and limit (e.g. `ms`, `points`), or null.
    #[serde(default)]
    pub unit: Option<String>,
    /// Human explanation; empty when value and limit say it all.
    #[serde(default)]
    pub message: String,
}

impl Check {
    /// A check with a given status and nothing else.
    pub fn new(name: impl Into<String>, status: Status) -> Check {
        Check {
            name: name.into(),
            status,
            value: None,
            limit: None,
            unit: None,
            message: String::new(),
        }
    }

    /// A numeric check whose status follows from the comparison: pass when
    /// `value <op> limit` holds, fail otherwise (NaN fails).
    pub fn compare(name: impl Into<String>, value: f64, op: Comparison, limit: f64) -> Check {
        let status = if op.holds(value, limit) {
            Status::Pass
        } else {
            Status::Fail
        };
        Check::new(name, status)
            .with_value(value)
            .with_limit(op, limit)
    }

    /// Like [`Check::compare`], but a violated limit only warns.
    pub fn compare_warn(name: impl Into<String>, value: f64, op: Comparison, limit: f64) -> Check {
        let mut c = Check::compare(name, value, op, limit);
        if c.status == Status::Fail {
            c.status = Status::Warn;
        }
        c
    }

    pub fn with_value(mut self, value: impl Into<Value>) -> Check {
        // serde_json maps a non-finite f64 to null already.
        self.value = Some(value.into());
        self
    }

    pub fn with_limit(mut self, op: Comparison, value: impl Into<Value>) -> Check {
        self.limit = Some(Limit {
            op,
            value: value.into(),
        });
        self
    }

    pub fn with_unit(mut self, unit: impl Into<String>) -> Check {
        self.unit = Some(unit.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Check {
        self.message = message.into();
        self
    }
}

/// A horizontal axis position worth marking (p95, an SLA, a threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VLine {
    pub label: String,
    pub x: f64,
    /// `marker` (a statistic, dashed grey) or `limit` (a threshold, solid red).
    #[serde(default)]
    pub style: LineStyle,
}

/// A vertical axis level worth marking (a target recall, a limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HLine {
    pub label: String,
    pub y: f64,
    #[serde(default)]
    pub style: LineStyle,
}

/// How a reference line is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStyle {
    /// A statistic of the data (p50, p95): dashed, dark grey.
    #[default]
    Marker,
    /// A threshold the data is held to (SLA, OOD threshold): solid, red.
    Limit,
}

impl VLine {
    pub fn marker(label: impl Into<String>, x: f64) -> VLine {
        VLine {
            label: label.into(),
            x,
            style: LineStyle::Marker,
        }
    }
    pub fn limit(label: impl Into<String>, x: f64) -> VLine {
        VLine {
            label: label.into(),
            x,
            style: LineStyle::Limit,
        }
    }
}

impl HLine {
    pub fn marker(label: impl Into<String>, y: f64) -> HLine {
        HLine {
            label: label.into(),
            y,
            style: LineStyle::Marker,
        }
    }
    pub fn limit(label: impl Into<String>, y: f64) -> HLine {
        HLine {
            label: label.into(),
            y,
            style: LineStyle::Limit,
        }
    }
}

/// One distribution of a histogram: `counts[i]` falls in `[bins[i], bins[i+1])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistSeries {
    pub name: String,
    /// Counts or fractions (compare distributions of different sizes as fractions).
    pub counts: Vec<f64>,
}

/// Overlaid histograms over shared bin edges (latency, PSI reference vs
/// current, OOD scores in-distribution vs OOD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    #[serde(default = "default_count_label")]
    pub y_label: String,
    /// Bin edges, ascending, one more than each series' counts.
    pub bins: Vec<f64>,
    pub series: Vec<HistSeries>,
    #[serde(default)]
    pub vlines: Vec<VLine>,
}

fn default_count_label() -> String {
    "count".into()
}

impl Histogram {
    /// Bins raw samples: `n_bins` equal bins over `range` (default: the
    /// samples' min..max over all series; non-finite samples are dropped).
    /// With `fractions`, each series is divided by its own sample count so
    /// distributions of different sizes compare.
    pub fn from_samples(
        title: impl Into<String>,
        x_label: impl Into<String>,
        series: &[(&str, &[f64])],
        n_bins: usize,
        range: Option<(f64, f64)>,
        fractions: bool,
    ) -> Histogram {
        let n_bins = n_bins.max(1);
        let (lo, hi) = range.unwrap_or_else(|| {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for (_, xs) in series {
                for &x in xs.iter().filter(|x| x.is_finite()) {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if lo.is_finite() {
                (lo, hi)
            } else {
                (0.0, 1.0)
            }
        });
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let width = (hi - lo) / n_bins as f64;
        let bins: Vec<f64> = (0..=n_bins).map(|i| lo + width * i as f64).collect();
        let series = series
            .iter()
            .map(|(name, xs)| {
                let mut counts = vec![0.0; n_bins];
                let mut n = 0usize;
                for &x in xs.iter().filter(|x| x.is_finite()) {
                    // Out-of-range samples go to the edge bins so nothing is lost.
                    let i = (((x - lo) / width).floor().max(0.0) as usize).min(n_bins - 1);
                    counts[i] += 1.0;
                    n += 1;
                }
                if fractions && n > 0 {
                    counts.iter_mut().for_each(|c| *c /= n as f64);
                }
                HistSeries {
                    name: (*name).to_string(),
                    counts,
                }
            })
            .collect();
        Histogram {
            title: title.into(),
            x_label: x_label.into(),
            y_label: if fractions { "fraction" } else { "count" }.into(),
            bins,
            series,
            vlines: Vec::new(),
        }
    }

    pub fn with_vline(mut self, line: VLine) -> Histogram {
        self.vlines.push(line);
        self
    }
}

/// One series of a grouped bar chart: `values[i]` belongs to `categories[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<f64>,
}

/// Bars per category, one per series side by side (per-class recall FP32 vs
/// INT8; disagreement by segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupedBars {
    pub title: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    pub y_label: String,
    #[serde(default)]
    pub hlines: Vec<HLine>,
}

/// One line of a line plot; `values[i]` belongs to `x_labels[i]`, null is a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A metric over ordered windows (days, hours) for the 30-day report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Evenly spaced positions along x (e.g. dates).
    pub x_labels: Vec<String>,
    pub series: Vec<LineSeries>,
    #[serde(default)]
    pub hlines: Vec<HLine>,
}

/// A plot as data; renderers draw it (see [`crate::svg`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Plot {
    Histogram(Histogram),
    GroupedBars(GroupedBars),
    Line(LinePlot),
}

impl Plot {
    pub fn title(&self) -> &str {
        match self {
            Plot::Histogram(p) => &p.title,
            Plot::GroupedBars(p) => &p.title,
            Plot::Line(p) => &p.title,
        }
    }
}

impl From<Histogram> for Plot {
    fn from(p: Histogram) -> Plot {
        Plot::Histogram(p)
    }
}
impl From<GroupedBars> for Plot {
    fn from(p: GroupedBars) -> Plot {
        Plot::GroupedBars(p)
    }
}
impl From<LinePlot> for Plot {
    fn from(p: LinePlot) -> Plot {
        Plot::Line(p)
    }
}

/// The outcome of one gate with everything behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub name: GateName,
    pub status: Status,
    /// One line: why this status (for skip: why it was not run).
    pub summary: String,
    /// Free-form measured data (per-class recalls, hashes, file paths, …).
    #[serde(default)]
    pub evidence: BTreeMap<String, Value>,
    /// Thresholds in force, as set in the manifest or by default.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Value>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub plots: Vec<Plot>,
}

impl GateResult {
    /// A gate with no checks yet; its status follows the checks added with
    /// [`GateResult::with_check`] (worst wins), `skip` while there are none.
    pub fn new(name: GateName, summary: impl Into<String>) -> GateResult {
        GateResult {
            name,
            status: Status::Skip,
            summary: summary.into(),
            evidence: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            checks: Vec::new(),
            plots: Vec::new(),
        }
    }

    /// A gate that was not run, with the reason.
    pub fn skipped(name: GateName, reason: impl Into<String>) -> GateResult {
        GateResult::new(name, reason)
    }

    /// Adds a check and recomputes the status from all checks.
    pub fn with_check(mut self, check: Check) -> GateResult {
        self.push_check(check);
        self
    }

    /// Adds a check and recomputes the status from all checks.
    pub fn push_check(&mut self, check: Check) {
        self.checks.push(check);
        self.status = Status::worst(self.checks.iter().map(|c| c.status));
    }

    /// Sets the status explicitly (overrides what the checks say).
    pub fn with_status(mut self, status: Status) -> GateResult {
        self.status = status;
        self
    }

    pub fn with_evidence(mut self, key: impl Into<String>, value: impl Into<Value>) -> GateResult {
        self.evidence.insert(key.into(), value.into());
        self
    }

    pub fn with_threshold(mut self, key: impl Into<String>, value: impl Into<Value>) -> GateResult {
        self.thresholds.insert(key.into(), value.into());
        self
    }

    pub fn with_plot(mut self, plot: impl Into<Plot>) -> GateResult {
        self.plots.push(plot.into());
        self
    }
}

/// The whole report of one `bridgeml gate` run (or one `bridgeml report`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub schema_version: u32,
    /// Version of bridgeml that wrote it.
    pub bridgeml_version: String,
    /// Heading of the rendered reports, e.g. `bridgeml gate`.
    pub title: String,
    /// RFC 3339 time stamp, supplied by the caller (libraries read no clock).
    pub created: String,
    pub verdict: Verdict,
    /// 0 for pass/warn, 1 for fail (exit code 2, could not run, has no report).
    pub exit_code: i32,
    /// Path of the manifest (`bridgeml.toml`) the gate ran on.
    pub manifest: String,
    pub model: Option<Artifact>,
    pub spec: Option<Artifact>,
    /// Free-form description of the machine (CPU, cores, backend, …).
    #[serde(default)]
    pub hardware: BTreeMap<String, Value>,
    pub gates: Vec<GateResult>,
}

impl GateReport {
    /// A report over `gates`, verdict and exit code computed.
    pub fn new(
        created: impl Into<String>,
        manifest: impl Into<String>,
        gates: Vec<GateResult>,
    ) -> GateReport {
        let mut r = GateReport {
            schema_version: SCHEMA_VERSION,
            bridgeml_version: env!("CARGO_PKG_VERSION").to_string(),
            title: "bridgeml gate".into(),
            created: created.into(),
            verdict: Verdict::Pass,
            exit_code: 0,
            manifest: manifest.into(),
            model: None,
            spec: None,
            hardware: BTreeMap::new(),
            gates,
        };
        r.refresh_verdict();
        r
    }

    /// Recomputes `verdict` and `exit_code` from the gates (call after
    /// changing `gates` directly).
    pub fn refresh_verdict(&mut self) {
        self.verdict = Verdict::from_statuses(self.gates.iter().map(|g| g.status));
        self.exit_code = self.verdict.exit_code();
    }

    /// Adds a gate and recomputes the verdict.
    pub fn push_gate(&mut self, gate: GateResult) {
        self.gates.push(gate);
        self.refresh_verdict();
    }

    pub fn with_title(mut self, title: impl Into<String>) -> GateReport {
        self.title = title.into();
        self
    }

    pub fn with_model(
        mut self,
        path: impl Into<String>,
        fingerprint: impl Into<String>,
    ) -> GateReport {
        self.model = Some(Artifact {
            path: path.into(),
            fingerprint: fingerprint.into(),
        });
        self
    }

    pub fn with_spec(
        mut self,
        path: impl Into<String>,
        fingerprint: impl Into<String>,
    ) -> GateReport {
        self.spec = Some(Artifact {
            path: path.into(),
            fingerprint: fingerprint.into(),
        });
        self
    }

    pub fn with_hardware(mut self, key: impl Into<String>, value: impl Into<Value>) -> GateReport {
        self.hardware.insert(key.into(), value.into());
        self
    }

    /// Parses report JSON, refusing another schema version.
    pub fn from_json(text: &str, path: &Path) -> Result<GateReport> {
        let value: Value = serde_json::from_str(text).map_err(|source| GateError::ReportJson {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(found) = value.get("schema_version").and_then(Value::as_u64) {
            if found != u64::from(SCHEMA_VERSION) {
                return Err(GateError::SchemaVersion {
                    path: path.to_path_buf(),
                    found: found.try_into().unwrap_or(u32::MAX),
                    supported: SCHEMA_VERSION,
                });
            }
        }
        serde_json::from_value(value).map_err(|source| GateError::ReportJson {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads `report.json` written by [`write_reports`].
    pub fn read(path: &Path) -> Result<GateReport> {
        let text = std::fs::read_to_string(path).map_err(|source| GateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        GateReport::from_json(&text, path)
    }
}

/// Pretty-printed JSON of the report (the stable schema), newline-terminated.
pub fn render_json(report: &GateReport) -> String {
    // Cannot fail: all map keys are strings and non-finite floats become null.
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}

/// Paths of the files written by [`write_reports`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` (created if
/// missing).
pub fn write_reports(report: &GateReport, dir: &Path) -> Result<ReportFiles> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GateError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = ReportFiles {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    std::fs::write(&files.json, render_json(report)).map_err(io(&files.json))?;
    std::fs::write(&files.markdown, render_markdown(report)).map_err(io(&files.markdown))?;
    std::fs::write(&files.html, render_html(report)).map_err(io(&files.html))?;
    Ok(files)
}

/// Formats a number for humans: integers plainly, others with 4 significant
/// digits, no exponent for everyday magnitudes.
pub(crate) fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let a = x.abs();
    if !(1e-4..1e9).contains(&a) {
        return format!("{x:.3e}");
    }
    let digits = 4 - 1 - a.log10().floor() as i32;
    let decimals = digits.max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A JSON value for humans: numbers via [`fmt_num`], strings bare, others as JSON.
pub(crate) fn fmt_value(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) => n.as_f64().map(fmt_num).unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Value of a check with its unit, e.g. `8.2 ms`.
pub(crate) fn fmt_check_value(c: &Check) -> String {
    match &c.value {
        None => "–".into(),
        Some(v) => with_unit(fmt_value(v), c.unit.as_deref()),
    }
}

/// Limit of a check, e.g. `<= 10 ms`.
pub(crate) fn fmt_check_limit(c: &Check) -> String {
    match &c.limit {
        None => "–".into(),
        Some(l) => format!(
            "{} {}",
            l.op.symbol(),
            with_unit(fmt_value(&l.value), c.unit.as_deref())
        ),
    }
}

fn with_unit(s: String, unit: Option<&str>) -> String {
    match unit {
        Some(u) if !u.is_empty() && s != "–" => format!("{s} {u}"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_humans() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.123456), "0.1235");
        assert_eq!(fmt_num(12.5), "12.5");
        assert_eq!(fmt_num(1234.5678), "1235");
        assert_eq!(fmt_num(-0.05), "-0.05");
        assert_eq!(fmt_num(1e-7), "1.000e-7");
    }

    #[test]
    fn worst_status() {
        assert_eq!(Status::worst([]), Status::Skip);
        assert_eq!(Status::worst([Status::Skip, Status::Pass]), Status::Pass);
        assert_eq!(Status::worst([Status::Warn, Status::Pass]), Status::Warn);
        assert_eq!(Status::worst([Status::Warn, Status::Fail]), Status::Fail);
    }
}
