//! `bridgeml demo`: the whole deployment gap on the repository's own data,
//! from training to the gate, in one command (see `bridgeml-demo`).

use std::path::PathBuf;
use std::time::Instant;

use bridgeml_demo::{run_demo, DemoOptions, DemoProgress, DemoReport};
use bridgeml_train::{BatchProgress, EpochStats};
use indicatif::{ProgressBar, ProgressStyle};

use super::gate::now_rfc3339;
use crate::output::{print_json, table, Format, Outcome};

/// The demo data committed with the CLI (used when --data is not given and
/// the binary runs from its source tree).
const BUNDLED_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo");

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes a complete deployment bundle (models, spec, guard, baselines, policy, \
prediction log, bridgeml.toml) and two reports: the gate's (report/report.html) and the six \
deployment gaps on simulated traffic (traffic/report.html). Re-run the gate on the bundle with\n  \
bridgeml gate --config bridgeml-demo/bridgeml.toml --report-dir bridgeml-demo/report\n\
Deterministic given --seed (latencies aside). About a minute on 2 cores in a release build (docs/DEMO.md)."
)]
pub struct DemoArgs {
    /// Directory to write the bundle and the reports into.
    #[arg(long, default_value = "bridgeml-demo")]
    pub out: PathBuf,
    /// Demo data: a directory with `fashion-mnist/` and `mnist-digits/` IDX files
    /// (default: the copy committed in crates/bridgeml-cli/assets/demo).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of everything random (initialization, shuffling, traffic, calibration).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// FP32 training epochs.
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// QAT fine-tuning epochs.
    #[arg(long, default_value_t = 1)]
    pub qat_epochs: usize,
    /// Train on the first N samples only (smoke runs; the numbers get worse).
    #[arg(long)]
    pub limit: Option<usize>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Step lines on stderr and a bar while training.
struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    step_start: Instant,
}

impl Progress {
    fn finish_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl DemoProgress for Progress {
    fn step(&mut self, n: usize, of: usize, title: &str) {
        self.finish_bar();
        self.step_start = Instant::now();
        if !self.quiet {
            eprintln!("[{n}/{of}] {title}");
        }
    }

    fn batch(&mut self, p: &BatchProgress) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new((p.batches * p.epochs) as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "      {msg} [{bar:30}] {pos}/{len} batches, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        bar.set_message(format!(
            "epoch {}/{} loss {:.3} acc {:.3}",
            p.epoch, p.epochs, p.loss, p.accuracy
        ));
        bar.set_position(((p.epoch - 1) * p.batches + p.batch) as u64);
    }

    fn epoch(&mut self, s: &EpochStats) {
        if let Some(b) = &self.bar {
            b.println(format!(
                "      epoch {}: loss {:.4}, accuracy {:.4}, {:.1} s",
                s.epoch, s.loss, s.accuracy, s.seconds
            ));
        }
    }

    fn done(&mut self, line: &str) {
        self.finish_bar();
        if !self.quiet {
            eprintln!(
                "      {line} ({:.1} s)",
                self.step_start.elapsed().as_secs_f64()
            );
        }
    }
}

fn render(r: &DemoReport) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut t = table(&["model", "accuracy", "macro recall", "Shirt recall", "bytes"]);
    for (name, m) in [
        ("FP32", &r.training.fp32),
        ("PTQ INT8 (served)", &r.training.ptq),
        ("QAT INT8 (shadow)", &r.training.qat),
    ] {
        t.add_row(vec![
            format!("{name}: {}", m.file),
            format!("{:.3}", m.accuracy),
            format!("{:.3}", m.macro_recall),
            pct(m.minority_recall),
            m.bytes.to_string(),
        ]);
    }
    println!("{t}");
    let mut t = table(&["deployment gap", "what", "accuracy", "caught by"]);
    for g in &r.gaps {
        // "confidence-psi -> shadow_eval at window 4" -> "confidence-psi".
        let by: Vec<&str> = g
            .caught_by
            .iter()
            .map(|c| c.split(" -> ").next().unwrap_or(c))
            .map(|c| c.split(" (").next().unwrap_or(c))
            .collect();
        t.add_row(vec![
            g.gap.clone(),
            g.what.clone(),
            g.accuracy.map_or("-".into(), |a| format!("{a:.3}")),
            if by.is_empty() {
                "- (no alarm)".to_string()
            } else {
                by.join(", ")
            },
        ]);
    }
    println!("{t}");
    println!("(details of each gap: {})", r.traffic_report_html.display());
    let mut t = table(&["gate", "status", "summary"]);
    for g in &r.gates {
        t.add_row(vec![
            g.gate.clone(),
            g.status.as_str().to_string(),
            g.summary.clone(),
        ]);
    }
    println!("{t}");
    println!(
        "gate verdict: {} (exit code {} for `bridgeml gate --config {}`)",
        r.gate_verdict.to_uppercase(),
        r.gate_exit_code,
        r.manifest.display()
    );
    println!("bundle:         {}", r.out.display());
    println!("gate report:    {}", r.gate_report_html.display());
    println!("traffic report: {}", r.traffic_report_html.display());
    println!("finished in {:.0} s", r.seconds);
}

pub fn run(a: DemoArgs) -> anyhow::Result<Outcome> {
    let data = a
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUNDLED_DATA));
    if !data.join("fashion-mnist").is_dir() {
        anyhow::bail!(
            "{}: no demo data here (expected fashion-mnist/ and mnist-digits/); pass --data DIR \
             (the repository's copy is crates/bridgeml-cli/assets/demo)",
            data.display()
        );
    }
    let mut opts = DemoOptions::new(a.out.clone(), data);
    opts.seed = a.seed;
    opts.epochs = a.epochs;
    opts.qat_epochs = a.qat_epochs;
    opts.train_limit = a.limit;
    opts.created = now_rfc3339();
    let mut progress = Progress {
        quiet: a.quiet || a.format == Format::Json,
        bar: None,
        step_start: Instant::now(),
    };
    let report = run_demo(&opts, &mut progress)?;
    progress.finish_bar();
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => render(&report),
    }
    // The demo succeeded when it ran; the gate's verdict is part of its output.
    Ok(Outcome::Success)
}
