//! Renders report.html in headless Chromium (Debian's `chromium`, installed by
//! scripts/setup.sh): it must load without console errors, lay out every plot,
//! and paint a non-blank page.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bridgeml_gate::write_reports;

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BRIDGEML_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless Chromium on a file with extra arguments. A hung browser is
/// killed after a generous guard so the suite cannot stall (not a timing test).
fn chromium(bin: &Path, profile: &Path, page: &Path, args: &[String]) -> Output {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let start = Instant::now();
    // Drain pipes on threads so a chatty browser cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().ok();
            panic!("chromium did not exit within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

#[test]
fn report_html_displays_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        eprintln!(
            "SKIPPED: chromium not installed (scripts/setup.sh installs Debian's `chromium`)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = write_reports(&common::sample_report(), &dir.path().join("reports")).unwrap();
    let profile = dir.path().join("profile");

    // The console check must be able to fail: a page with a script error
    // shows up in the log with these flags.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<html><body><script>undefinedFn();</script></body></html>",
    )
    .unwrap();
    let out = chromium(&bin, &profile, &bad, &["--dump-dom".into()]);
    assert!(
        !console_lines(&out.stderr).is_empty(),
        "console logging not captured; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The DOM after layout: every plot is there.
    let out = chromium(&bin, &profile, &files.html, &["--dump-dom".into()]);
    assert!(
        out.status.success(),
        "chromium --dump-dom: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dom.matches("<svg").count(), 6, "plots in the rendered DOM");
    assert!(dom.contains("Per-class recall, FP32 vs INT8 (PTQ)"));
    assert_eq!(
        console_lines(&out.stderr),
        Vec::<String>::new(),
        "console messages"
    );

    // The screenshot: exits 0, writes a PNG, and the PNG is not blank.
    let png = dir.path().join("report.png");
    let out = chromium(
        &bin,
        &profile,
        &files.html,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".into(),
        ],
    );
    assert!(
        out.status.success(),
        "chromium --screenshot: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        console_lines(&out.stderr),
        Vec::<String>::new(),
        "console messages"
    );
    if let Ok(keep) = std::env::var("BRIDGEML_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    let img = image::open(&png).expect("screenshot is a PNG").to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 2000));
    let n = (img.width() * img.height()) as f64;
    let lum: Vec<f64> = img
        .pixels()
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .collect();
    let mean = lum.iter().sum::<f64>() / n;
    let var = lum.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    assert!(
        var > 100.0,
        "screenshot looks blank: luminance variance {var:.1}"
    );
    // Dark text covers a visible share of the page.
    let dark = lum.iter().filter(|l| **l < 100.0).count() as f64 / n;
    assert!(dark > 0.005, "too little text: {:.4} of pixels dark", dark);
    // The FAIL badge / red accents and the blue series colour are painted.
    let reddish = img
        .pixels()
        .filter(|p| p[0] > 150 && p[1] < 90 && p[2] < 90)
        .count();
    let blueish = img
        .pixels()
        .filter(|p| p[2] > 150 && p[0] < 120 && (p[1] as i32) < p[2] as i32 - 30)
        .count();
    assert!(reddish > 50, "no red (FAIL) pixels: {reddish}");
    assert!(blueish > 500, "no blue (plot) pixels: {blueish}");
}
