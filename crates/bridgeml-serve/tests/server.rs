//! Integration tests: the real server on a loopback port, spoken to over HTTP.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bridgeml_core::Tensor;
use bridgeml_monitor::psi::{PsiConfig, ReferenceBins};
use bridgeml_monitor::{Baseline, CalibrationConfig, ColumnBaseline, NullCalibration};
use bridgeml_serve::client::Client;
use bridgeml_serve::server::{Answer, Candidate, Options};
use common::{manifest, noise_image, predict_ok, Running};
#[cfg(target_os = "linux")]
use common::{thread_policies, SCHED_IDLE};

#[test]
fn predict_feedback_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let srv = Running::start(&m, Options::default());
    let mut c = Client::new(srv.addr);

    assert_eq!(c.get("/healthz").unwrap().status, 200);
    assert_eq!(c.get("/readyz").unwrap().status, 200);

    let img = noise_image(1);
    let r = c
        .request(
            "POST",
            "/v1/predict",
            &[
                ("Content-Type", "image/bmp"),
                ("X-Request-Id", "req-1"),
                ("X-Segment", "premium"),
            ],
            &img,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Server-Timing: every stage, in ms, the stages within the total.
    let timing = &r
        .headers
        .iter()
        .find(|(k, _)| k == "server-timing")
        .expect("a Server-Timing header")
        .1;
    let stages: std::collections::BTreeMap<String, f64> = r.server_timing().into_iter().collect();
    let names = [
        "parse",
        "queue",
        "preprocess",
        "inference",
        "hash",
        "postprocess",
        "log",
        "resume",
        "observe",
        "total",
    ];
    // Every part parsed (the parser leaves out those that do not).
    assert_eq!(timing.split(", ").count(), names.len(), "{timing}");
    assert_eq!(stages.len(), names.len(), "{timing}");
    for n in names {
        assert!(stages[n] >= 0.0, "{timing}");
    }
    let parts: f64 = names[..names.len() - 1].iter().map(|&n| stages[n]).sum();
    assert!(
        stages["inference"] > 0.0 && parts <= stages["total"] + 0.01,
        "{timing}"
    );
    let v = r.json();
    let p = &v["predictions"][0];
    assert_eq!(p["request_id"], "req-1");
    assert_eq!(p["segment"], "premium");
    assert!(p["class"].as_u64().unwrap() < 10);
    assert!(p["label"].is_string());
    assert_eq!(p["top_k"].as_array().unwrap().len(), 5);
    let conf = p["confidence"].as_f64().unwrap();
    assert!(conf > 0.0 && conf <= 1.0);
    assert!(p["input_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(p["model_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(p["spec_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // No guard crate in this build: OOD fields are explicit nulls.
    assert!(p["ood_score"].is_null() && p["is_ood"].is_null() && p["reliable"].is_null());

    // JSON tensors: one item of the model's [3,16,16] input.
    let x = Tensor::read_npy(&common::fixtures().join("input_0.npy")).unwrap();
    let flat: Vec<f32> = x.to_f32().iter().copied().collect();
    let nested: Vec<Vec<Vec<f32>>> = flat
        .chunks(256)
        .map(|ch| ch.chunks(16).map(<[f32]>::to_vec).collect())
        .collect();
    let body = serde_json::to_vec(
        &serde_json::json!({"instances": [nested, {"tensor": nested, "segment": "free"}]}),
    )
    .unwrap();
    let r = c
        .request(
            "POST",
            "/v1/predict",
            &[("Content-Type", "application/json")],
            &body,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(v["predictions"][1]["segment"], "free");
    assert_eq!(v["predictions"][0]["class"], v["predictions"][1]["class"]);

    // Bad input: 4xx with a JSON error body, never 5xx.
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("image/png", b"not an image at all".to_vec(), 422),
        ("text/plain", b"hello".to_vec(), 415),
        ("application/json", b"{\"instances\": [".to_vec(), 400),
        ("application/json", b"{\"rows\": []}".to_vec(), 400),
        (
            "application/json",
            b"{\"instances\": [[1, 2, 3]]}".to_vec(),
            400,
        ),
        (
            "application/json",
            b"{\"instances\": [[[1], [2, 3]]]}".to_vec(),
            400,
        ),
        ("application/octet-stream", vec![0u8; 200_000], 413),
        ("application/octet-stream", vec![], 400),
    ];
    for (ct, body, want) in cases {
        let r = c
            .request("POST", "/v1/predict", &[("Content-Type", ct)], &body)
            .unwrap();
        assert_eq!(r.status, want, "{ct}: {}", r.text());
        assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    }
    assert_eq!(c.get("/nope").unwrap().status, 404);

    // Feedback joins the logged prediction.
    let fb = |c: &mut Client, b: &str| {
        c.request(
            "POST",
            "/v1/feedback",
            &[("Content-Type", "application/json")],
            b.as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(
        fb(&mut c, r#"{"request_id": "nope", "label": 1}"#).status,
        404
    );
    assert_eq!(fb(&mut c, r#"{"request_id": "req-1"}"#).status, 400);
    assert_eq!(
        fb(&mut c, r#"{"request_id": "req-1", "label": "unicorn"}"#).status,
        400
    );
    let r = fb(&mut c, r#"{"request_id": "req-1", "label": "ant"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["joined"], 1);

    let metrics = c.get("/metrics").unwrap().text();
    for name in [
        "bridgeml_request_duration_seconds_bucket{stage=\"inference\",le=\"0.001\"}",
        "bridgeml_requests_total{outcome=\"ok\"} 2",
        "bridgeml_requests_total{outcome=\"client_error\"} 8",
        "bridgeml_feedback_accuracy{class=\"ant\"}",
        "bridgeml_model_info{model=\"sha256:",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    srv.stop().unwrap();
    // Graceful shutdown flushed the log.
    let ids = bridgeml_serve::log::request_ids(&dir.path().join("log.db")).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ("req-1".to_string(), 0));
}

#[test]
fn a_request_past_its_timeout_gets_503_and_is_not_logged() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // Generous for a debug build's first inference (which plans the model
    // for its input shape), and it comes first, out of the way.
    let m = manifest(dir.path(), "request_timeout_ms = 2000\n");
    let srv = Running::start(&m, Options::default());
    let img = noise_image(7);
    let mut c = Client::new(srv.addr);
    let predict_whole = |c: &mut Client| {
        predict_ok(c, &img);
    };
    predict_whole(&mut c);
    // A client that sends half its body and stalls: the deadline covers
    // reading the body, so the server answers instead of waiting forever.
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/bmp\r\nX-Request-Id: slow-1\r\nContent-Length: {}\r\n\r\n",
        img.len()
    )
    .unwrap();
    s.write_all(&img[..img.len() / 2]).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = s
            .read(&mut buf)
            .expect("an answer before the client gives up");
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");

    // Nothing was logged for it: feedback does not find the request.
    let fb = c
        .request(
            "POST",
            "/v1/feedback",
            &[("Content-Type", "application/json")],
            br#"{"request_id": "slow-1", "label": 1}"#,
        )
        .unwrap();
    assert_eq!(fb.status, 404, "{}", fb.text());
    // The server still answers requests that arrive whole.
    predict_whole(&mut c);
    let metrics = c.get("/metrics").unwrap().text();
    assert!(
        metrics.contains("bridgeml_requests_total{outcome=\"timeout\"} 1"),
        "{metrics}"
    );
    srv.stop().unwrap();
}

#[test]
fn token_guards_feedback_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let srv = Running::start(
        &m,
        Options {
            token: Some("s3cret".into()),
            candidate: None,
        },
    );
    let mut c = Client::new(srv.addr);
    assert_eq!(c.get("/v1/status").unwrap().status, 401);
    let r = c
        .request(
            "POST",
            "/v1/feedback",
            &[],
            br#"{"request_id": "x", "label": 1}"#,
        )
        .unwrap();
    assert_eq!(r.status, 401);
    let r = c
        .request(
            "GET",
            "/v1/status",
            &[("Authorization", "Bearer s3cret")],
            &[],
        )
        .unwrap();
    assert_eq!(r.status, 200);
}

/// Confidence PSI bins fitted on in-distribution images.
/// The served model's confidence and `features` embedding for each image,
/// computed outside the server.
fn confidence_and_features(
    m: &bridgeml_serve::manifest::Manifest,
    images: &[Vec<u8>],
) -> (Vec<f64>, ndarray::Array2<f64>) {
    let pipeline = bridgeml_preprocess::Pipeline::from_path(&m.resolve(&m.spec.path)).unwrap();
    let mut model = bridgeml_runtime::Model::load(
        &m.resolve(&m.model.path),
        &bridgeml_runtime::LoadOptions::new(bridgeml_runtime::BackendChoice::Tract)
            .extra_outputs(vec!["features".into()]),
    )
    .unwrap();
    let mut conf = Vec::new();
    let mut features = Vec::new();
    for img in images {
        let t = pipeline.run_bytes(img, "ref").unwrap();
        let out = model.run(&Tensor::stack(&[t]).unwrap()).unwrap();
        let p = bridgeml_runtime::diverge::probabilities(&out.row(0, 0));
        conf.push(p.iter().copied().fold(f64::MIN, f64::max));
        features.push(out.row(1, 0));
    }
    let d = features[0].len();
    let rows = ndarray::Array2::from_shape_vec((features.len(), d), features.concat()).unwrap();
    (conf, rows)
}

fn reference_images() -> Vec<Vec<u8>> {
    (1000..1200).map(noise_image).collect()
}

/// An MMD baseline (median-heuristic bandwidth, calibrated threshold) and
/// its reference rows, from the features of the reference images.
fn embedding_baseline(
    dir: &std::path::Path,
    m: &bridgeml_serve::manifest::Manifest,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    ndarray::Array2<f64>,
    f64,
) {
    let (_, reference) = confidence_and_features(m, &reference_images());
    let column = ColumnBaseline::mmd(reference.view(), None, CalibrationConfig::new(40)).unwrap();
    let sigma2 = column.bandwidth.as_ref().unwrap().sigma2;
    let b = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: reference.nrows(),
        columns: vec![column],
    };
    let p = dir.join("embedding_baseline.json");
    std::fs::write(&p, serde_json::to_string(&b).unwrap()).unwrap();
    let npy = dir.join("embedding_reference.npy");
    // The server reads the reference as f32 (like the demo's); compare with the same rows.
    let reference = reference.mapv(|v| v as f32);
    Tensor::F32(reference.clone().into_dyn())
        .write_npy(&npy)
        .unwrap();
    (p, npy, reference.mapv(f64::from), sigma2)
}

fn confidence_baseline(
    dir: &std::path::Path,
    m: &bridgeml_serve::manifest::Manifest,
) -> std::path::PathBuf {
    let (conf, _) = confidence_and_features(m, &reference_images());
    let bins = ReferenceBins::fit(&conf, PsiConfig::default()).unwrap();
    let cfg = CalibrationConfig::new(40);
    let b = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: conf.len(),
        columns: vec![ColumnBaseline {
            column: Some("confidence".into()),
            method: "psi".into(),
            calibration: NullCalibration::from_statistics(cfg, vec![0.05, 0.1, 0.08, 0.06]),
            bins: Some(bins),
            bandwidth: None,
        }],
    };
    let p = dir.join("conf_baseline.json");
    std::fs::write(&p, serde_json::to_string(&b).unwrap()).unwrap();
    p
}

#[test]
fn shifted_stream_moves_metrics_status_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let m0 = manifest(dir.path(), "");
    let base = confidence_baseline(dir.path(), &m0);
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[rules]]\nname = \"confidence-psi\"\nwhen = \"psi.confidence > 0.5\"\naction = \"shadow_eval\"\n",
    )
    .unwrap();
    let (emb_base, emb_ref, reference, sigma2) = embedding_baseline(dir.path(), &m0);
    let m = manifest(
        dir.path(),
        &format!("\n[monitor]\nwindow = 40\nconfidence_baseline = {base:?}\nembedding_baseline = {emb_base:?}\nembedding_reference = {emb_ref:?}\n\n[policy]\npath = \"policy.toml\"\n"),
    );
    let srv = Running::start(&m, Options::default());
    let mut c = Client::new(srv.addr);
    let send = |c: &mut Client, img: &[u8]| {
        predict_ok(c, img);
    };
    // In-distribution window.
    for s in 0..40 {
        send(&mut c, &noise_image(s));
    }
    let st = c.get("/v1/status").unwrap().json();
    let psi_in = st["last_window"]["psi_confidence"].as_f64().unwrap();
    assert!(psi_in < 0.5, "in-distribution PSI {psi_in}");
    assert_eq!(st["active_actions"].as_array().unwrap().len(), 0);
    let metrics = c.get("/metrics").unwrap().text();
    assert!(
        metrics.contains("bridgeml_policy_action{action=\"shadow_eval\"} 0"),
        "{metrics}"
    );
    let mmd_in = st["last_window"]["mmd"].as_f64().unwrap();
    let mmd_threshold = st["last_window"]["mmd_threshold"].as_f64().unwrap();
    // `/metrics` exports the same calibrated threshold the windows use.
    assert_eq!(
        metric(&metrics, "bridgeml_drift_mmd_threshold"),
        mmd_threshold
    );
    // Shifted window: flat grey frames.
    let shifted: Vec<Vec<u8>> = (0..40u8)
        .map(|s| common::bmp(24, 24, |_, _| [100 + s, 100 + s, 100 + s]))
        .collect();
    for img in &shifted {
        send(&mut c, img);
    }
    let st = c.get("/v1/status").unwrap().json();
    // The window was evaluated off the request path; its MMD is the one of
    // exactly these 40 embeddings against the reference.
    let mmd_shift = st["last_window"]["mmd"].as_f64().unwrap();
    let (_, window) = confidence_and_features(&m0, &shifted);
    let expected =
        bridgeml_monitor::mmd::mmd2_unbiased(reference.view(), window.view(), sigma2).unwrap();
    assert!(
        (mmd_shift - expected).abs() <= 1e-9 * expected.abs(),
        "server MMD {mmd_shift} vs {expected}"
    );
    assert!(
        mmd_shift > mmd_threshold && mmd_shift > mmd_in,
        "MMD in {mmd_in}, shifted {mmd_shift}, threshold {mmd_threshold}"
    );
    assert_eq!(st["window"]["evaluated"], 2);
    let psi_shift = st["last_window"]["psi_confidence"].as_f64().unwrap();
    assert!(
        psi_shift > 0.5 && psi_shift > psi_in,
        "shifted PSI {psi_shift} vs {psi_in}"
    );
    assert_eq!(st["active_actions"][0], "shadow_eval");
    assert_eq!(st["window"]["closed"], 2);
    let metrics = c.get("/metrics").unwrap().text();
    assert!(
        metrics.contains("bridgeml_policy_action{action=\"shadow_eval\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bridgeml_drift_psi{signal=\"confidence\"}"),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "bridgeml_drift_mmd "), mmd_shift);
}

/// A candidate that blocks in its first call until the test releases it,
/// then answers class 9 and panics on every even call.
struct GatedCandidate {
    release: std::sync::mpsc::Receiver<()>,
    calls: Arc<AtomicU32>,
}

impl Candidate for GatedCandidate {
    fn fingerprint(&self) -> String {
        "sha256:gated".into()
    }
    fn predict(&mut self, items: &[Tensor]) -> bridgeml_serve::Result<Vec<Answer>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            let _ = self.release.recv();
        }
        if n.is_multiple_of(2) {
            panic!("candidate blew up");
        }
        Ok(items
            .iter()
            .map(|_| Answer {
                class: 9,
                confidence: 1.0,
                top_k: vec![(9, 1.0)],
                ood_score: None,
                is_ood: None,
                embedding: None,
            })
            .collect())
    }
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn stuck_and_panicking_candidate_never_changes_live_answers() {
    let dir = tempfile::tempdir().unwrap();
    // The manifest's candidate is replaced by a gated one.
    let m = manifest(
        dir.path(),
        &format!(
            "\n[shadow]\nmodel = {:?}\nqueue = 2\n",
            common::fixtures().join("tiny_cnn_b.onnx")
        ),
    );
    let live_ref: Vec<serde_json::Value> = {
        let d2 = tempfile::tempdir().unwrap();
        let plain = manifest(d2.path(), "");
        let srv = Running::start(&plain, Options::default());
        let mut c = Client::new(srv.addr);
        (0..12)
            .map(|s| {
                c.request("POST", "/v1/predict", &[], &noise_image(s))
                    .unwrap()
                    .json()["predictions"][0]["confidence"]
                    .clone()
            })
            .collect()
    };
    let (release, rx) = std::sync::mpsc::channel();
    let calls = Arc::new(AtomicU32::new(0));
    let srv = Running::start(
        &m,
        Options {
            token: None,
            candidate: Some(Box::new(GatedCandidate {
                release: rx,
                calls: Arc::clone(&calls),
            })),
        },
    );
    let mut c = Client::new(srv.addr);
    // The shadow worker and the window evaluator run at idle CPU priority.
    #[cfg(target_os = "linux")]
    for name in ["bridgeml-shadow", "bridgeml-monito"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let policies = thread_policies(name);
            assert!(!policies.is_empty(), "no {name} thread");
            if policies.iter().all(|&p| p == SCHED_IDLE) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} scheduling policies {policies:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    // The candidate is stuck in its first call for all 12 requests: were it
    // on the critical path, these would never be answered.
    for (s, want) in live_ref.iter().enumerate() {
        let r = c
            .request(
                "POST",
                "/v1/predict",
                &[("X-Request-Id", &format!("r{s}"))],
                &noise_image(s as u64),
            )
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.json()["predictions"][0]["confidence"], want);
    }
    // At most 1 copy in the candidate and 2 queued: the others were dropped.
    let metrics = c.get("/metrics").unwrap().text();
    assert!(
        metric(&metrics, "bridgeml_shadow_dropped_total") >= 9.0,
        "{metrics}"
    );
    assert!(calls.load(Ordering::SeqCst) <= 1);
    release.send(()).unwrap();
    // Shutdown drains the shadow queue and flushes the log.
    srv.stop().unwrap();
    assert!(calls.load(Ordering::SeqCst) >= 2);
    // Both answers are in the log; the report reads them.
    let r = bridgeml_serve::report::shadow_report(
        &dir.path().join("log.db"),
        None,
        None,
        Default::default(),
    )
    .unwrap();
    assert_eq!(r.rows, 12);
    assert!(r.compared >= 1 && r.shadow_errors >= 1, "{r:?}");
    assert_eq!(r.verdict, "reject");
}

/// An energy guard calibrated on `model`'s logits of noise images.
fn calibrate_guard(dir: &std::path::Path, model_file: &str) -> std::path::PathBuf {
    let f = common::fixtures();
    let spec = f.join("tiny_spec.toml");
    let pipeline = bridgeml_preprocess::Pipeline::from_path(&spec).unwrap();
    let mut model = bridgeml_runtime::Model::load(
        &f.join(model_file),
        &bridgeml_runtime::LoadOptions::new(bridgeml_runtime::BackendChoice::Tract),
    )
    .unwrap();
    let items: Vec<Tensor> = (500..600)
        .map(|s| pipeline.run_bytes(&noise_image(s), "cal").unwrap())
        .collect();
    let out = model.run(&Tensor::stack(&items).unwrap()).unwrap();
    let logits = out
        .first()
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let cfg = bridgeml_guard::CalibrateConfig {
        method: bridgeml_guard::Method::Energy,
        tpr: 0.9,
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
    let p = dir.join(format!("guard_{model_file}.json"));
    cal.file.save(&p, None).unwrap();
    p
}

#[test]
fn guard_flags_every_answer_and_a_foreign_guard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = calibrate_guard(dir.path(), "tiny_cnn.onnx");
    let threshold: f64 =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&g).unwrap()).unwrap()
            ["threshold"]
            .as_f64()
            .unwrap();
    let m = manifest(
        dir.path(),
        &format!("\n[guard]\npath = {g:?}\n\n[monitor]\nwindow = 10\n"),
    );
    let srv = Running::start(&m, Options::default());
    let mut c = Client::new(srv.addr);
    let mut flagged = 0;
    for s in 0..10u8 {
        // Half noise (calibration-like), half flat frames.
        let img = if s % 2 == 0 {
            noise_image(u64::from(s))
        } else {
            common::bmp(24, 24, |_, _| [20 * s, 0, 255 - 20 * s])
        };
        let r = c
            .request("POST", "/v1/predict", &[("X-Segment", "cam")], &img)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let p = &r.json()["predictions"][0];
        let score = p["ood_score"].as_f64().unwrap();
        let is_ood = p["is_ood"].as_bool().unwrap();
        assert_eq!(is_ood, score > threshold);
        assert_eq!(p["reliable"].as_bool().unwrap(), !is_ood);
        flagged += usize::from(is_ood);
    }
    let metrics = c.get("/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "bridgeml_ood_flagged_total{segment=\"cam\"}") as usize,
        flagged,
        "{metrics}"
    );
    let st = c.get("/v1/status").unwrap().json();
    assert_eq!(st["guard"]["method"], "energy");
    let rate = st["last_window"]["ood_rate_by_segment"]["cam"]
        .as_f64()
        .unwrap();
    assert!((rate - flagged as f64 / 10.0).abs() < 1e-9, "{st}");
    srv.stop().unwrap();

    // A guard calibrated for the other model is refused at load.
    let other = calibrate_guard(dir.path(), "tiny_cnn_b.onnx");
    let p = dir.path().join("bridgeml.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace(&format!("{g:?}"), &format!("{other:?}"))).unwrap();
    let e = bridgeml_serve::manifest::Manifest::load(&p).unwrap_err();
    assert!(
        e.to_string().contains("calibrated for another model"),
        "{e}"
    );
}

/// The CPUs this process may run on, from `Cpus_allowed_list` ("0-3,6").
#[cfg(target_os = "linux")]
fn allowed_cpus(status: &str) -> Vec<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc status")
        .trim();
    list.split(',')
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn inference_cpus_pins_the_model_thread_and_refuses_foreign_cpus() {
    let allowed = allowed_cpus(&std::fs::read_to_string("/proc/self/status").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "inference_cpus = [100000]\n");
    let e = bridgeml_serve::server::Server::load(&m, Options::default()).unwrap_err();
    assert!(e.to_string().contains("inference_cpus"), "{e}");

    // The highest CPU: where the process may use several, no thread of
    // this test binary is restricted to it but the pinned one.
    let cpu = *allowed.iter().max().unwrap();
    let m = manifest(dir.path(), &format!("inference_cpus = [{cpu}]\n"));
    let srv = Running::start(&m, Options::default());
    let mut c = Client::new(srv.addr);
    predict_ok(&mut c, &noise_image(3));
    let pinned = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            !status.is_empty() && allowed_cpus(&status) == [cpu]
        })
        .count();
    assert!(
        pinned >= 1,
        "no thread restricted to CPU {cpu} (allowed: {allowed:?})"
    );
    if allowed.len() > 1 {
        // Only the one blocking thread that ran the request.
        assert_eq!(pinned, 1);
    }
}

#[test]
fn inline_inference_runs_on_the_async_worker_one_request_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let img = noise_image(5);
    let predict = |c: &mut Client| {
        let p = predict_ok(c, &img).json()["predictions"][0].clone();
        (
            p["class"].as_u64().unwrap(),
            p["confidence"].as_f64().unwrap(),
        )
    };
    let inline_count = |c: &mut Client| {
        metric(
            &c.get("/metrics").unwrap().text(),
            "bridgeml_inline_requests_total ",
        )
    };

    // The blocking pool (default): the reference answer, nothing inline.
    let pooled = Running::start(&manifest(dir.path(), ""), Options::default());
    let mut c = Client::new(pooled.addr);
    let reference = predict(&mut c);
    assert_eq!(inline_count(&mut c), 0.0);
    pooled.stop().unwrap();

    // Another directory: another log.
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "inline_inference = true\n");
    let srv = Running::start(&m, Options::default());
    let mut c = Client::new(srv.addr);
    // One at a time, every request runs inline, with the same answer.
    for _ in 0..3 {
        assert_eq!(predict(&mut c), reference);
    }
    assert_eq!(inline_count(&mut c), 3.0);

    // Concurrent requests: at most one holds the async worker, the others
    // go to the blocking pool; all are answered, and so is the health
    // check sent meanwhile (a worker is always left free).
    let addr = srv.addr;
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut c = Client::new(addr);
                    (0..5).map(|_| predict(&mut c)).collect::<Vec<_>>()
                })
            })
            .collect();
        assert_eq!(c.get("/healthz").unwrap().status, 200);
        for h in clients {
            assert!(h.join().unwrap().iter().all(|a| *a == reference));
        }
    });
    let n = inline_count(&mut c);
    assert!((4.0..=23.0).contains(&n), "{n} inline of 23");
    srv.stop().unwrap();

    // A runtime with a single worker never blocks it.
    let single = bridgeml_serve::server::Server::load(&m, Options::default())
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap(), 1)
        .unwrap();
    let mut c = Client::new(single.addr);
    assert_eq!(predict(&mut c), reference);
    assert_eq!(inline_count(&mut c), 0.0);
    single.stop().unwrap();
}
