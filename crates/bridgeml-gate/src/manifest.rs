//! The deployment manifest `bridgeml.toml`, shared by `bridgeml serve` and
//! the release gate. Paths resolve relative to the manifest's directory and
//! every recorded fingerprint is checked by [`Manifest::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{GateError, Result};

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub model: ModelSection,
    pub spec: SpecSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySection>,
    #[serde(default)]
    pub segments: SegmentsSection,
    #[serde(default)]
    pub sla: SlaSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSection>,
    /// `[gate]`: the data the release gate checks against, and its thresholds.
    #[serde(default)]
    pub gate: GateSection,
    /// Directory the relative paths resolve against (the manifest's own).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The manifest file itself (for error messages).
    #[serde(skip)]
    pub source: PathBuf,
    /// 1-based line of each `section.key` in the source text.
    #[serde(skip)]
    pub key_lines: BTreeMap<String, usize>,
}

/// `[model]`: the primary model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// FP32 ONNX model.
    pub path: PathBuf,
    /// `sha256:<hex>` of `path`; checked at load when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Optional INT8 variant of the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_sha256: Option<String>,
    /// Which variant to serve: "fp32" (default) or "int8".
    #[serde(default = "default_variant")]
    pub serve: String,
    /// Class names, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// "auto" (default), "tract" or "ort".
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Intra-op threads (default 1: the server parallelises across requests).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Named intermediate tensor used as the embedding for MMD / guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

/// `[spec]`: the preprocessing spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecSection {
    pub path: PathBuf,
    /// `sha256:<hex>` spec fingerprint (`bridgeml spec fingerprint`); checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// `[guard]`: the OOD guard file (issue 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSection {
    pub path: PathBuf,
}

/// `[monitor]`: rolling monitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// Instances per tumbling window.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Baseline file (`bridgeml drift calibrate`) holding PSI reference bins
    /// for the confidence score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_baseline: Option<PathBuf>,
    /// Column name of the confidence score in that baseline (default "confidence").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_column: Option<String>,
    /// Baseline file with the calibrated MMD threshold and bandwidth of the embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_baseline: Option<PathBuf>,
    /// Reference embeddings (`.npy`, 2-D) the MMD compares windows against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_reference: Option<PathBuf>,
    /// `sha256:<hex>` of each baseline / reference file, keyed by the
    /// manifest key (`confidence_baseline`, ...); checked when present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sha256: BTreeMap<String, String>,
    /// Latency baseline: a `bridgeml profile --format json` report (batch 1 row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_profile: Option<PathBuf>,
}

/// `[policy]`: the trigger policy evaluated at each window close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub path: PathBuf,
}

/// `[segments]`: where the segment (cohort) of a request comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentsSection {
    /// HTTP header naming the segment (default "X-Segment").
    #[serde(default = "default_segment_header")]
    pub header: String,
    /// JSON field of an instance naming its segment (default "segment").
    #[serde(default = "default_segment_field")]
    pub field: String,
    /// Value weight per segment (default 1.0), used by the shadow verdict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
}

impl Default for SegmentsSection {
    fn default() -> Self {
        SegmentsSection {
            header: default_segment_header(),
            field: default_segment_field(),
            weights: BTreeMap::new(),
        }
    }
}

/// `[sla]`: service targets, exported in `/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSection {
    /// Latency SLA at batch 1 on the target (the gate profiles this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Budget limits checked by the gate (parameters, weight bytes, peak activation bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_params: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_peak_activation_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ood_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
}

/// `[server]`: limits, log and auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Prediction log (SQLite, WAL).
    #[serde(default = "default_log")]
    pub log: PathBuf,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_max_instances")]
    pub max_instances: usize,
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
    /// 0 (default): a request's log rows are committed before it is
    /// answered. N > 0: the rows are committed by the log's flusher within
    /// N ms after the answer (a crash loses at most that window), which
    /// takes the commit off the response path.
    #[serde(default)]
    pub log_commit_window_ms: u64,
    /// CPUs (ids as in `/proc/cpuinfo`) the threads that preprocess and run
    /// the model are pinned to; unset: wherever the OS schedules them. A
    /// model thread the OS moves between CPUs runs its tail slower
    /// (docs/BENCHMARKS.md); pinning it keeps its caches warm. Linux only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_cpus: Option<Vec<usize>>,
    /// true: a request's preprocessing, inference and log commit run on the
    /// async worker that read it, one request at a time (a concurrent one
    /// goes to the blocking pool), saving two thread hand-offs per request;
    /// measured to pay with `inference_cpus` (docs/SERVING.md). false
    /// (default): always the blocking pool.
    #[serde(default)]
    pub inline_inference: bool,
    /// Environment variable holding the bearer token required by
    /// `/v1/feedback` and admin endpoints; unset or empty: no auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            log: default_log(),
            max_body_bytes: default_max_body(),
            max_instances: default_max_instances(),
            request_timeout_ms: default_timeout_ms(),
            log_commit_window_ms: 0,
            inference_cpus: None,
            inline_inference: false,
            token_env: None,
        }
    }
}

/// `[shadow]`: a candidate model that sees a sampled copy of live traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSection {
    pub model: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// Candidate spec (default: the primary spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<PathBuf>,
    /// Fraction of requests copied to the candidate, 0..=1.
    #[serde(default = "default_rate")]
    pub sample_rate: f64,
    /// Bounded queue length; a copy is dropped (and counted) when full.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_variant() -> String {
    "fp32".into()
}
fn default_backend() -> String {
    "auto".into()
}
fn default_threads() -> usize {
    1
}
fn default_top_k() -> usize {
    5
}
fn default_window() -> usize {
    200
}
fn default_segment_header() -> String {
    "X-Segment".into()
}
fn default_segment_field() -> String {
    "segment".into()
}
fn default_log() -> PathBuf {
    "bridgeml.db".into()
}
fn default_max_body() -> usize {
    10 * 1024 * 1024
}
fn default_max_instances() -> usize {
    64
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_rate() -> f64 {
    1.0
}
fn default_queue() -> usize {
    64
}

/// `sha256:<hex>` of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    bridgeml_core::fingerprint::sha256_file(path).map_err(|e| GateError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Maps `section.key` (and `section` for table headers) to its line, so
/// that semantic errors found after parsing can still name a line.
fn scan_key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            if let Some(end) = h.find(']') {
                section = h[..end].trim().to_string();
                out.entry(section.clone()).or_insert(i + 1);
            }
            continue;
        }
        if let Some(eq) = line.find('=') {
            let key = line[..eq].trim().trim_matches('"');
            let full = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            out.entry(full).or_insert(i + 1);
        }
    }
    out
}

impl Manifest {
    /// Parses a manifest from TOML text; `base_dir` anchors relative paths
    /// (errors name `base_dir/bridgeml.toml`).
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Manifest> {
        Self::parse(text, &base_dir.join("bridgeml.toml"), base_dir)
    }

    fn parse(text: &str, source: &Path, base_dir: &Path) -> Result<Manifest> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            GateError::Parse {
                path: source.to_path_buf(),
                line,
                column,
                reason: e.message().trim().to_string(),
            }
        })?;
        m.base_dir = base_dir.to_path_buf();
        m.source = source.to_path_buf();
        m.key_lines = scan_key_lines(text);
        Ok(m)
    }

    /// Reads and validates `path`: syntax, unknown keys, files present, and
    /// every recorded fingerprint.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| GateError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let m = Self::parse(&text, path, &base)?;
        m.validate()?;
        Ok(m)
    }

    /// Resolves a manifest path against the manifest's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Line of `section.key` (or of `section`) in the manifest, when known.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.key_lines.get(key).copied().or_else(|| {
            key.rsplit_once('.')
                .and_then(|(sec, _)| self.key_lines.get(sec).copied())
        })
    }

    /// The model file that is served (`serve = "fp32"|"int8"`) and its recorded sha256.
    pub fn served_model(&self) -> Result<(PathBuf, Option<&str>)> {
        match self.model.serve.as_str() {
            "fp32" => Ok((self.resolve(&self.model.path), self.model.sha256.as_deref())),
            "int8" => match &self.model.int8_path {
                Some(p) => Ok((self.resolve(p), self.model.int8_sha256.as_deref())),
                None => Err(self.invalid("model.serve", "\"int8\" needs int8_path")),
            },
            other => Err(self.invalid(
                "model.serve",
                &format!("{other:?}: expected \"fp32\" or \"int8\""),
            )),
        }
    }

    /// An [`GateError::Invalid`] for `key` (`section.key`), with its line.
    pub fn invalid(&self, key: &str, reason: &str) -> GateError {
        GateError::Invalid {
            path: self.source.clone(),
            line: self.line_of(key),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    fn check_file(&self, key: &str, p: &Path, want: Option<&str>) -> Result<()> {
        let full = self.resolve(p);
        if !full.is_file() {
            return Err(GateError::MissingFile {
                manifest: self.source.clone(),
                line: self.line_of(key),
                key: key.to_string(),
                given: p.to_path_buf(),
                resolved: full,
            });
        }
        if let Some(want) = want {
            let got = sha256_file(&full)?;
            if got != want {
                return Err(GateError::Fingerprint {
                    what: key.to_string(),
                    path: full,
                    recorded: want.to_string(),
                    actual: got,
                    fix: format!(
                        "the file changed since the manifest was written: restore it, or update the fingerprint of {key} in {} (bridgeml init prints the current one)",
                        self.source.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks files and fingerprints (model sha256, spec fingerprint,
    /// baseline hashes, the guard's recorded model and spec).
    pub fn validate(&self) -> Result<()> {
        let (model_path, model_sha) = self.served_model()?;
        let model_key = if self.model.serve == "int8" {
            "model.int8_path"
        } else {
            "model.path"
        };
        self.check_file(model_key, &model_path, model_sha)?;
        if self.model.serve != "fp32" {
            self.check_file("model.path", &self.model.path, self.model.sha256.as_deref())?;
        }
        if let Some(p) = &self.model.int8_path {
            self.check_file("model.int8_path", p, self.model.int8_sha256.as_deref())?;
        }
        if let Some(l) = &self.model.labels {
            self.check_file("model.labels", l, None)?;
        }
        if !["auto", "tract", "ort"].contains(&self.model.backend.as_str()) {
            return Err(self.invalid("model.backend", "expected \"auto\", \"tract\" or \"ort\""));
        }
        if self.model.threads == 0 {
            return Err(self.invalid("model.threads", "must be at least 1"));
        }
        if self.model.top_k == 0 {
            return Err(self.invalid("model.top_k", "must be at least 1"));
        }
        self.check_file("spec.path", &self.spec.path, None)?;
        let spec_path = self.resolve(&self.spec.path);
        let spec_fp = bridgeml_preprocess::Spec::from_path(&spec_path)?.fingerprint();
        if let Some(want) = &self.spec.fingerprint {
            if &spec_fp != want {
                return Err(GateError::Fingerprint {
                    what: "spec.fingerprint".into(),
                    path: spec_path,
                    recorded: want.clone(),
                    actual: spec_fp,
                    fix: "the spec changed: the model was trained with the recorded one; restore it or re-record the fingerprint (`bridgeml spec fingerprint`)".into(),
                });
            }
        }
        if let Some(g) = &self.guard {
            self.check_file("guard.path", &g.path, None)?;
            let model_sha = sha256_file(&model_path)?;
            check_guard(&self.resolve(&g.path), &model_sha, &spec_fp)?;
        }
        if let Some(mon) = &self.monitor {
            if mon.window < 2 {
                return Err(self.invalid("monitor.window", "must be at least 2"));
            }
            for (key, p) in [
                ("confidence_baseline", &mon.confidence_baseline),
                ("embedding_baseline", &mon.embedding_baseline),
                ("embedding_reference", &mon.embedding_reference),
                ("latency_profile", &mon.latency_profile),
            ] {
                if let Some(p) = p {
                    self.check_file(
                        &format!("monitor.{key}"),
                        p,
                        mon.sha256.get(key).map(String::as_str),
                    )?;
                }
            }
            if mon.embedding_baseline.is_some() != mon.embedding_reference.is_some() {
                return Err(self.invalid(
                    "monitor.embedding_baseline",
                    "embedding_baseline and embedding_reference go together (MMD needs the reference rows and the calibrated threshold)",
                ));
            }
            if mon.embedding_baseline.is_some() && self.model.embedding.is_none() {
                return Err(self.invalid(
                    "monitor.embedding_baseline",
                    "needs [model] embedding = \"<intermediate tensor name>\"",
                ));
            }
        }
        if let Some(p) = &self.policy {
            self.check_file("policy.path", &p.path, None)?;
        }
        if let Some(s) = &self.shadow {
            self.check_file("shadow.model", &s.model, s.model_sha256.as_deref())?;
            let mut cand_spec_fp = spec_fp.clone();
            if let Some(sp) = &s.spec {
                self.check_file("shadow.spec", sp, None)?;
                cand_spec_fp =
                    bridgeml_preprocess::Spec::from_path(&self.resolve(sp))?.fingerprint();
                if let Some(want) = &s.spec_fingerprint {
                    if &cand_spec_fp != want {
                        return Err(GateError::Fingerprint {
                            what: "shadow.spec_fingerprint".into(),
                            path: self.resolve(sp),
                            recorded: want.clone(),
                            actual: cand_spec_fp,
                            fix: "restore the candidate's spec or re-record its fingerprint".into(),
                        });
                    }
                }
            }
            if let Some(g) = &s.guard {
                self.check_file("shadow.guard", g, None)?;
                let sha = sha256_file(&self.resolve(&s.model))?;
                check_guard(&self.resolve(g), &sha, &cand_spec_fp)?;
            }
            if !(0.0..=1.0).contains(&s.sample_rate) {
                return Err(self.invalid("shadow.sample_rate", "must be within 0..=1"));
            }
            if s.queue == 0 {
                return Err(self.invalid("shadow.queue", "must be at least 1"));
            }
        }
        if self.server.max_body_bytes == 0 {
            return Err(self.invalid("server.max_body_bytes", "must be at least 1"));
        }
        if self.server.max_instances == 0 {
            return Err(self.invalid("server.max_instances", "must be at least 1"));
        }
        if self
            .server
            .inference_cpus
            .as_ref()
            .is_some_and(|c| c.is_empty())
        {
            return Err(self.invalid(
                "server.inference_cpus",
                "must name at least one CPU (or be left out)",
            ));
        }
        if self.server.log_commit_window_ms > 10_000 {
            return Err(self.invalid(
                "server.log_commit_window_ms",
                "must be at most 10000 (0: commit before answering)",
            ));
        }
        Ok(())
    }
}

/// Loads a guard file and refuses it when it was calibrated for another
/// model or spec (fingerprints recorded by `bridgeml guard calibrate`).
fn check_guard(guard: &Path, model_sha: &str, spec_fp: &str) -> Result<()> {
    let f = bridgeml_guard::GuardFile::load(guard)?;
    for (what, rec, actual, fix) in [
        (
            "guard model_sha256",
            &f.model_sha256,
            model_sha,
            "this guard was calibrated for another model: recalibrate it on the served model (`bridgeml guard calibrate`)",
        ),
        (
            "guard spec_fingerprint",
            &f.spec_fingerprint,
            spec_fp,
            "this guard was calibrated through another preprocessing spec: recalibrate it with the served spec",
        ),
    ] {
        if let Some(rec) = rec {
            if rec != actual {
                return Err(GateError::Fingerprint {
                    what: what.into(),
                    path: guard.to_path_buf(),
                    recorded: rec.clone(),
                    actual: actual.to_string(),
                    fix: fix.into(),
                });
            }
        }
    }
    Ok(())
}

/// Options of [`init_manifest`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub model: PathBuf,
    pub spec: PathBuf,
    pub labels: Option<PathBuf>,
    /// Directory the manifest is written to.
    pub dir: PathBuf,
}

fn rel(dir: &Path, p: &Path) -> String {
    let abs = |x: &Path| std::fs::canonicalize(x).unwrap_or_else(|_| x.to_path_buf());
    let (d, f) = (abs(dir), abs(p));
    match f.strip_prefix(&d) {
        Ok(r) => r.display().to_string(),
        Err(_) => f.display().to_string(),
    }
}

/// Renders a commented minimal manifest that [`Manifest::load`] accepts as is.
pub fn init_manifest(o: &InitOptions) -> Result<String> {
    let model_sha = sha256_file(&o.model)?;
    let spec_fp = bridgeml_preprocess::Spec::from_path(&o.spec)?.fingerprint();
    let q = |s: String| toml::Value::String(s).to_string();
    let labels = match &o.labels {
        Some(l) => format!(
            "# Class names, one per line (line i names class i).\nlabels = {}\n",
            q(rel(&o.dir, l))
        ),
        None => "# labels = \"labels.txt\"    # class names, one per line\n".into(),
    };
    Ok(format!(
        r#"# bridgeml deployment manifest (read by `bridgeml serve` and the release gate).
# Paths are relative to this file. Fingerprints are checked at load: a changed
# model, spec or baseline is refused until its fingerprint is updated here.

[model]
# The FP32 ONNX model and its sha256 (`sha256sum` of the file, prefixed).
path = {model}
sha256 = {sha}
{labels}# int8_path = "model_int8.onnx"   # optional INT8 variant, with int8_sha256
# serve = "fp32"                    # which variant to serve: "fp32" or "int8"
# backend = "auto"                  # "auto" (ONNX Runtime when found), "tract" or "ort"
# threads = 1                       # intra-op threads per inference worker
# embedding = "features"            # intermediate tensor used for MMD drift
# top_k = 5

[spec]
# The preprocessing spec the model was trained with, and its fingerprint.
path = {spec}
fingerprint = {fp}

# [guard]                           # OOD guard file (`bridgeml guard calibrate`)
# path = "guard.json"

# [monitor]                         # rolling monitors, one tumbling window at a time
# window = 200                      # instances per window
# confidence_baseline = "conf_baseline.json"   # PSI bins of the confidence score
# embedding_baseline = "emb_baseline.json"     # calibrated MMD threshold
# embedding_reference = "emb_reference.npy"    # reference embeddings for MMD
# latency_profile = "profile.json"             # `bridgeml profile --format json`

# [policy]                          # evaluated at each window close
# path = "policy.toml"

# [segments]
# header = "X-Segment"              # header naming the request's segment
# field = "segment"                 # or this field of a JSON instance
# weights = {{ premium = 3.0 }}       # value weight per segment (shadow verdict)

# [sla]
# p99_ms = 50.0
# max_ood_rate = 0.05

# [server]
# log = "bridgeml.db"               # prediction log (SQLite, WAL)
# max_body_bytes = 10485760
# request_timeout_ms = 10000
# log_commit_window_ms = 0          # 0: log rows committed before answering; N: within N ms after
# inference_cpus = [1]              # pin preprocessing + inference threads to these CPUs (Linux)
# inline_inference = false          # true: run a request's model on its async worker (with inference_cpus)
# token_env = "BRIDGEML_TOKEN"      # bearer token for /v1/feedback and admin endpoints

# [shadow]                          # candidate model on a copy of live traffic
# model = "candidate.onnx"
# sample_rate = 1.0
# queue = 64
"#,
        model = q(rel(&o.dir, &o.model)),
        sha = q(model_sha),
        spec = q(rel(&o.dir, &o.spec)),
        fp = q(spec_fp),
    ))
}

/// `[gate]`: what `bridgeml gate` checks the deployment against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// Labelled validation set: an ImageFolder (one sub-folder per class),
    /// or files with `labels` (CSV `file,label`). Quantization audit, guard
    /// pass rate, validation PSI and a real input for the latency profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// OOD set (a folder of inputs) for the guard's FPR at 95% TPR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood: Option<PathBuf>,
    /// Parity: raw inputs, and the training side's preprocessed dumps
    /// (`.npy`, same file stems) to compare hashes against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity_inputs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity_reference: Option<PathBuf>,
    /// Thresholds of every gate (defaults: the deployment checklist's).
    #[serde(default)]
    pub thresholds: crate::gates::Thresholds,
}
