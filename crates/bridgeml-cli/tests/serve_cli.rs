//! `bridgeml init` + `bridgeml serve` as a real process: the durability
//! promise under `kill -9`, and `bridgeml shadow report` on the result.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use bridgeml_serve::client::Client;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
}

/// `bridgeml init` over the fixture model in `dir`; the manifest's path.
fn init_bundle(dir: &Path) -> std::path::PathBuf {
    let f = fixtures();
    let out = bin()
        .args(["init", "--model"])
        .arg(f.join("tiny_cnn.onnx"))
        .arg("--spec")
        .arg(f.join("tiny_spec.toml"))
        .arg("--labels")
        .arg(f.join("labels.txt"))
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("bridgeml.toml")
}

/// `bridgeml serve` as a child process on a free loopback port.
fn spawn_serve(manifest: &Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = bin()
        .arg("serve")
        .arg("--config")
        .arg(manifest)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (child, addr)
}

/// Sends `n` JSON predictions (segments a/b alternating); the acknowledged ids.
fn send_predictions(c: &mut Client, n: usize) -> Vec<String> {
    let f = fixtures();
    let x = bridgeml_core::Tensor::read_npy(&f.join("input_1.npy")).unwrap();
    let flat: Vec<f32> = x.to_f32().iter().copied().collect();
    let nested: Vec<Vec<Vec<f32>>> = flat
        .chunks(256)
        .map(|ch| ch.chunks(16).map(<[f32]>::to_vec).collect())
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"instances": [nested]})).unwrap();
    let mut acked = Vec::new();
    for i in 0..n {
        let id = format!("k{i}");
        let seg = if i % 2 == 0 { "a" } else { "b" };
        let r = c
            .request(
                "POST",
                "/v1/predict",
                &[
                    ("Content-Type", "application/json"),
                    ("X-Request-Id", &id),
                    ("X-Segment", seg),
                ],
                &body,
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        acked.push(id);
    }
    acked
}

fn assert_all_logged(db: &Path, acked: &[String]) {
    let ids = bridgeml_serve::log::request_ids(db).unwrap();
    for id in acked {
        assert!(
            ids.iter().any(|(r, _)| r == id),
            "acknowledged {id} lost after kill -9"
        );
    }
}

#[test]
fn init_serve_kill9_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let manifest = init_bundle(dir.path());
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("sha256 = \"sha256:") && text.contains("# [shadow]"),
        "{text}"
    );
    // Shadow on, with the second fixture model as the candidate.
    std::fs::write(
        &manifest,
        format!(
            "{text}\n[shadow]\nmodel = {:?}\n",
            f.join("tiny_cnn_b.onnx")
        ),
    )
    .unwrap();

    let (mut child, addr) = spawn_serve(&manifest);
    let mut c = Client::new(addr);
    let acked = send_predictions(&mut c, 40);
    // SIGKILL right after the last acknowledgement.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_logged(&dir.path().join("bridgeml.db"), &acked);

    let out = bin()
        .args(["shadow", "report", "--format", "json", "--log"])
        .arg(dir.path().join("bridgeml.db"))
        .output()
        .unwrap();
    // Short coverage: the verdict is reject (exit 1) with a reason.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verdict"], "reject");
    assert_eq!(r["rows"], 40);
    assert!(r["reasons"][0].as_str().unwrap().contains("coverage"));
    let md = bin()
        .args(["shadow", "report", "--log"])
        .arg(dir.path().join("bridgeml.db"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&md.stdout).contains("| segment |"));
}

#[test]
fn kill9_after_the_commit_window_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = init_bundle(dir.path());
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[server]\nlog_commit_window_ms = 100\n"),
    )
    .unwrap();
    let (mut child, addr) = spawn_serve(&manifest);
    let mut c = Client::new(addr);
    let status = c.get("/v1/status").unwrap().json();
    assert_eq!(status["log"]["commit_window_ms"], 100, "{status}");
    let acked = send_predictions(&mut c, 40);
    // The documented promise: committed within the window after the answer
    // (plus a margin for a loaded machine's scheduling).
    std::thread::sleep(std::time::Duration::from_millis(100 + 1000));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_logged(&dir.path().join("bridgeml.db"), &acked);
}

#[test]
fn serve_refuses_changed_model_and_public_listen() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    std::fs::copy(f.join("tiny_cnn.onnx"), dir.path().join("m.onnx")).unwrap();
    std::fs::copy(f.join("tiny_spec.toml"), dir.path().join("s.toml")).unwrap();
    let st = bin()
        .args(["init", "--model"])
        .arg(dir.path().join("m.onnx"))
        .arg("--spec")
        .arg(dir.path().join("s.toml"))
        .arg("--dir")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(dir.path().join("bridgeml.toml")).unwrap();
    assert!(
        text.contains("path = \"m.onnx\""),
        "paths are relative: {text}"
    );
    let out = bin()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("bridgeml.toml"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::copy(f.join("tiny_cnn_b.onnx"), dir.path().join("m.onnx")).unwrap();
    let out = bin()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("bridgeml.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fingerprint mismatch"), "{err}");
}
