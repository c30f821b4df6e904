//! Load generator for the serving sidecar (loopback only, bounded in time).
//!
//! In one process and one run it measures, at batch 1 and closed loop:
//!
//! - `direct`: the same work without the sidecar, `Pipeline::run_bytes` +
//!   `Model::run` called in a loop (the runtime called directly);
//! - `sidecar`: `POST /v1/predict` of the same image bytes over HTTP/1.1
//!   keep-alive to an in-process server (parsing, preprocessing, inference,
//!   response JSON, prediction log commit);
//! - `monitors`: the same plus an energy guard, confidence-PSI / latency
//!   monitors (window 100), with `--embedding NAME` an MMD monitor of that
//!   intermediate tensor against a reference of jittered copies, and a
//!   policy;
//! - `shadow`: `monitors` plus a shadow candidate (the `--candidate` model,
//!   default the same model) on every request;
//! - `sidecar-window`, `monitors-window`, `shadow-window`: the same with
//!   `log_commit_window_ms = 50` (the log row committed within 50 ms after
//!   the answer instead of before it);
//! - `direct-hash`: `direct` plus the server's input hash on a rayon worker
//!   while the model runs (does the concurrent hash slow the model?);
//! - any server mode with `-inline` inserted before the other suffixes
//!   (`sidecar-inline`, `shadow-inline-window-pinned`, ...): the same with
//!   `inline_inference = true` (the model on the async worker);
//! - any server mode with `-pinned` appended (`sidecar-pinned`,
//!   `shadow-window-pinned`, ...): the same with `[server] inference_cpus`
//!   set to `--inference-cpus` (default: the highest CPU).
//!
//! Modes are interleaved in rounds so that a change in machine load hits
//! all of them alike. Each p99 overhead comes with a 95% interval from a
//! paired bootstrap over rounds. `--workers N` sets the server's async
//! worker threads (default 2). Prints a JSON report (and a Markdown table on
//! stderr).
//!
//! ```text
//! cargo run --release -p bridgeml-serve --example serve_load -- \
//!   --model mobilenet_v2.onnx --spec examples/specs/imagenet_pil.toml \
//!   --image tests/fixtures/images/chelsea.png --seconds 5 --rounds 4
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridgeml_core::Tensor;
use bridgeml_preprocess::Pipeline;
use bridgeml_runtime::{BackendChoice, LoadOptions, Model};
use bridgeml_serve::client::Client;
use bridgeml_serve::manifest::Manifest;
use bridgeml_serve::server::{Background, Options, Server};

struct Args {
    model: PathBuf,
    spec: PathBuf,
    image: PathBuf,
    candidate: Option<PathBuf>,
    embedding: Option<String>,
    backend: String,
    seconds: f64,
    rounds: usize,
    modes: Vec<String>,
    workers: usize,
    inference_cpus: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        model: PathBuf::new(),
        spec: PathBuf::new(),
        image: PathBuf::new(),
        candidate: None,
        embedding: None,
        backend: "tract".into(),
        seconds: 5.0,
        rounds: 4,
        modes: ["direct", "sidecar", "monitors", "shadow"]
            .map(String::from)
            .to_vec(),
        workers: 2,
        inference_cpus: std::thread::available_parallelism()
            .map_or(0, |n| n.get() - 1)
            .to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--model" => a.model = v().into(),
            "--spec" => a.spec = v().into(),
            "--image" => a.image = v().into(),
            "--candidate" => a.candidate = Some(v().into()),
            "--embedding" => a.embedding = Some(v()),
            "--backend" => a.backend = v(),
            "--seconds" => a.seconds = v().parse().expect("--seconds: a number"),
            "--rounds" => a.rounds = v().parse().expect("--rounds: an integer"),
            "--modes" => a.modes = v().split(',').map(String::from).collect(),
            "--workers" => a.workers = v().parse().expect("--workers: an integer"),
            "--inference-cpus" => a.inference_cpus = v(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.model.as_os_str().is_empty() && !a.spec.as_os_str().is_empty(),
        "--model and --spec are required"
    );
    // Bounded: at most 5 minutes per mode. Short rounds (e.g. 0.25 s x 200)
    // spread a burst of load from elsewhere over every mode alike.
    assert!(
        a.seconds > 0.0 && a.seconds * a.rounds as f64 <= 300.0,
        "bounded runs only: --seconds x --rounds <= 300"
    );
    a
}

fn backend(s: &str) -> BackendChoice {
    match s {
        "ort" => BackendChoice::Ort,
        "auto" => BackendChoice::Auto,
        _ => BackendChoice::Tract,
    }
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Writes a manifest for `mode` into `dir` (guard, baseline and policy
/// calibrated on jittered copies of the image for the monitored modes).
fn write_manifest(a: &Args, dir: &Path, mode: &str, img: &[u8]) -> Manifest {
    let monitored = mode.starts_with("monitors") || mode.starts_with("shadow");
    let embedding = match &a.embedding {
        Some(e) if monitored => format!("embedding = {e:?}\n"),
        _ => String::new(),
    };
    let mut text = format!(
        "[model]\npath = {:?}\nbackend = {:?}\nthreads = 1\n{embedding}\n[spec]\npath = {:?}\n\n[server]\nlog = \"{mode}.db\"\nmax_body_bytes = 50000000\n",
        abs(&a.model),
        a.backend,
        abs(&a.spec)
    );
    // `<mode>-window`: the same with the log committed within 50 ms after
    // the answer instead of before it.
    if mode.contains("-window") {
        text.push_str("log_commit_window_ms = 50\n");
    }
    if mode.contains("-inline") {
        text.push_str("inline_inference = true\n");
    }
    if mode.ends_with("-pinned") {
        text.push_str(&format!("inference_cpus = [{}]\n", a.inference_cpus));
    }
    if monitored {
        let (guard, baseline, mmd) = calibrate(a, dir, img);
        std::fs::write(
            dir.join("policy.toml"),
            "[[rules]]\nname = \"confidence-psi\"\nwhen = \"psi.confidence > 0.25\"\naction = \"shadow_eval\"\n",
        )
        .unwrap();
        text.push_str(&format!(
            "\n[guard]\npath = {guard:?}\n\n[monitor]\nwindow = 100\nconfidence_baseline = {baseline:?}\n"
        ));
        if let Some((baseline, reference)) = mmd {
            text.push_str(&format!(
                "embedding_baseline = {baseline:?}\nembedding_reference = {reference:?}\n"
            ));
        }
        text.push_str("\n[policy]\npath = \"policy.toml\"\n");
    }
    if mode.starts_with("shadow") {
        let cand = abs(a.candidate.as_deref().unwrap_or(&a.model));
        text.push_str(&format!(
            "\n[shadow]\nmodel = {cand:?}\nsample_rate = 1.0\nqueue = 64\n"
        ));
    }
    let p = dir.join(format!("{mode}.toml"));
    std::fs::write(&p, text).unwrap();
    Manifest::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Rows of the MMD reference (jittered copies of the image).
const REFERENCE_ROWS: usize = 300;

/// An energy guard, a confidence PSI baseline and (with `--embedding`) an
/// MMD baseline + reference from brightness-jittered copies of the image
/// (enough for the load test; not a real calibration).
#[allow(clippy::type_complexity)]
fn calibrate(a: &Args, dir: &Path, img: &[u8]) -> (PathBuf, PathBuf, Option<(PathBuf, PathBuf)>) {
    let pipeline = Pipeline::from_path(&a.spec).unwrap();
    let extra: Vec<String> = a.embedding.iter().cloned().collect();
    let mut model = Model::load(
        &a.model,
        &LoadOptions::new(backend(&a.backend)).extra_outputs(extra),
    )
    .unwrap();
    let base = pipeline.run_bytes(img, "image").unwrap();
    let mut logits = Vec::new();
    let mut conf = Vec::new();
    let mut embeddings = Vec::new();
    let mut width = 0;
    let rows = if a.embedding.is_some() {
        REFERENCE_ROWS
    } else {
        24
    };
    for i in 0..rows {
        let gain = 0.8 + 0.4 * i as f32 / rows as f32;
        let t = Tensor::F32(base.to_f32().mapv(|v| v * gain));
        let out = model.run(&Tensor::stack(&[t]).unwrap()).unwrap();
        let row = out.row(0, 0);
        width = row.len();
        let p = bridgeml_runtime::diverge::probabilities(&row);
        conf.push(p.iter().copied().fold(f64::MIN, f64::max));
        logits.extend(row.iter().map(|&v| v as f32));
        if a.embedding.is_some() {
            embeddings.push(out.row(1, 0));
        }
    }
    let logits = ndarray::Array2::from_shape_vec((rows, width), logits).unwrap();
    let cfg = bridgeml_guard::CalibrateConfig {
        method: bridgeml_guard::Method::Energy,
        tpr: 0.95,
        ..Default::default()
    };
    let mut cal = bridgeml_guard::calibrate_guard(
        &cfg,
        bridgeml_guard::CalibrationData {
            inputs: bridgeml_guard::Inputs {
                logits: Some(logits.view()),
                features: None,
            },
            ..Default::default()
        },
    )
    .unwrap();
    cal.file.model_sha256 = Some(model.sha256().to_string());
    cal.file.spec_fingerprint = Some(pipeline.fingerprint().to_string());
    let guard = dir.join("guard.json");
    cal.file.save(&guard, None).unwrap();
    let bins = bridgeml_monitor::psi::ReferenceBins::fit(
        &conf,
        bridgeml_monitor::psi::PsiConfig::default(),
    )
    .unwrap();
    let b = bridgeml_monitor::Baseline {
        format_version: bridgeml_monitor::Baseline::FORMAT_VERSION,
        reference_rows: conf.len(),
        columns: vec![bridgeml_monitor::ColumnBaseline {
            column: Some("confidence".into()),
            method: "psi".into(),
            calibration: bridgeml_monitor::NullCalibration::from_statistics(
                bridgeml_monitor::CalibrationConfig::new(100),
                vec![0.05, 0.1, 0.08, 0.06],
            ),
            bins: Some(bins),
            bandwidth: None,
        }],
    };
    let baseline = dir.join("conf_baseline.json");
    std::fs::write(&baseline, serde_json::to_string(&b).unwrap()).unwrap();
    let mmd = (!embeddings.is_empty()).then(|| {
        let d = embeddings[0].len();
        let flat: Vec<f64> = embeddings.concat();
        let reference = ndarray::Array2::from_shape_vec((embeddings.len(), d), flat).unwrap();
        let column = bridgeml_monitor::ColumnBaseline::mmd(
            reference.view(),
            None,
            bridgeml_monitor::CalibrationConfig::new(100),
        )
        .unwrap();
        let b = bridgeml_monitor::Baseline {
            format_version: bridgeml_monitor::Baseline::FORMAT_VERSION,
            reference_rows: reference.nrows(),
            columns: vec![column],
        };
        let baseline = dir.join("embedding_baseline.json");
        std::fs::write(&baseline, serde_json::to_string(&b).unwrap()).unwrap();
        let npy = dir.join("embedding_reference.npy");
        Tensor::F32(reference.mapv(|v| v as f32).into_dyn())
            .write_npy(&npy)
            .unwrap();
        (baseline, npy)
    });
    (guard, baseline, mmd)
}

fn start(m: &Manifest, workers: usize) -> Background {
    Server::load(m, Options::default())
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap(), workers)
        .unwrap()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    bridgeml_runtime::profile::percentile_sorted(sorted, q)
}

#[derive(serde::Serialize)]
struct ModeResult {
    mode: String,
    requests: usize,
    throughput_rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// (p99 − direct p99) / direct p99.
    p99_overhead_vs_direct: Option<f64>,
    /// 95% interval of `p99_overhead_vs_direct` from a paired bootstrap
    /// over rounds (see `p99_overhead_intervals`).
    p99_overhead_ci95: Option<[f64; 2]>,
    /// Mean ms per stage: the server's `bridgeml_request_duration_seconds`
    /// (warm-up requests included), or the direct loop's own timers (timed
    /// calls only).
    stages_ms: std::collections::BTreeMap<String, f64>,
    /// p99 ms per stage over the timed requests (`Server-Timing`; direct:
    /// its own timers); `outside` is what the client waited beyond the
    /// server's total (HTTP, hand-offs to and from the server's threads).
    stage_p99_ms: std::collections::BTreeMap<String, f64>,
    stage_p50_ms: std::collections::BTreeMap<String, f64>,
    /// p99 over requests of `added` (the client's latency minus the
    /// server's preprocess + inference: everything the sidecar adds around
    /// the model in that request, HTTP exchange included), as a share of
    /// the direct loop's p99.
    added_p99_vs_direct_p99: Option<f64>,
    /// The same for `server_added` (the server's total minus its
    /// preprocess + inference: the sidecar's own code and thread hand-offs,
    /// without the HTTP exchange between client and handler).
    server_added_p99_vs_direct_p99: Option<f64>,
}

/// Mean seconds per stage from a Prometheus exposition, in ms.
fn stage_means(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let mut sums = std::collections::BTreeMap::new();
    let mut counts = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        for (prefix, map) in [
            ("bridgeml_request_duration_seconds_sum{stage=\"", &mut sums),
            (
                "bridgeml_request_duration_seconds_count{stage=\"",
                &mut counts,
            ),
        ] {
            if let Some(rest) = line.strip_prefix(prefix) {
                if let Some((stage, v)) = rest.split_once("\"} ") {
                    map.insert(stage.to_string(), v.parse::<f64>().unwrap_or(f64::NAN));
                }
            }
        }
    }
    sums.into_iter()
        .filter_map(|(k, s)| {
            let n = *counts.get(&k)?;
            (n > 0.0).then(|| (k, 1000.0 * s / n))
        })
        .collect()
}

const BOOTSTRAP_RESAMPLES: usize = 2000;

fn p99(samples: &mut [f64]) -> f64 {
    samples.sort_unstable_by(f64::total_cmp);
    quantile(samples, 99.0)
}

/// 95% intervals of each mode's p99 overhead vs the `direct` mode, from a
/// paired bootstrap over rounds: each resample draws round indices with
/// replacement and takes the same rounds for every mode, so a slow spell of
/// the machine (which hits the modes of one round alike) stays paired, and
/// the interval shows how far the p99 ratio moves with the samples drawn.
fn p99_overhead_intervals(lat: &[Vec<Vec<f64>>], direct: usize, resamples: usize) -> Vec<[f64; 2]> {
    let rounds = lat[direct].len();
    let mut rng = bridgeml_monitor::rng::SplitMix64::new(0x5e7e);
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); lat.len()];
    let mut pool = Vec::new();
    for _ in 0..resamples {
        let picks: Vec<usize> = (0..rounds).map(|_| rng.below(rounds)).collect();
        let mut p99_of = |mode: &[Vec<f64>]| {
            pool.clear();
            for &r in &picks {
                pool.extend_from_slice(&mode[r]);
            }
            p99(&mut pool)
        };
        let d = p99_of(&lat[direct]);
        for (i, mode) in lat.iter().enumerate() {
            ratios[i].push((p99_of(mode) - d) / d);
        }
    }
    ratios
        .into_iter()
        .map(|mut r| {
            r.sort_unstable_by(f64::total_cmp);
            [quantile(&r, 2.5), quantile(&r, 97.5)]
        })
        .collect()
}

fn main() {
    let a = parse_args();
    let img = std::fs::read(&a.image).unwrap_or_else(|e| panic!("{}: {e}", a.image.display()));
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::from_path(&a.spec).unwrap();
    let mut model = Model::load(
        &a.model,
        &LoadOptions::new(backend(&a.backend)).threads(Some(1)),
    )
    .unwrap();
    let mut servers: Vec<(String, Option<Background>)> = a
        .modes
        .iter()
        .map(|mode| {
            let srv = (!mode.starts_with("direct"))
                .then(|| start(&write_manifest(&a, dir.path(), mode, &img), a.workers));
            (mode.clone(), srv)
        })
        .collect();
    // Per mode and round, ms per timed request.
    let mut lat: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(a.rounds); servers.len()];
    // Per mode and stage, ms per timed request: the server's `Server-Timing`
    // (plus `outside`: the client's latency minus the server's total), or
    // the direct loop's timers.
    type Samples = std::collections::BTreeMap<String, Vec<f64>>;
    let mut stage_samples: Vec<Samples> = vec![Samples::new(); servers.len()];
    let mut busy: Vec<f64> = vec![0.0; servers.len()];
    let window = Duration::from_secs_f64(a.seconds);
    for _ in 0..a.rounds {
        for (i, (mode, srv)) in servers.iter_mut().enumerate() {
            let mut client = srv.as_ref().map(|s| Client::new(s.addr));
            let hash = mode == "direct-hash";
            // Warm-up request, not timed.
            let mut one = |client: &mut Option<Client>| -> Vec<(String, f64)> {
                match client {
                    None => {
                        let t0 = Instant::now();
                        let t = std::sync::Arc::new(pipeline.run_bytes(&img, "image").unwrap());
                        let t1 = Instant::now();
                        // `direct-hash`: the server's input hash on a rayon
                        // worker while the model runs, without the server.
                        let (tx, rx) = std::sync::mpsc::sync_channel(1);
                        if hash {
                            let t = std::sync::Arc::clone(&t);
                            rayon::spawn(move || {
                                let _ = tx.send(t.content_hash());
                            });
                        }
                        model
                            .run(&Tensor::stack(std::slice::from_ref(&*t)).unwrap())
                            .unwrap();
                        let inf = t1.elapsed().as_secs_f64();
                        if hash {
                            rx.recv().unwrap();
                        }
                        let pre = (t1 - t0).as_secs_f64();
                        vec![
                            ("preprocess".into(), pre * 1000.0),
                            ("inference".into(), inf * 1000.0),
                        ]
                    }
                    Some(c) => {
                        let r = c
                            .request(
                                "POST",
                                "/v1/predict",
                                &[("Content-Type", "image/png")],
                                &img,
                            )
                            .unwrap();
                        assert_eq!(r.status, 200, "{mode}: {}", r.text());
                        r.server_timing()
                    }
                }
            };
            one(&mut client);
            let mut this_round = Vec::new();
            let t0 = Instant::now();
            while t0.elapsed() < window {
                let t = Instant::now();
                let stages = one(&mut client);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                this_round.push(ms);
                let get = |name: &str| stages.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
                let model = get("preprocess").unwrap_or(0.0) + get("inference").unwrap_or(0.0);
                let mut derived = Vec::new();
                if let Some(total) = get("total") {
                    derived.push(("added".to_string(), ms - model));
                    derived.push(("outside".into(), ms - total));
                    derived.push(("server_added".into(), total - model));
                    let timed: f64 = stages
                        .iter()
                        .filter(|(k, _)| k != "total")
                        .map(|(_, v)| v)
                        .sum();
                    derived.push(("handoffs".into(), total - timed));
                }
                for (k, v) in stages.into_iter().chain(derived) {
                    stage_samples[i].entry(k).or_default().push(v);
                }
            }
            busy[i] += t0.elapsed().as_secs_f64();
            lat[i].push(this_round);
        }
    }
    let mut results = Vec::new();
    let mut direct_p99 = None;
    for (i, (mode, srv)) in servers.iter().enumerate() {
        let stages_ms = match srv {
            Some(s) => {
                let m = Client::new(s.addr).get("/metrics").unwrap();
                stage_means(&m.text())
            }
            // The direct loop's timed calls.
            None => stage_samples[i]
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().sum::<f64>() / v.len().max(1) as f64))
                .collect(),
        };
        let mut l = lat[i].concat();
        l.sort_by(f64::total_cmp);
        let p99 = quantile(&l, 99.0);
        if mode == "direct" {
            direct_p99 = Some(p99);
        }
        for v in stage_samples[i].values_mut() {
            v.sort_by(f64::total_cmp);
        }
        let at = |q: f64| -> std::collections::BTreeMap<String, f64> {
            stage_samples[i]
                .iter()
                .map(|(k, v)| (k.clone(), quantile(v, q)))
                .collect()
        };
        let (stage_p50_ms, stage_p99_ms) = (at(50.0), at(99.0));
        results.push(ModeResult {
            mode: mode.clone(),
            requests: l.len(),
            throughput_rps: l.len() as f64 / busy[i],
            p50_ms: quantile(&l, 50.0),
            p99_ms: p99,
            p99_overhead_vs_direct: None,
            p99_overhead_ci95: None,
            stages_ms,
            stage_p50_ms,
            stage_p99_ms,
            added_p99_vs_direct_p99: None,
            server_added_p99_vs_direct_p99: None,
        });
    }
    let direct = a.modes.iter().position(|m| m == "direct");
    let intervals = direct.map(|d| p99_overhead_intervals(&lat, d, BOOTSTRAP_RESAMPLES));
    for (i, r) in results.iter_mut().enumerate() {
        r.p99_overhead_vs_direct = direct_p99.map(|d| (r.p99_ms - d) / d);
        if r.mode != "direct" {
            r.p99_overhead_ci95 = intervals.as_ref().map(|v| v[i]);
        }
        if r.mode != "direct" {
            r.added_p99_vs_direct_p99 = direct_p99
                .zip(r.stage_p99_ms.get("added"))
                .map(|(d, a)| a / d);
            r.server_added_p99_vs_direct_p99 = direct_p99
                .zip(r.stage_p99_ms.get("server_added"))
                .map(|(d, a)| a / d);
        }
    }
    eprintln!(
        "| mode | requests | req/s | p50 ms | p99 ms | p99 vs direct (95% CI) | mean ms per stage |\n|---|---|---|---|---|---|---|"
    );
    for r in &results {
        let stages: Vec<String> = r
            .stages_ms
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        eprintln!(
            "| {} | {} | {:.1} | {:.2} | {:.2} | {} | {} |",
            r.mode,
            r.requests,
            r.throughput_rps,
            r.p50_ms,
            r.p99_ms,
            match (r.p99_overhead_vs_direct, r.p99_overhead_ci95) {
                (Some(o), Some([lo, hi])) => format!(
                    "{:+.1}% ({:+.1}..{:+.1})",
                    100.0 * o,
                    100.0 * lo,
                    100.0 * hi
                ),
                (Some(o), None) => format!("{:+.1}%", 100.0 * o),
                _ => "-".into(),
            },
            stages.join(", ")
        );
    }
    eprintln!("\nms per stage, p50 / p99 (added = latency - preprocess - inference):");
    for r in &results {
        let p: Vec<String> = r
            .stage_p99_ms
            .iter()
            .map(|(k, v)| format!("{k} {:.2} / {v:.2}", r.stage_p50_ms[k]))
            .collect();
        let added = r
            .added_p99_vs_direct_p99
            .zip(r.server_added_p99_vs_direct_p99)
            .map_or(String::new(), |(a, s)| {
                format!(
                    "\n    -> p99 of added = {:.1}% of direct p99; of server_added = {:.1}%",
                    100.0 * a,
                    100.0 * s
                )
            });
        eprintln!("  {}: {}{added}", r.mode, p.join(", "));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "model": a.model, "image": a.image, "backend": a.backend,
            "seconds_per_round": a.seconds, "rounds": a.rounds, "results": results,
        }))
        .unwrap()
    );
    for s in servers.drain(..).filter_map(|(_, s)| s) {
        s.stop().unwrap();
    }
}
