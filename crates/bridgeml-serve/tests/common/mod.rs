#![allow(dead_code)]
use std::path::{Path, PathBuf};

use bridgeml_serve::client::{Client, Response};
use bridgeml_serve::manifest::Manifest;
use bridgeml_serve::server::{Background, Options, Server};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

/// A 24-bit BMP of `w x h` pixels from `f(x, y) -> [r, g, b]`.
pub fn bmp(w: usize, h: usize, mut f: impl FnMut(usize, usize) -> [u8; 3]) -> Vec<u8> {
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&(size as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&(w as i32).to_le_bytes());
    b.extend_from_slice(&(h as i32).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0u8; 24]);
    for y in (0..h).rev() {
        let start = b.len();
        for x in 0..w {
            let [r, g, bl] = f(x, y);
            b.extend_from_slice(&[bl, g, r]);
        }
        b.resize(start + row, 0);
    }
    b
}

/// A noisy "in-distribution" image, different per seed.
pub fn noise_image(seed: u64) -> Vec<u8> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    bmp(24, 24, |_, _| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v = (s >> 33) as u32;
        [
            (v & 255) as u8,
            ((v >> 8) & 255) as u8,
            ((v >> 16) & 255) as u8,
        ]
    })
}

/// Writes a manifest into `dir` with the fixture model and `extra` TOML appended.
pub fn manifest(dir: &Path, extra: &str) -> Manifest {
    let f = fixtures();
    let text = format!(
        "[model]\npath = {:?}\nlabels = {:?}\nbackend = \"tract\"\nembedding = \"features\"\n\n[spec]\npath = {:?}\n\n[server]\nlog = \"log.db\"\nmax_body_bytes = 100000\n{extra}",
        f.join("tiny_cnn.onnx"),
        f.join("labels.txt"),
        f.join("tiny_spec.toml"),
    );
    let p = dir.join("bridgeml.toml");
    std::fs::write(&p, text).unwrap();
    Manifest::load(&p).unwrap()
}

/// A running in-process server on a loopback port.
pub struct Running;

impl Running {
    pub fn start(m: &Manifest, opts: Options) -> Background {
        Server::load(m, opts)
            .unwrap()
            .spawn("127.0.0.1:0".parse().unwrap(), 2)
            .unwrap()
    }
}

#[cfg(target_os = "linux")]
pub const SCHED_IDLE: i64 = 5;

/// Scheduling policy (`/proc/self/task/*/stat` field 41) of this process's
/// threads whose name is `name` (names are cut to 15 bytes by the kernel).
#[cfg(target_os = "linux")]
pub fn thread_policies(name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name start at field 3.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if let Some(p) = rest
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|v| v.parse().ok())
        {
            out.push(p);
        }
    }
    out
}

/// POSTs `img` to `/v1/predict` as a BMP and asserts a 200.
pub fn predict_ok(c: &mut Client, img: &[u8]) -> Response {
    let r = c
        .request("POST", "/v1/predict", &[("Content-Type", "image/bmp")], img)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r
}
