//! The HTTP server: `POST /v1/predict`, `POST /v1/feedback`, `GET /healthz`,
//! `/readyz`, `/metrics`, `/v1/status`.
//!
//! Preprocessing and inference run on tokio's blocking pool, never on the
//! async workers. Every answered instance is committed to the log before the
//! response leaves, or with `log_commit_window_ms` within that window after
//! it. A shadow candidate runs on its own thread behind a
//! bounded queue: a full queue drops the copy (counted), and a failing,
//! panicking or slow candidate never reaches the live response.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bridgeml_core::Tensor;
use bridgeml_guard::{Expected, Guard};
use bridgeml_preprocess::{Pipeline, PreprocessError};
use bridgeml_runtime::diverge::probabilities;
use bridgeml_runtime::{BackendChoice, LoadOptions, Model, RuntimeError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::log::{now_ms, LogWriter, PredictionRow, ShadowRow};
use crate::manifest::Manifest;
use crate::monitor::{MonitorConfig, Monitors, Observed, ShadowOutcome, WindowObservations};
use crate::priority::ThreadPriority;
use crate::{Result, ServeError};

/// One instance's answer from a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub class: usize,
    pub confidence: f64,
    pub top_k: Vec<(usize, f64)>,
    /// Guard score (higher = more OOD); `None` without a guard.
    pub ood_score: Option<f64>,
    pub is_ood: Option<bool>,
    pub embedding: Option<Vec<f64>>,
}

/// A shadow candidate: anything that answers a batch of preprocessed items.
/// The server's own is an ONNX model; tests plug in failing or slow ones.
pub trait Candidate: Send {
    /// `sha256:` fingerprint logged with each answer.
    fn fingerprint(&self) -> String;
    fn predict(&mut self, items: &[Tensor]) -> Result<Vec<Answer>>;
}

#[derive(Debug)]
struct OnnxCandidate {
    model: Model,
    top_k: usize,
    guard: Option<Guard>,
}

impl Candidate for OnnxCandidate {
    fn fingerprint(&self) -> String {
        self.model.sha256().to_string()
    }
    fn predict(&mut self, items: &[Tensor]) -> Result<Vec<Answer>> {
        run_model(
            &mut self.model,
            items,
            self.top_k,
            None,
            self.guard.as_ref(),
        )
    }
}

/// Extra model outputs a guard needs (its feature tensor, for Mahalanobis / kNN).
fn guard_outputs(g: Option<&Guard>) -> Option<String> {
    g.filter(|g| g.method().uses_features())
        .and_then(|g| g.file.feature_tensor.clone())
}

/// `[batch, ...]` as a `[batch, rest]` matrix.
fn as_matrix(a: &ndarray::ArrayD<f32>) -> Result<ndarray::Array2<f32>> {
    let n = a.shape().first().copied().unwrap_or(0);
    let rest = a.len().checked_div(n).unwrap_or(0);
    a.to_shape((n, rest))
        .map(|v| v.to_owned())
        .map_err(|e| ServeError::InvalidArgument(format!("model output: {e}")))
}

fn run_model(
    model: &mut Model,
    items: &[Tensor],
    top_k: usize,
    embedding: Option<&str>,
    guard: Option<&Guard>,
) -> Result<Vec<Answer>> {
    let batch = Tensor::stack(items).map_err(|e| ServeError::InvalidArgument(e.to_string()))?;
    let out = model.run(&batch)?;
    let emb_idx = embedding.and_then(|n| out.names.iter().position(|x| x == n));
    let verdicts = match guard {
        Some(g) => {
            let logits = as_matrix(out.first())?;
            let feats = match guard_outputs(Some(g)) {
                Some(name) => Some(as_matrix(out.get(&name).ok_or_else(|| {
                    ServeError::InvalidArgument(format!(
                        "the guard needs model output {name:?}, which the model did not return"
                    ))
                })?)?),
                None => None,
            };
            Some(g.verdicts(bridgeml_guard::Inputs {
                logits: Some(logits.view()),
                features: feats.as_ref().map(|f| f.view()),
            })?)
        }
        None => None,
    };
    Ok((0..items.len())
        .map(|i| {
            let probs = probabilities(&out.row(0, i));
            let mut idx: Vec<usize> = (0..probs.len()).collect();
            idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let top: Vec<(usize, f64)> = idx
                .iter()
                .take(top_k.max(1))
                .map(|&c| (c, probs[c]))
                .collect();
            let v = verdicts.as_ref().map(|v| &v[i]);
            Answer {
                class: top[0].0,
                confidence: top[0].1,
                top_k: top,
                ood_score: v.map(|v| v.score),
                is_ood: v.map(|v| v.is_ood),
                embedding: emb_idx.map(|e| out.row(e, i)),
            }
        })
        .collect())
}

/// A request's work done on the blocking thread.
struct Processed {
    items: Arc<Vec<Tensor>>,
    segments: Vec<String>,
    answers: Vec<Answer>,
    preds: Vec<Value>,
    /// Every stage but `resume`, which starts at `done`.
    times: RequestTimes,
    /// When the blocking job ended (the hand-off back starts).
    done: Instant,
}

/// Seconds per stage of one answered request, sent back as `Server-Timing`.
struct RequestTimes {
    parse: f64,
    /// From handing the job to the blocking pool to its start.
    queue: f64,
    /// From the job's end to the request's task running again.
    resume: f64,
    preprocess: f64,
    inference: f64,
    /// Handing the input hash to a rayon worker, and waiting for it after
    /// the model.
    hash: f64,
    postprocess: f64,
    log: f64,
    /// After `resume`: the shadow offer and the monitors' update.
    observe: f64,
}

impl RequestTimes {
    /// The W3C `Server-Timing` value (milliseconds), `total` included.
    fn header(&self, total: f64) -> String {
        let ms = |s: f64| s * 1000.0;
        format!(
            "parse;dur={:.3}, queue;dur={:.3}, preprocess;dur={:.3}, inference;dur={:.3}, hash;dur={:.3}, postprocess;dur={:.3}, log;dur={:.3}, resume;dur={:.3}, observe;dur={:.3}, total;dur={:.3}",
            ms(self.parse),
            ms(self.queue),
            ms(self.preprocess),
            ms(self.inference),
            ms(self.hash),
            ms(self.postprocess),
            ms(self.log),
            ms(self.resume),
            ms(self.observe),
            ms(total)
        )
    }
}

struct ShadowJob {
    request_id: String,
    segment: String,
    /// Shared with the live request (no copy of the tensors).
    items: Arc<Vec<Tensor>>,
    live: Vec<usize>,
}

/// Server options beyond the manifest.
#[derive(Default)]
pub struct Options {
    /// Bearer token for `/v1/feedback` and `/v1/status`; `None`: the
    /// manifest's `token_env`, else no auth.
    pub token: Option<String>,
    /// Replaces the manifest's `[shadow]` model (tests, custom candidates).
    pub candidate: Option<Box<dyn Candidate>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("candidate", &self.candidate.is_some())
            .finish()
    }
}

struct AppState {
    pipeline: Arc<Pipeline>,
    tabular: bool,
    model: Arc<Mutex<Model>>,
    /// The model's input shape without the batch axis, read once at load:
    /// the model's lock is held for whole inferences, and a JSON request
    /// must not wait behind another request's inference to check a shape.
    item_dims: Option<Vec<Option<i64>>>,
    labels: Vec<String>,
    model_sha: String,
    spec_fp: String,
    embedding: Option<String>,
    guard: Option<Guard>,
    top_k: usize,
    monitors: Mutex<Monitors>,
    log: LogWriter,
    shadow: Mutex<Option<mpsc::SyncSender<ShadowJob>>>,
    shadow_rate: f64,
    /// Closed monitor windows on their way to the evaluation thread.
    windows: Mutex<Option<mpsc::Sender<WindowObservations>>>,
    token: Option<String>,
    /// `[server] inference_cpus`, checked against the process's CPUs at load.
    inference_cpus: Option<Vec<usize>>,
    /// `[server] inline_inference`.
    inline: bool,
    /// Set while a request runs on its async worker (at most one does).
    inline_busy: AtomicBool,
    /// Requests that ran on their async worker (`bridgeml_inline_requests_total`).
    inline_requests: AtomicU64,
    ready: AtomicBool,
    max_body: usize,
    max_instances: usize,
    timeout: Duration,
    segment_header: String,
    segment_field: String,
    counter: AtomicU64,
}

/// A loaded server, ready to bind.
pub struct Server {
    state: Arc<AppState>,
    shadow_thread: Option<std::thread::JoinHandle<()>>,
    monitor_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("model", &self.state.model_sha)
            .finish()
    }
}

fn backend(s: &str) -> BackendChoice {
    match s {
        "tract" => BackendChoice::Tract,
        "ort" => BackendChoice::Ort,
        _ => BackendChoice::Auto,
    }
}

fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| ServeError::Config {
        path: p.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_baseline(p: &Path) -> Result<bridgeml_monitor::Baseline> {
    serde_json::from_str(&read_text(p)?).map_err(|e| ServeError::Config {
        path: p.to_path_buf(),
        reason: format!("not a baseline file (bridgeml drift calibrate): {e}"),
    })
}

/// The reference bins and calibrated PSI threshold of `[monitor]
/// confidence_baseline` (with the file's path), when the manifest names one.
pub fn confidence_baseline(
    m: &Manifest,
) -> Result<Option<(PathBuf, bridgeml_monitor::psi::ReferenceBins, f64)>> {
    let Some(mon) = &m.monitor else {
        return Ok(None);
    };
    let Some(p) = &mon.confidence_baseline else {
        return Ok(None);
    };
    let p = m.resolve(p);
    let b = read_baseline(&p)?;
    let col = mon.confidence_column.as_deref().unwrap_or("confidence");
    let c = b
        .find(Some(col), "psi")
        .or_else(|| b.columns.iter().find(|c| c.method == "psi"))
        .ok_or_else(|| ServeError::Config {
            path: p.clone(),
            reason: format!("no PSI calibration for column {col:?}"),
        })?;
    let bins = c.bins.clone().ok_or_else(|| ServeError::Config {
        path: p.clone(),
        reason: "the PSI calibration has no reference bins".into(),
    })?;
    let threshold = c.calibration.threshold;
    Ok(Some((p, bins, threshold)))
}

/// The batch-1 row of `[monitor] latency_profile` (with the file's path),
/// when the manifest names one.
pub fn latency_baseline(
    m: &Manifest,
) -> Result<Option<(PathBuf, bridgeml_runtime::profile::BatchResult)>> {
    let Some(p) = m
        .monitor
        .as_ref()
        .and_then(|mon| mon.latency_profile.as_ref())
    else {
        return Ok(None);
    };
    let p = m.resolve(p);
    let rep: bridgeml_runtime::profile::ProfileReport = serde_json::from_str(&read_text(&p)?)
        .map_err(|e| ServeError::Config {
            path: p.clone(),
            reason: format!("not a `bridgeml profile --format json` report: {e}"),
        })?;
    let row = rep
        .results
        .into_iter()
        .find(|r| r.batch == 1)
        .ok_or_else(|| ServeError::Config {
            path: p.clone(),
            reason: "the profile has no batch-1 row".into(),
        })?;
    Ok(Some((p, row)))
}

/// The monitors configured by the manifest, exactly as the server runs them
/// (also used by replays: `bridgeml demo`, `bridgeml report`).
pub fn load_monitors(m: &Manifest, model_sha: &str, spec_fp: &str) -> Result<MonitorConfig> {
    let mut cfg = MonitorConfig {
        window: 200,
        confidence_bins: confidence_baseline(m)?.map(|(_, bins, t)| (bins, t)),
        mmd: None,
        latency_baseline_ms: latency_baseline(m)?.map(|(_, r)| [r.p50_ms, r.p95_ms, r.p99_ms]),
        policy: None,
        model_info: (model_sha.to_string(), spec_fp.to_string()),
    };
    if let Some(mon) = &m.monitor {
        cfg.window = mon.window;
        if let (Some(bp), Some(rp)) = (&mon.embedding_baseline, &mon.embedding_reference) {
            let bp = m.resolve(bp);
            let b = read_baseline(&bp)?;
            let c = b.find(None, "mmd").ok_or_else(|| ServeError::Config {
                path: bp.clone(),
                reason: "no MMD calibration in this baseline".into(),
            })?;
            let sigma2 =
                c.bandwidth
                    .as_ref()
                    .map(|b| b.sigma2)
                    .ok_or_else(|| ServeError::Config {
                        path: bp.clone(),
                        reason: "the MMD calibration has no bandwidth".into(),
                    })?;
            let r = Tensor::read_npy(&m.resolve(rp)).map_err(|e| ServeError::Config {
                path: m.resolve(rp),
                reason: e.to_string(),
            })?;
            let shape = r.shape().to_vec();
            if shape.len() != 2 {
                return Err(ServeError::Config {
                    path: m.resolve(rp),
                    reason: format!("reference embeddings must be 2-D, got {shape:?}"),
                });
            }
            let arr = ndarray::Array2::from_shape_vec((shape[0], shape[1]), r.to_f64_vec())
                .map_err(|e| ServeError::InvalidArgument(e.to_string()))?;
            cfg.mmd = Some(bridgeml_monitor::mmd::MmdWindowMonitor::new(
                arr,
                sigma2,
                c.calibration.threshold,
                mon.window,
            )?);
        }
    }
    if let Some(p) = &m.policy {
        let text = read_text(&m.resolve(&p.path))?;
        cfg.policy = Some(bridgeml_monitor::policy::Policy::parse(&text)?);
    }
    Ok(cfg)
}

impl Server {
    /// Loads models, spec, monitors and opens the log.
    pub fn load(manifest: &Manifest, opts: Options) -> Result<Server> {
        if let Some(cpus) = &manifest.server.inference_cpus {
            check_inference_cpus(manifest, cpus)?;
        }
        let pipeline = Arc::new(Pipeline::from_path(&manifest.resolve(&manifest.spec.path))?);
        let tabular = pipeline.spec().steps.iter().any(|s| s.is_tabular());
        let (model_path, _) = manifest.served_model()?;
        let spec_fp = pipeline.fingerprint().to_string();
        let model_sha = bridgeml_core::fingerprint::sha256_file(&model_path).map_err(|e| {
            ServeError::Config {
                path: model_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let load_guard = |p: &Path, model_sha: &str| {
            Guard::load(
                &manifest.resolve(p),
                Expected {
                    model_sha256: Some(model_sha),
                    spec_fingerprint: Some(&spec_fp),
                },
            )
        };
        let guard = match &manifest.guard {
            Some(g) => Some(load_guard(&g.path, &model_sha)?),
            None => None,
        };
        let mut extra: Vec<String> = manifest.model.embedding.iter().cloned().collect();
        extra.extend(guard_outputs(guard.as_ref()).filter(|g| !extra.contains(g)));
        let lo = LoadOptions::new(backend(&manifest.model.backend))
            .threads(Some(manifest.model.threads))
            .extra_outputs(extra);
        let model = Model::load(&model_path, &lo)?;
        let labels = match &manifest.model.labels {
            Some(l) => std::fs::read_to_string(manifest.resolve(l))?
                .lines()
                .map(|s| s.trim().to_string())
                .collect(),
            None => Vec::new(),
        };
        let monitors = Monitors::new(load_monitors(manifest, &model_sha, &spec_fp)?);
        let log_path = manifest.resolve(&manifest.server.log);
        let log = match manifest.server.log_commit_window_ms {
            0 => LogWriter::start(&log_path)?,
            ms => LogWriter::with_commit_window(&log_path, Duration::from_millis(ms))?,
        };
        let token = opts.token.or_else(|| {
            manifest
                .server
                .token_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|t| !t.is_empty())
        });
        let mut candidate = opts.candidate;
        let mut cand_pipeline = None;
        if candidate.is_none() {
            if let Some(s) = &manifest.shadow {
                let cand_path = manifest.resolve(&s.model);
                let cand_guard = match &s.guard {
                    Some(g) => {
                        let sha =
                            bridgeml_core::fingerprint::sha256_file(&cand_path).map_err(|e| {
                                ServeError::Config {
                                    path: cand_path.clone(),
                                    reason: e.to_string(),
                                }
                            })?;
                        Some(load_guard(g, &sha)?)
                    }
                    None => None,
                };
                let m = Model::load(
                    &cand_path,
                    &LoadOptions::new(backend(&manifest.model.backend))
                        .threads(Some(1))
                        .extra_outputs(guard_outputs(cand_guard.as_ref()).into_iter().collect()),
                )?;
                candidate = Some(Box::new(OnnxCandidate {
                    model: m,
                    top_k: manifest.model.top_k,
                    guard: cand_guard,
                }));
                if let Some(sp) = &s.spec {
                    let p = Pipeline::from_path(&manifest.resolve(sp))?;
                    if p.fingerprint() != pipeline.fingerprint() {
                        cand_pipeline = Some(p);
                    }
                }
            }
        }
        if cand_pipeline.is_some() {
            tracing::warn!("the shadow candidate's spec differs from the live spec: the candidate receives the live preprocessed tensors");
        }
        let (shadow_rate, queue) = manifest
            .shadow
            .as_ref()
            .map_or((1.0, 64), |s| (s.sample_rate, s.queue));
        let state = Arc::new(AppState {
            pipeline,
            tabular,
            item_dims: model.item_dims(),
            model: Arc::new(Mutex::new(model)),
            labels,
            model_sha,
            spec_fp,
            embedding: manifest.model.embedding.clone(),
            guard,
            top_k: manifest.model.top_k,
            monitors: Mutex::new(monitors),
            log,
            shadow: Mutex::new(None),
            shadow_rate,
            windows: Mutex::new(None),
            token,
            ready: AtomicBool::new(false),
            inference_cpus: manifest.server.inference_cpus.clone(),
            inline: manifest.server.inline_inference,
            inline_busy: AtomicBool::new(false),
            inline_requests: AtomicU64::new(0),
            max_body: manifest.server.max_body_bytes,
            max_instances: manifest.server.max_instances,
            timeout: Duration::from_millis(manifest.server.request_timeout_ms),
            segment_header: manifest.segments.header.clone(),
            segment_field: manifest.segments.field.clone(),
            counter: AtomicU64::new(0),
        });
        let shadow_thread = match candidate {
            Some(c) => {
                let (tx, rx) = mpsc::sync_channel::<ShadowJob>(queue);
                *state.shadow.lock().expect("fresh mutex") = Some(tx);
                let st = Arc::clone(&state);
                Some(
                    std::thread::Builder::new()
                        .name("bridgeml-shadow".into())
                        .spawn(move || shadow_loop(c, rx, st))?,
                )
            }
            None => None,
        };
        let (wtx, wrx) = mpsc::channel::<WindowObservations>();
        *state.windows.lock().expect("fresh mutex") = Some(wtx);
        let st = Arc::clone(&state);
        let monitor_thread = Some(
            std::thread::Builder::new()
                .name("bridgeml-monitor".into())
                .spawn(move || monitor_loop(wrx, st))?,
        );
        Ok(Server {
            state,
            shadow_thread,
            monitor_thread,
        })
    }

    /// The axum router (for embedding in another server).
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` resolves, then drains in-flight
    /// requests, stops the shadow worker and flushes the log.
    pub async fn run(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.state.ready.store(true, Ordering::SeqCst);
        let st = Arc::clone(&self.state);
        let app = self.router();
        // Responses are written whole; Nagle's algorithm could only delay them.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
        });
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                st.ready.store(false, Ordering::SeqCst);
            })
            .await;
        self.state.ready.store(false, Ordering::SeqCst);
        // Stop the shadow worker (it finishes its queue) and flush the log.
        self.state.shadow.lock().map(|mut s| s.take()).ok();
        if let Some(h) = self.shadow_thread.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        // Evaluate the windows still queued, so their actions reach the log.
        self.state.windows.lock().map(|mut s| s.take()).ok();
        if let Some(h) = self.monitor_thread.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let st = Arc::clone(&self.state);
        let _ = tokio::task::spawn_blocking(move || st.log.shutdown()).await;
        res.map_err(ServeError::Io)
    }
}

/// A server running on a thread of its own with its own tokio runtime
/// (tests, load generators, embedding in a synchronous program). Dropping
/// it shuts the server down gracefully and waits for it.
#[derive(Debug)]
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `addr` (port 0 picks one) and serves on a background thread
    /// with `worker_threads` runtime workers; returns once it listens.
    pub fn spawn(self, addr: SocketAddr, worker_threads: usize) -> Result<Background> {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<SocketAddr>>();
        let thread = std::thread::Builder::new()
            .name("bridgeml-serve".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(worker_threads.max(1))
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let (listener, addr) = match bind(addr).await {
                        Ok(b) => b,
                        Err(e) => {
                            let reason = e.to_string();
                            let _ = bound_tx.send(Err(e));
                            return Err(ServeError::InvalidArgument(reason));
                        }
                    };
                    let _ = bound_tx.send(Ok(addr));
                    self.run(listener, async move {
                        let _ = stop_rx.await;
                    })
                    .await
                })
            })?;
        let addr = bound_rx.recv().map_err(|_| {
            ServeError::InvalidArgument("the server thread stopped before listening".into())
        })??;
        Ok(Background {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Background {
    /// Shuts down gracefully and returns how serving ended.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(res)) => res,
            Some(Err(_)) => Err(ServeError::InvalidArgument(
                "the server thread panicked".into(),
            )),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Binds `addr` and returns the listener and its actual address (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Closed windows waiting for evaluation above which the monitor thread
/// leaves `SCHED_IDLE` (on a saturated machine idle time never comes, and
/// monitoring matters most under load) until it has caught up.
const MONITOR_BACKLOG: u64 = 4;

/// Evaluates closed windows (PSI, MMD, latency, policy) off the request
/// path, in closing order, and records each report and its actions.
fn monitor_loop(rx: mpsc::Receiver<WindowObservations>, st: Arc<AppState>) {
    let mut priority = ThreadPriority::idle();
    let evaluator = st
        .monitors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .evaluator();
    while let Ok(w) = rx.recv() {
        let backlog = {
            let mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
            mon.windows_closed() - mon.windows_evaluated()
        };
        priority.raise_while(backlog > MONITOR_BACKLOG);
        let report = evaluator.evaluate(&w);
        let actions = {
            let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
            mon.record(report);
            mon.recycle(w);
            mon.take_actions()
        };
        for a in actions {
            st.log.log_action(a);
        }
    }
}

/// Waits (bounded) until every closed window has been evaluated, so that
/// `/v1/status` and `/metrics` reflect all the traffic answered so far.
async fn windows_settled(st: &AppState) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        {
            let mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
            if mon.windows_evaluated() >= mon.windows_closed() {
                return;
            }
        }
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Refuses CPUs this process may not run on (a typo would otherwise pin
/// every inference to nothing, or fail only at the first request).
fn check_inference_cpus(manifest: &Manifest, cpus: &[usize]) -> Result<()> {
    let Some(allowed) = crate::priority::allowed_cpus() else {
        return Err(manifest
            .invalid(
                "server.inference_cpus",
                "CPU pinning needs Linux (sched_setaffinity)",
            )
            .into());
    };
    if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
        return Err(manifest
            .invalid(
                "server.inference_cpus",
                &format!("CPU {c} is not one this process may run on ({allowed:?})"),
            )
            .into());
    }
    Ok(())
}

/// The shadow worker's polling interval: doubled while its queue stays
/// empty, from the first to the second.
const SHADOW_POLL_MIN: Duration = Duration::from_millis(1);
const SHADOW_POLL_MAX: Duration = Duration::from_millis(16);

fn shadow_loop(mut c: Box<dyn Candidate>, rx: mpsc::Receiver<ShadowJob>, st: Arc<AppState>) {
    // Copies are dropped and counted when the queue fills: idle priority
    // is the contract.
    let _priority = ThreadPriority::idle();
    let fp = c.fingerprint();
    let reports = st
        .monitors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .shadow_reporter();
    // Polled, never woken: a request that offers a copy to a sleeping
    // worker would wake it, and on a loaded VM that wake-up costs the
    // request up to ~1 ms at p99 (docs/BENCHMARKS.md). Copies wait at most
    // SHADOW_POLL_MAX before they run.
    let mut idle = SHADOW_POLL_MIN;
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) => {
                std::thread::sleep(idle);
                idle = (idle * 2).min(SHADOW_POLL_MAX);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        idle = SHADOW_POLL_MIN;
        let t = Instant::now();
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| c.predict(&job.items)));
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let answers: std::result::Result<Vec<Answer>, String> = match res {
            Ok(Ok(a)) if a.len() == job.items.len() => Ok(a),
            Ok(Ok(a)) => Err(format!(
                "candidate returned {} answers for {} items",
                a.len(),
                job.items.len()
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("candidate panicked".into()),
        };
        let rows: Vec<ShadowRow> = (0..job.live.len())
            .map(|i| {
                // `None` when the candidate failed: the row carries the error.
                let a = answers.as_ref().ok().map(|a| &a[i]);
                ShadowRow {
                    request_id: job.request_id.clone(),
                    instance: i as i64,
                    model_sha256: fp.clone(),
                    class: a.map(|a| a.class as i64),
                    confidence: a.map(|a| a.confidence),
                    ood_score: a.and_then(|a| a.ood_score),
                    latency_ms: ms,
                    error: answers.as_ref().err().cloned(),
                }
            })
            .collect();
        for (row, live) in rows.iter().zip(&job.live) {
            let _ = reports.send(ShadowOutcome {
                segment: job.segment.clone(),
                // No class: the candidate failed on this instance.
                disagree: row.class.map(|c| c != *live as i64),
            });
        }
        // Queued for the log's flusher thread: wakes nobody.
        st.log.log_shadow(rows);
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/feedback", post(feedback))
        .route("/v1/status", get(status))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            err(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// A JSON error response.
fn err(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", msg.into())
    }
    fn timeout(limit: Duration) -> Self {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
    }
    fn outcome(&self) -> &'static str {
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            "timeout"
        } else if self.0.is_client_error() {
            "client_error"
        } else {
            "server_error"
        }
    }
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        match &e {
            ServeError::Preprocess(PreprocessError::Decode { .. }) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "undecodable",
                e.to_string(),
            ),
            // Non-finite logits come from non-finite (or absurd) input values.
            ServeError::Guard(bridgeml_guard::GuardError::NonFinite { .. }) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "non_finite",
                e.to_string(),
            ),
            ServeError::Preprocess(_)
            | ServeError::InvalidArgument(_)
            | ServeError::Runtime(RuntimeError::InputMismatch { .. })
            | ServeError::Runtime(RuntimeError::InvalidArgument(_)) => ApiError::bad(e.to_string()),
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

fn authorized(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(tok) = &st.token else { return true };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time comparison.
    got.len() == tok.len()
        && got
            .bytes()
            .zip(tok.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::SeqCst) {
        Json(json!({"status": "ready"})).into_response()
    } else {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "loading or shutting down".into(),
        )
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    windows_settled(&st).await;
    let body = {
        let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
        mon.collect_shadow();
        let mut body = mon.render_metrics();
        let _ = writeln!(body, "# HELP bridgeml_inline_requests_total Requests whose preprocessing and inference ran on the async worker (inline_inference).\n# TYPE bridgeml_inline_requests_total counter\nbridgeml_inline_requests_total {}", st.inline_requests.load(Ordering::Relaxed));
        body
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn status(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is required".into(),
        );
    }
    windows_settled(&st).await;
    let mut v = {
        let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
        mon.collect_shadow();
        mon.status()
    };
    v["model"] = json!(st.model_sha);
    v["spec"] = json!(st.spec_fp);
    v["guard"] = match &st.guard {
        Some(g) => json!({"method": g.method().name(), "threshold": g.file.threshold}),
        None => Value::Null,
    };
    // 0: every answered row was committed before its answer.
    v["log"] = json!({
        "commit_window_ms": st.log.commit_window().map_or(0, |w| w.as_millis() as u64),
    });
    Json(v).into_response()
}

#[derive(Deserialize)]
struct FeedbackBody {
    request_id: String,
    label: Value,
    #[serde(default)]
    instance: Option<i64>,
}

async fn feedback(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if !authorized(&st, &headers) {
        return err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is required".into(),
        );
    }
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "feedback bodies are limited to 64 KiB".into(),
            )
        }
    };
    let fb: FeedbackBody = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!(
                    "expected {{\"request_id\": \"...\", \"label\": <class index or name>}}: {e}"
                ),
            )
        }
    };
    let label = match &fb.label {
        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as i64,
        Value::String(s) => match st.labels.iter().position(|l| l == s) {
            Some(i) => i as i64,
            None => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "unknown_label",
                    format!("label {s:?} is not a class name"),
                )
            }
        },
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "bad_label",
                "label must be a class index or a class name".into(),
            )
        }
    };
    match st
        .log
        .feedback(fb.request_id.clone(), fb.instance, label, now_ms())
        .await
    {
        Ok(j) if j.is_empty() => err(
            StatusCode::NOT_FOUND,
            "unknown_request_id",
            format!("no logged prediction has request id {:?}", fb.request_id),
        ),
        Ok(j) => {
            let name = st
                .labels
                .get(label as usize)
                .cloned()
                .unwrap_or_else(|| label.to_string());
            let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
            for x in &j {
                mon.observe_feedback(&name, x.class == label);
            }
            Json(json!({"request_id": fb.request_id, "label": label, "joined": j.len(), "correct": j.iter().filter(|x| x.class == label).count()})).into_response()
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, "log", e.to_string()),
    }
}

#[derive(Serialize)]
struct TopK {
    class: usize,
    label: Option<String>,
    probability: f64,
}

enum Input {
    Image(axum::body::Bytes),
    Json(Vec<Value>),
}

fn valid_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

fn preprocess(
    st: &AppState,
    input: &Input,
) -> std::result::Result<(Vec<Tensor>, Vec<Option<String>>), ApiError> {
    match input {
        Input::Image(b) => {
            if st.tabular {
                return Err(ApiError(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "this model takes tabular rows: send JSON {\"instances\": [{...}]}".into(),
                ));
            }
            Ok((
                vec![st.pipeline.run_bytes(b, "body").map_err(ServeError::from)?],
                vec![None],
            ))
        }
        Input::Json(instances) => {
            let mut segs = Vec::new();
            let mut out = Vec::new();
            if st.tabular {
                let spec = st.pipeline.spec();
                let cols: Vec<String> = spec.input.columns.clone().unwrap_or_default();
                for (i, inst) in instances.iter().enumerate() {
                    let Value::Object(o) = inst else {
                        return Err(ApiError::bad(format!(
                            "instance {i}: expected an object of column values"
                        )));
                    };
                    segs.push(
                        o.get(&st.segment_field)
                            .and_then(|v| v.as_str())
                            .map(str::to_string),
                    );
                    let cells: Vec<Vec<String>> = cols
                        .iter()
                        .map(|c| {
                            vec![match o.get(c) {
                                None | Some(Value::Null) => String::new(),
                                Some(Value::String(s)) => s.clone(),
                                Some(v) => v.to_string(),
                            }]
                        })
                        .collect();
                    let table = bridgeml_core::Table::from_text_columns(cols.clone(), cells);
                    let t = bridgeml_preprocess::tabular::transform(
                        spec,
                        &table,
                        &format!("instance {i}"),
                        None,
                    )
                    .map_err(ServeError::from)?;
                    let t = t
                        .unstack()
                        .into_iter()
                        .next()
                        .ok_or_else(|| ApiError::bad("empty row"))?;
                    out.push(t);
                }
            } else {
                let dims = &st.item_dims;
                for (i, inst) in instances.iter().enumerate() {
                    let (data, seg) = match inst {
                        Value::Object(o) => (
                            o.get("tensor")
                                .or_else(|| o.get("data"))
                                .cloned()
                                .unwrap_or(Value::Null),
                            o.get(&st.segment_field)
                                .and_then(|v| v.as_str())
                                .map(str::to_string),
                        ),
                        v => (v.clone(), None),
                    };
                    segs.push(seg);
                    let mut shape = Vec::new();
                    let mut flat = Vec::new();
                    flatten(&data, 0, &mut shape, &mut flat)
                        .map_err(|m| ApiError::bad(format!("instance {i}: {m}")))?;
                    if let Some(d) = dims {
                        let ok = d.len() == shape.len()
                            && d.iter()
                                .zip(&shape)
                                .all(|(w, g)| w.is_none_or(|w| w as usize == *g));
                        if !ok {
                            return Err(ApiError::bad(format!("instance {i}: tensor shape {shape:?} does not match the model's item shape {d:?}")));
                        }
                    }
                    let arr = ndarray::ArrayD::from_shape_vec(shape, flat)
                        .map_err(|e| ApiError::bad(e.to_string()))?;
                    out.push(Tensor::F32(arr));
                }
            }
            Ok((out, segs))
        }
    }
}

fn flatten(
    v: &Value,
    depth: usize,
    shape: &mut Vec<usize>,
    flat: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    if depth == 0 {
        let mut cur = v;
        while let Value::Array(a) = cur {
            if a.is_empty() {
                return Err("empty tensor".into());
            }
            shape.push(a.len());
            cur = &a[0];
        }
    }
    match v {
        Value::Number(n) if depth == shape.len() => {
            flat.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        Value::Array(a) if depth < shape.len() && a.len() == shape[depth] => {
            for x in a {
                flatten(x, depth + 1, shape, flat)?;
            }
            Ok(())
        }
        Value::Number(_) | Value::Array(_) => Err("ragged tensor".into()),
        _ => Err("expected a (nested) array of numbers".into()),
    }
}

async fn predict(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let t0 = Instant::now();
    let res = tokio::time::timeout(st.timeout, predict_inner(&st, &headers, body, t0)).await;
    let res = match res {
        Ok(r) => r,
        Err(_) => Err(ApiError::timeout(st.timeout)),
    };
    let total = t0.elapsed().as_secs_f64();
    let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
    match res {
        Ok((v, times)) => {
            mon.observe_stage("total", total);
            mon.observe_request("ok", Some(total * 1000.0));
            drop(mon);
            let mut r = Json(v).into_response();
            if let Ok(h) = header::HeaderValue::from_str(&times.header(total)) {
                r.headers_mut().insert("server-timing", h);
            }
            r
        }
        Err(e) => {
            mon.observe_request(e.outcome(), None);
            drop(mon);
            err(e.0, e.1, e.2)
        }
    }
}

/// The right to run one request's blocking work (preprocessing, model, log
/// commit) on the async worker that read it (`[server] inline_inference`).
/// That saves the two thread hand-offs through the blocking pool, 0.2-0.3
/// ms at p50 and more at p99 on a 2-vCPU VM, where it pays together with
/// `inference_cpus` (unpinned, the model ran slower on the async worker:
/// docs/BENCHMARKS.md, "Running the model on the async worker"), but it
/// blocks the worker for the whole job. So at most one request holds it at
/// a time, and never on a runtime with a single worker: the other workers
/// keep accepting and answering while it runs, and a concurrent request
/// goes to the blocking pool as usual.
struct InlineSlot<'a>(&'a AtomicBool);

impl<'a> InlineSlot<'a> {
    fn claim(st: &'a AppState) -> Option<Self> {
        if !st.inline || tokio::runtime::Handle::current().metrics().num_workers() < 2 {
            return None;
        }
        st.inline_busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| InlineSlot(&st.inline_busy))
    }
}

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn predict_inner(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    t0: Instant,
) -> std::result::Result<(Value, RequestTimes), ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    let is_json = ctype.starts_with("application/json");
    if !(is_json || ctype.starts_with("image/") || ctype.starts_with("application/octet-stream")) {
        return Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("content type {ctype:?}: send image bytes (image/*, application/octet-stream) or application/json")));
    }
    let bytes = axum::body::to_bytes(body, st.max_body).await.map_err(|_| {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("bodies are limited to {} bytes", st.max_body),
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad("empty body"));
    }
    let request_id = match headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(r) if valid_request_id(r) => r.to_string(),
        Some(_) => {
            return Err(ApiError::bad(
                "X-Request-Id must be 1..=128 printable ASCII characters",
            ))
        }
        None => format!(
            "{:x}-{:x}",
            now_ms(),
            st.counter.fetch_add(1, Ordering::Relaxed)
        ),
    };
    let header_segment = headers
        .get(st.segment_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let input = if is_json {
        #[derive(Deserialize)]
        struct Req {
            instances: Vec<Value>,
        }
        let r: Req = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad(format!(
                "malformed JSON (expected {{\"instances\": [...]}}): {e}"
            ))
        })?;
        if r.instances.is_empty() {
            return Err(ApiError::bad("no instances"));
        }
        if r.instances.len() > st.max_instances {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_instances",
                format!("at most {} instances per request", st.max_instances),
            ));
        }
        Input::Json(r.instances)
    } else {
        Input::Image(bytes)
    };
    let t_parse = t0.elapsed().as_secs_f64();
    let t_submit = Instant::now();
    let st2 = Arc::clone(st);
    let rid = request_id.clone();
    // Everything from preprocessing to the committed log row runs on one
    // thread: this one when it may block (`InlineSlot`), else a blocking
    // thread (one hand-off there and one back).
    let work = move || -> std::result::Result<_, ApiError> {
        let st = st2;
        let request_id = rid;
        if let Some(cpus) = &st.inference_cpus {
            crate::priority::pin_once(cpus);
        }
        let t1 = Instant::now();
        let t_queue = (t1 - t_submit).as_secs_f64();
        let (items, segs) = preprocess(&st, &input)?;
        let t_handoff = Instant::now();
        let t_pre = (t_handoff - t1).as_secs_f64();
        // The input hashes (SHA-256 over every tensor byte, ~0.35 ms for a
        // 224x224 image) are computed on a rayon worker while the model runs
        // here, off the request's critical path; `serve_load`'s
        // `direct-hash` mode measured that this does not slow the model.
        // (Not `rayon::join`: from outside the pool it would move the
        // inference onto a pool thread and back, two more thread hand-offs.
        // A dedicated `SCHED_IDLE` hash thread measured the same.) Handing
        // it over wakes a thread, which costs ~0.02 ms at p50 but ~0.75 ms
        // at p99 on a 2-vCPU VM: it counts in the `hash` stage.
        let items = Arc::new(items);
        let (hash_tx, hash_rx) = mpsc::sync_channel::<Vec<String>>(1);
        let to_hash = Arc::clone(&items);
        rayon::spawn(move || {
            let _ = hash_tx.send(to_hash.iter().map(Tensor::content_hash).collect());
        });
        let t2 = Instant::now();
        let answers = {
            let mut m = st.model.lock().unwrap_or_else(|e| e.into_inner());
            run_model(
                &mut m,
                &items,
                st.top_k,
                st.embedding.as_deref(),
                st.guard.as_ref(),
            )
        };
        let t_inf = t2.elapsed().as_secs_f64();
        let answers = answers?;
        let t_wait = Instant::now();
        let hashes = hash_rx.recv().map_err(|_| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the input hash worker failed".into(),
            )
        })?;
        let t3 = Instant::now();
        let t_hash = (t2 - t_handoff + (t3 - t_wait)).as_secs_f64();
        let ts = now_ms();
        let latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let segments: Vec<String> = (0..answers.len())
            .map(|i| {
                segs.get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| header_segment.clone())
                    .unwrap_or_else(|| "default".into())
            })
            .collect();
        let label = |c: usize| st.labels.get(c).cloned();
        let mut rows = Vec::with_capacity(answers.len());
        let mut preds = Vec::with_capacity(answers.len());
        for (i, a) in answers.iter().enumerate() {
            let seg = &segments[i];
            rows.push(PredictionRow {
                ts_ms: ts,
                request_id: request_id.clone(),
                instance: i as i64,
                segment: seg.clone(),
                input_hash: hashes[i].clone(),
                spec_fingerprint: st.spec_fp.clone(),
                model_sha256: st.model_sha.clone(),
                class: a.class as i64,
                label_name: label(a.class),
                confidence: a.confidence,
                ood_score: a.ood_score,
                is_ood: a.is_ood,
                latency_ms,
            });
            preds.push(json!({
                "instance": i,
                "class": a.class,
                "label": label(a.class),
                "confidence": a.confidence,
                "top_k": a.top_k.iter().map(|(c, p)| TopK { class: *c, label: label(*c), probability: *p }).collect::<Vec<_>>(),
                "ood_score": a.ood_score,
                "is_ood": a.is_ood,
                "reliable": a.is_ood.map(|o| !o),
                "input_hash": hashes[i],
                "model_fingerprint": st.model_sha,
                "spec_fingerprint": st.spec_fp,
                "segment": seg,
                "request_id": request_id,
            }));
        }
        let t_post = t3.elapsed().as_secs_f64();
        // Past the deadline the client gets a 503 from `predict`: log only
        // what will be answered (as when the commit ran after the job).
        if t0.elapsed() >= st.timeout {
            return Err(ApiError::timeout(st.timeout));
        }
        let t4 = Instant::now();
        // Committed here, or queued for the flusher with a commit window.
        st.log
            .log_predictions_deferred(rows)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "log", e.to_string()))?;
        Ok(Processed {
            items,
            segments,
            answers,
            preds,
            times: RequestTimes {
                parse: t_parse,
                queue: t_queue,
                resume: 0.0,
                preprocess: t_pre,
                inference: t_inf,
                hash: t_hash,
                postprocess: t_post,
                log: t4.elapsed().as_secs_f64(),
                observe: 0.0,
            },
            done: Instant::now(),
        })
    };
    let failed = |e: &dyn std::fmt::Display| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("inference worker failed: {e}"),
        )
    };
    let processed = match InlineSlot::claim(st) {
        Some(_slot) => {
            st.inline_requests.fetch_add(1, Ordering::Relaxed);
            std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|_| failed(&"it panicked"))?
        }
        None => tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| failed(&e))?,
    };
    let Processed {
        items,
        segments,
        answers,
        preds,
        mut times,
        done,
    } = processed?;
    let t_resumed = Instant::now();
    times.resume = (t_resumed - done).as_secs_f64();
    // Shadow copy: never blocks, never fails the request.
    let sampled = st.shadow_rate >= 1.0
        || (st.shadow_rate > 0.0 && {
            let h = bridgeml_core::fingerprint::sha256_bytes(request_id.as_bytes());
            u32::from_str_radix(&h[h.len() - 8..], 16).unwrap_or(0) as f64 / u32::MAX as f64
                <= st.shadow_rate
        });
    let mut dropped = false;
    if sampled {
        if let Ok(guard) = st.shadow.lock() {
            if let Some(tx) = guard.as_ref() {
                let job = ShadowJob {
                    request_id: request_id.clone(),
                    segment: segments[0].clone(),
                    items,
                    live: answers.iter().map(|a| a.class).collect(),
                };
                dropped = matches!(tx.try_send(job), Err(mpsc::TrySendError::Full(_)));
            }
        }
    }
    let mut closed = Vec::new();
    {
        let mut mon = st.monitors.lock().unwrap_or_else(|e| e.into_inner());
        if dropped {
            mon.shadow_dropped();
        }
        mon.collect_shadow();
        mon.observe_stage("parse", times.parse);
        mon.observe_stage("preprocess", times.preprocess);
        mon.observe_stage("inference", times.inference);
        mon.observe_stage("postprocess", times.postprocess);
        mon.observe_stage("log", times.log);
        for (a, seg) in answers.iter().zip(&segments) {
            closed.extend(mon.observe_instance_deferred(Observed {
                segment: seg,
                confidence: a.confidence,
                is_ood: a.is_ood,
                embedding: a.embedding.as_deref(),
            }));
        }
    }
    if !closed.is_empty() {
        if let Some(tx) = st.windows.lock().ok().as_ref().and_then(|w| w.as_ref()) {
            for w in closed {
                let _ = tx.send(w);
            }
        }
    }
    times.observe = t_resumed.elapsed().as_secs_f64();
    Ok((
        json!({
            "request_id": request_id,
            "model_fingerprint": st.model_sha,
            "spec_fingerprint": st.spec_fp,
            "predictions": preds,
        }),
        times,
    ))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Loads the manifest's server, binds `listen`, calls `on_ready` with the
/// bound address, and serves until Ctrl-C / SIGTERM (then drains and
/// flushes the log). For callers without their own tokio runtime.
pub fn run_blocking(
    manifest: &Manifest,
    listen: SocketAddr,
    opts: Options,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let server = Server::load(manifest, opts)?;
    // At least two workers, so that one can run a request inline
    // (`inline_inference`) while another keeps answering.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (listener, addr) = bind(listen).await?;
        on_ready(addr);
        server.run(listener, shutdown_signal()).await
    })
}
