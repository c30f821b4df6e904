//! `bridgeml drift`: compare current data with a reference (PSI, KS,
//! chi-square, JS, Wasserstein-1, MMD), calibrate thresholds, and estimate
//! label shift. All statistics come from `bridgeml-monitor`; this module
//! reads files and renders reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bridgeml_core::{ColumnData, Table, Tensor};
use bridgeml_monitor::calibrate::calibrate;
use bridgeml_monitor::label_shift::{estimate_label_shift, LabelShiftConfig};
use bridgeml_monitor::mmd::{median_heuristic, mmd2_unbiased, mmd_permutation_test, Bandwidth};
use bridgeml_monitor::ndarray::{s, Array2, Ix2};
use bridgeml_monitor::psi::{Binning, PsiBand, PsiConfig, ReferenceBins, PSI_ALERT};
use bridgeml_monitor::univariate::{
    adjust_p_values, align_counts, category_counts, chi2_from_counts, js_distance_from_counts,
    ks_2samp, wasserstein_1, Correction,
};
use bridgeml_monitor::{Baseline, CalibrationConfig, ColumnBaseline};
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

/// Default Jensen-Shannon distance alert threshold (base 2, in [0, 1]).
const JS_ALERT: f64 = 0.1;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[command(
    after_help = "Inputs: .npy (1-D scores or 2-D embeddings), .csv or .parquet (types inferred).\n\
--method auto: PSI and KS for numeric columns, chi-square for categorical ones, MMD for 2-D arrays.\n\
p-values are corrected across the columns of each chunk (--correction, default Benjamini-Hochberg);\n\
KS/chi-square/MMD alert when the adjusted p-value is below --alpha. PSI alerts above 0.2 (band\n\
'significant'), JS above 0.1, Wasserstein only with a --baseline threshold. With --baseline, a\n\
calibrated threshold replaces the default for the (column, method) it covers, and MMD alerts when\n\
MMD^2_u exceeds it.\n\n\
Exit codes: 0 when the comparison ran (alerts are reported, not failures), 1 with --fail-on-alert\n\
when any alert fired, 2 on an error (unreadable input, missing column, bad values).\n\n\
Examples:\n  bridgeml drift --reference train.csv --current today.csv\n  \
bridgeml drift --reference emb_train.npy --current emb_live.npy --chunk 1000 --format json\n  \
bridgeml drift calibrate --reference emb_train.npy --window 1000 --output baseline.json\n  \
bridgeml drift label-shift --validation-predictions val.csv --current-predictions live.csv"
)]
pub struct DriftArgs {
    #[command(subcommand)]
    sub: Option<DriftSub>,
    #[command(flatten)]
    compare: CompareArgs,
}

#[derive(Debug, clap::Subcommand)]
enum DriftSub {
    /// Calibrate thresholds from the reference's own null distribution and write a baseline file.
    Calibrate(CalibrateArgs),
    /// Estimate current class priors from predictions (black-box shift estimation).
    LabelShift(LabelShiftArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Method {
    Auto,
    Psi,
    Mmd,
    Ks,
    Chi2,
    Js,
    Wasserstein,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CorrectionArg {
    Bh,
    Bonferroni,
    None,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// Reference data (.npy, .csv or .parquet).
    #[arg(long, required = true)]
    reference: Option<PathBuf>,
    /// Current data, same format and columns as the reference.
    #[arg(long, required = true)]
    current: Option<PathBuf>,
    /// Columns to compare (tables); default: every column of the reference.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "auto")]
    method: Method,
    /// Split the current data into consecutive windows of N rows and report each.
    #[arg(long)]
    chunk: Option<usize>,
    /// Baseline file from `bridgeml drift calibrate` (calibrated thresholds, bins, bandwidth).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Significance level for p-value tests.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Multiple-testing correction across columns.
    #[arg(long, value_enum, default_value = "bh")]
    correction: CorrectionArg,
    /// PSI bins.
    #[arg(long, default_value_t = 10)]
    bins: usize,
    /// Equal-width PSI bins instead of reference quantiles.
    #[arg(long)]
    equal_width: bool,
    /// MMD permutations.
    #[arg(long, default_value_t = 100)]
    permutations: usize,
    /// MMD bandwidth sigma^2 (default: median heuristic on the reference).
    #[arg(long)]
    sigma2: Option<f64>,
    /// Seed for permutations and subsamples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Exit 1 when any alert fires.
    #[arg(long)]
    fail_on_alert: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct CalibrateArgs {
    /// Reference data (.npy, .csv or .parquet).
    #[arg(long)]
    reference: PathBuf,
    /// Monitoring window size in rows (default: min(1000, rows / 2)).
    #[arg(long)]
    window: Option<usize>,
    /// Where to write the baseline JSON.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Disjoint subset pairs drawn (B).
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// threshold = mean + k * std of the null statistics.
    #[arg(long, default_value_t = 2.0)]
    k: f64,
    #[arg(long, default_value_t = 10)]
    bins: usize,
    #[arg(long)]
    sigma2: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct LabelShiftArgs {
    /// CSV/Parquet with the validation labels and predictions.
    #[arg(long)]
    validation_predictions: PathBuf,
    /// CSV/Parquet with the current predictions.
    #[arg(long)]
    current_predictions: PathBuf,
    #[arg(long, default_value = "label")]
    label_column: String,
    #[arg(long, default_value = "prediction")]
    prediction_column: String,
    /// Ridge towards "no shift" in the BBSE solve.
    #[arg(long, default_value_t = 1e-4)]
    lambda: f64,
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    fail_on_alert: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: DriftArgs) -> anyhow::Result<Outcome> {
    match args.sub {
        Some(DriftSub::Calibrate(a)) => run_calibrate(a),
        Some(DriftSub::LabelShift(a)) => run_label_shift(a),
        None => run_compare(args.compare),
    }
}

// ------------------------------------------------------------------ inputs

#[derive(Debug, Clone)]
enum Col {
    Num(Vec<f64>),
    Cat(Vec<Option<String>>),
}

impl Col {
    fn rows(&self, a: usize, b: usize) -> Col {
        match self {
            Col::Num(v) => Col::Num(v[a..b].to_vec()),
            Col::Cat(v) => Col::Cat(v[a..b].to_vec()),
        }
    }
    fn as_cat(&self) -> Vec<Option<String>> {
        match self {
            Col::Cat(v) => v.clone(),
            Col::Num(v) => v
                .iter()
                .map(|x| {
                    if x.is_nan() {
                        None
                    } else {
                        Some(format!("{x}"))
                    }
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
enum Matrix {
    F32(Array2<f32>),
    F64(Array2<f64>),
}

impl Matrix {
    fn ncols(&self) -> usize {
        match self {
            Matrix::F32(m) => m.ncols(),
            Matrix::F64(m) => m.ncols(),
        }
    }
    fn rows(&self, a: usize, b: usize) -> Matrix {
        match self {
            Matrix::F32(m) => Matrix::F32(m.slice(s![a..b, ..]).to_owned()),
            Matrix::F64(m) => Matrix::F64(m.slice(s![a..b, ..]).to_owned()),
        }
    }
}

/// A loaded input: named columns (None = a whole .npy array) and, for
/// multivariate methods, a matrix.
#[derive(Debug)]
struct Input {
    rows: usize,
    columns: Vec<(Option<String>, Col)>,
    matrix: Option<Matrix>,
    two_d: bool,
}

fn load(path: &Path, wanted: Option<&[String]>) -> anyhow::Result<Input> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if ext == "npy" {
        if wanted.is_some() {
            bail!(
                "--columns applies to .csv/.parquet inputs, not {}",
                path.display()
            );
        }
        let t = Tensor::read_npy(path)?;
        let a = t.to_f32();
        match a.ndim() {
            1 => {
                let v: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
                let m =
                    Array2::from_shape_vec((v.len(), 1), v.iter().map(|&x| x as f32).collect())?;
                Ok(Input {
                    rows: v.len(),
                    columns: vec![(None, Col::Num(v))],
                    matrix: Some(Matrix::F32(m)),
                    two_d: false,
                })
            }
            2 => {
                let m = a.into_dimensionality::<Ix2>()?;
                let columns = (0..m.ncols())
                    .map(|j| {
                        (
                            Some(format!("dim{j}")),
                            Col::Num(m.column(j).iter().map(|&x| f64::from(x)).collect()),
                        )
                    })
                    .collect();
                Ok(Input {
                    rows: m.nrows(),
                    columns,
                    matrix: Some(Matrix::F32(m)),
                    two_d: true,
                })
            }
            d => bail!(
                "{}: expected a 1-D or 2-D array, got {d}-D {:?}",
                path.display(),
                a.shape()
            ),
        }
    } else {
        let table = Table::read(path)?;
        let names: Vec<String> = match wanted {
            Some(w) => w.to_vec(),
            None => table.names().into_iter().map(str::to_owned).collect(),
        };
        let mut columns = Vec::new();
        for n in &names {
            let c = table.column(n).with_context(|| {
                format!(
                    "{}: no column {n:?} (has: {})",
                    path.display(),
                    table.names().join(", ")
                )
            })?;
            columns.push((
                Some(n.clone()),
                match &c.data {
                    ColumnData::Numeric(v) => Col::Num(v.clone()),
                    ColumnData::Categorical(v) => Col::Cat(v.clone()),
                },
            ));
        }
        let numeric: Vec<&Vec<f64>> = columns
            .iter()
            .filter_map(|(_, c)| if let Col::Num(v) = c { Some(v) } else { None })
            .collect();
        let matrix = if numeric.is_empty() {
            None
        } else {
            let n = table.n_rows();
            Some(Matrix::F64(Array2::from_shape_fn(
                (n, numeric.len()),
                |(i, j)| numeric[j][i],
            )))
        };
        Ok(Input {
            rows: table.n_rows(),
            columns,
            matrix,
            two_d: false,
        })
    }
}

// ------------------------------------------------------------------ compare

#[derive(Debug, Serialize)]
struct ResultRow {
    column: Option<String>,
    chunk: Option<usize>,
    method: &'static str,
    statistic: f64,
    p_value: Option<f64>,
    p_value_adjusted: Option<f64>,
    threshold: Option<f64>,
    band: Option<&'static str>,
    alert: bool,
    n_reference: usize,
    n_current: usize,
    /// Rows [start, end) of the current data.
    rows: [usize; 2],
}

#[derive(Debug, Serialize)]
struct DriftReport {
    reference: PathBuf,
    current: PathBuf,
    method: Method,
    alpha: f64,
    correction: &'static str,
    chunk_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mmd_bandwidth: Option<Bandwidth>,
    notes: Vec<String>,
    any_alert: bool,
    results: Vec<ResultRow>,
}

fn drop_nan(v: &[f64]) -> Vec<f64> {
    v.iter().copied().filter(|x| !x.is_nan()).collect()
}

fn run_compare(a: CompareArgs) -> anyhow::Result<Outcome> {
    let (Some(rp), Some(cp)) = (a.reference.clone(), a.current.clone()) else {
        bail!("--reference and --current are required");
    };
    if !(a.alpha > 0.0 && a.alpha < 1.0) {
        bail!("--alpha must be in (0, 1)");
    }
    let reference = load(&rp, a.columns.as_deref())?;
    let current = load(&cp, a.columns.as_deref())?;
    if reference.rows == 0 {
        bail!("{}: no rows", rp.display());
    }
    if current.rows == 0 {
        bail!("{}: no rows", cp.display());
    }
    if reference.two_d != current.two_d || reference.columns.len() != current.columns.len() {
        bail!(
            "reference and current differ in shape: {} has {} column(s), {} has {}",
            rp.display(),
            reference.columns.len(),
            cp.display(),
            current.columns.len()
        );
    }
    let baseline: Option<Baseline> = match &a.baseline {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: not a bridgeml drift baseline", p.display()))?,
        ),
        None => None,
    };
    let psi_cfg = PsiConfig {
        n_bins: a.bins,
        binning: if a.equal_width {
            Binning::EqualWidth
        } else {
            Binning::Quantile
        },
        ..PsiConfig::default()
    };
    let mut notes = Vec::new();
    let chunk = match a.chunk {
        Some(0) => bail!("--chunk must be at least 1"),
        Some(n) => n,
        None => current.rows,
    };
    let ranges: Vec<(usize, usize)> = (0..current.rows)
        .step_by(chunk)
        .map(|s| (s, (s + chunk).min(current.rows)))
        .collect();

    // Which (column, method) pairs to compute.
    let want_mmd = matches!(a.method, Method::Mmd) || (a.method == Method::Auto && reference.two_d);
    let univariate: Vec<Method> = match a.method {
        Method::Auto if reference.two_d => vec![],
        Method::Auto => vec![Method::Psi, Method::Ks, Method::Chi2],
        Method::Mmd => vec![],
        m => vec![m],
    };

    // Reference-side state, computed once.
    let mut bandwidth = None;
    let mut mmd_threshold = None;
    if want_mmd {
        let (rm, cm) = match (&reference.matrix, &current.matrix) {
            (Some(r), Some(c)) => (r, c),
            _ => bail!("MMD needs numeric data: no numeric column selected"),
        };
        if rm.ncols() != cm.ncols() {
            bail!(
                "dimension mismatch: reference has {} columns, current has {}",
                rm.ncols(),
                cm.ncols()
            );
        }
        let from_baseline = baseline.as_ref().and_then(|b| b.find(None, "mmd"));
        bandwidth = Some(match (a.sigma2, from_baseline.and_then(|c| c.bandwidth)) {
            (Some(s2), _) => Bandwidth {
                sigma2: s2,
                median_sq_distance: None,
                rows_used: 0,
                subsampled: false,
            },
            (None, Some(b)) => b,
            (None, None) => match rm {
                Matrix::F32(m) => median_heuristic(m.view(), a.seed)?,
                Matrix::F64(m) => median_heuristic(m.view(), a.seed)?,
            },
        });
        mmd_threshold = from_baseline.map(|c| c.calibration.threshold);
        if let Some(b) = &bandwidth {
            if b.subsampled {
                notes.push(format!(
                    "MMD bandwidth: median heuristic over a seeded subsample of {} reference rows (seed {})",
                    b.rows_used, a.seed
                ));
            }
        }
    }
    let mut bins: BTreeMap<usize, ReferenceBins> = BTreeMap::new();
    let mut skipped = Vec::new();

    let mut results = Vec::new();
    for (ci, &(s0, s1)) in ranges.iter().enumerate() {
        let chunk_id = a.chunk.map(|_| ci);
        let mut rows: Vec<ResultRow> = Vec::new();
        let n_cur = s1 - s0;
        for (idx, ((name, rcol), (cname, ccol))) in
            reference.columns.iter().zip(&current.columns).enumerate()
        {
            if name != cname {
                bail!("column order differs: {name:?} vs {cname:?}");
            }
            let ccol = ccol.rows(s0, s1);
            // A column numeric in one file and categorical in the other is compared as categories.
            let mixed;
            let (rcol, ccol) = match (rcol, &ccol) {
                (Col::Num(_), Col::Cat(_)) | (Col::Cat(_), Col::Num(_)) => {
                    mixed = Col::Cat(rcol.as_cat());
                    (&mixed, Col::Cat(ccol.as_cat()))
                }
                _ => (rcol, ccol),
            };
            for &m in &univariate {
                let base = |method: &str| {
                    baseline
                        .as_ref()
                        .and_then(|b| b.find(name.as_deref(), method))
                        .map(|c| c.calibration.threshold)
                };
                let mut row = ResultRow {
                    column: name.clone(),
                    chunk: chunk_id,
                    method: "",
                    statistic: 0.0,
                    p_value: None,
                    p_value_adjusted: None,
                    threshold: None,
                    band: None,
                    alert: false,
                    n_reference: reference.rows,
                    n_current: n_cur,
                    rows: [s0, s1],
                };
                let label = name.as_deref().unwrap_or("<array>");
                match (m, rcol, &ccol) {
                    (Method::Psi, Col::Num(r), Col::Num(c)) => {
                        if let std::collections::btree_map::Entry::Vacant(slot) = bins.entry(idx) {
                            let b = match baseline
                                .as_ref()
                                .and_then(|b| b.find(name.as_deref(), "psi"))
                                .and_then(|c| c.bins.clone())
                            {
                                Some(b) => b,
                                None => ReferenceBins::fit(r, psi_cfg)
                                    .with_context(|| format!("column {label}"))?,
                            };
                            slot.insert(b);
                        }
                        let stat = bins[&idx]
                            .psi(c)
                            .with_context(|| format!("column {label}"))?;
                        let th = base("psi").unwrap_or(PSI_ALERT);
                        row.method = "psi";
                        row.statistic = stat;
                        row.threshold = Some(th);
                        row.band = Some(PsiBand::of(stat).name());
                        row.alert = stat > th;
                    }
                    (Method::Ks, Col::Num(r), Col::Num(c)) => {
                        let t = ks_2samp(&drop_nan(r), &drop_nan(c))
                            .with_context(|| format!("column {label} (KS ignores NaN)"))?;
                        row.method = "ks";
                        row.statistic = t.statistic;
                        row.p_value = Some(t.p_value);
                        row.threshold = Some(a.alpha);
                    }
                    (Method::Wasserstein, Col::Num(r), Col::Num(c)) => {
                        let w = wasserstein_1(&drop_nan(r), &drop_nan(c))
                            .with_context(|| format!("column {label}"))?;
                        row.method = "wasserstein";
                        row.statistic = w;
                        row.threshold = base("wasserstein");
                        row.alert = row.threshold.is_some_and(|t| w > t);
                    }
                    (Method::Chi2, Col::Cat(r), _) => {
                        let c = ccol.as_cat();
                        let (_, rc, cc) = align_counts(
                            &category_counts(r.iter().map(|v| v.as_deref())),
                            &category_counts(c.iter().map(|v| v.as_deref())),
                        );
                        let t = chi2_from_counts(&rc, &cc)
                            .with_context(|| format!("column {label}"))?;
                        row.method = "chi2";
                        row.statistic = t.statistic;
                        row.p_value = Some(t.p_value);
                        row.threshold = Some(a.alpha);
                    }
                    (Method::Js, Col::Num(r), Col::Num(c)) => {
                        if let std::collections::btree_map::Entry::Vacant(slot) = bins.entry(idx) {
                            slot.insert(
                                ReferenceBins::fit(r, psi_cfg)
                                    .with_context(|| format!("column {label}"))?,
                            );
                        }
                        let b = &bins[&idx];
                        let cur = b.count(c)?;
                        let mut rc = b.counts.clone();
                        rc.push(b.missing);
                        let mut cc = cur.counts.clone();
                        cc.push(cur.missing);
                        let d = js_distance_from_counts(&rc, &cc)?;
                        let th = base("js").unwrap_or(JS_ALERT);
                        row.method = "js";
                        row.statistic = d;
                        row.threshold = Some(th);
                        row.alert = d > th;
                    }
                    (Method::Js, r, c) => {
                        let (_, rc, cc) = align_counts(
                            &category_counts(r.as_cat().iter().map(|v| v.as_deref())),
                            &category_counts(c.as_cat().iter().map(|v| v.as_deref())),
                        );
                        let d = js_distance_from_counts(&rc, &cc)?;
                        let th = base("js").unwrap_or(JS_ALERT);
                        row.method = "js";
                        row.statistic = d;
                        row.threshold = Some(th);
                        row.alert = d > th;
                    }
                    (m, _, _) => {
                        if ci == 0 && a.method != Method::Auto {
                            skipped.push(
                                format!(
                                    "{m:?} does not apply to column {label} (its type); skipped"
                                )
                                .to_lowercase(),
                            );
                        }
                        continue;
                    }
                }
                rows.push(row);
            }
        }
        if want_mmd {
            let bw = bandwidth.expect("set above");
            let (rm, cm) = (
                reference.matrix.as_ref().expect("checked"),
                current.matrix.as_ref().expect("checked").rows(s0, s1),
            );
            let (stat, p) = match (rm, &cm, mmd_threshold) {
                (Matrix::F32(r), Matrix::F32(c), Some(_)) => {
                    (mmd2_unbiased(r.view(), c.view(), bw.sigma2)?, None)
                }
                (Matrix::F64(r), Matrix::F64(c), Some(_)) => {
                    (mmd2_unbiased(r.view(), c.view(), bw.sigma2)?, None)
                }
                (Matrix::F32(r), Matrix::F32(c), None) => {
                    let t = mmd_permutation_test(
                        r.view(),
                        c.view(),
                        bw.sigma2,
                        a.permutations,
                        a.seed,
                    )?;
                    (t.statistic, Some(t.p_value))
                }
                (Matrix::F64(r), Matrix::F64(c), None) => {
                    let t = mmd_permutation_test(
                        r.view(),
                        c.view(),
                        bw.sigma2,
                        a.permutations,
                        a.seed,
                    )?;
                    (t.statistic, Some(t.p_value))
                }
                _ => bail!("reference and current have different element types"),
            };
            rows.push(ResultRow {
                column: None,
                chunk: chunk_id,
                method: "mmd",
                statistic: stat,
                p_value: p,
                p_value_adjusted: None,
                threshold: Some(mmd_threshold.unwrap_or(a.alpha)),
                band: None,
                alert: mmd_threshold.is_some_and(|t| stat > t),
                n_reference: reference.rows,
                n_current: n_cur,
                rows: [s0, s1],
            });
        }
        // Multiple-testing correction across the p-valued results of this chunk.
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                rows[i].p_value.is_some() && !(rows[i].method == "mmd" && mmd_threshold.is_some())
            })
            .collect();
        let ps: Vec<f64> = idx
            .iter()
            .map(|&i| rows[i].p_value.expect("filtered"))
            .collect();
        let corr = match a.correction {
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::None => Correction::None,
        };
        for (&i, adj) in idx.iter().zip(adjust_p_values(&ps, corr)) {
            rows[i].p_value_adjusted = Some(adj);
            rows[i].alert = adj < a.alpha;
        }
        results.extend(rows);
    }
    notes.extend(skipped);
    let any_alert = results.iter().any(|r| r.alert);
    let report = DriftReport {
        reference: rp,
        current: cp,
        method: a.method,
        alpha: a.alpha,
        correction: match a.correction {
            CorrectionArg::Bh => "benjamini_hochberg",
            CorrectionArg::Bonferroni => "bonferroni",
            CorrectionArg::None => "none",
        },
        chunk_size: a.chunk,
        mmd_bandwidth: bandwidth,
        notes,
        any_alert,
        results,
    };
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&[
                "column",
                "chunk",
                "rows",
                "method",
                "statistic",
                "p-value (adj.)",
                "threshold",
                "band",
                "alert",
            ]);
            for r in &report.results {
                t.add_row(vec![
                    r.column.clone().unwrap_or_else(|| "<array>".into()),
                    r.chunk.map_or("-".into(), |c| c.to_string()),
                    format!("{}..{}", r.rows[0], r.rows[1]),
                    r.method.to_owned(),
                    format!("{:.6}", r.statistic),
                    match (r.p_value, r.p_value_adjusted) {
                        (Some(p), Some(q)) => format!("{p:.4} ({q:.4})"),
                        (Some(p), None) => format!("{p:.4}"),
                        _ => "-".into(),
                    },
                    r.threshold.map_or("-".into(), |t| format!("{t:.6}")),
                    r.band.unwrap_or("-").to_owned(),
                    if r.alert { "ALERT".into() } else { "ok".into() },
                ]);
            }
            println!("{t}");
            if let Some(b) = &report.mmd_bandwidth {
                println!("MMD bandwidth sigma^2 = {:.6}", b.sigma2);
            }
            for n in &report.notes {
                println!("note: {n}");
            }
            let n_alerts = report.results.iter().filter(|r| r.alert).count();
            println!("{} result(s), {} alert(s)", report.results.len(), n_alerts);
        }
    }
    Ok(if a.fail_on_alert && any_alert {
        Outcome::CheckFailed
    } else {
        Outcome::Success
    })
}

// ------------------------------------------------------------------ calibrate

fn run_calibrate(a: CalibrateArgs) -> anyhow::Result<Outcome> {
    let reference = load(&a.reference, a.columns.as_deref())?;
    if reference.rows < 4 {
        bail!(
            "{}: calibration needs at least 4 rows, got {}",
            a.reference.display(),
            reference.rows
        );
    }
    let window = a.window.unwrap_or_else(|| (reference.rows / 2).min(1000));
    let cfg = CalibrationConfig {
        pairs: a.pairs,
        k: a.k,
        window,
        seed: a.seed,
    };
    let mut columns = Vec::new();
    if reference.two_d {
        let m = reference.matrix.as_ref().expect("npy 2-D has a matrix");
        columns.push(match m {
            Matrix::F32(x) => ColumnBaseline::mmd(x.view(), a.sigma2, cfg)?,
            Matrix::F64(x) => ColumnBaseline::mmd(x.view(), a.sigma2, cfg)?,
        });
    } else {
        let psi_cfg = PsiConfig {
            n_bins: a.bins,
            ..PsiConfig::default()
        };
        for (name, col) in &reference.columns {
            let label = name.as_deref().unwrap_or("<array>");
            match col {
                Col::Num(v) => columns.push(
                    ColumnBaseline::psi(name.clone(), v, psi_cfg, cfg)
                        .with_context(|| format!("column {label}"))?,
                ),
                Col::Cat(v) => {
                    let cal = calibrate(v.len(), cfg, |x, y| {
                        let (_, rc, cc) = align_counts(
                            &category_counts(x.iter().map(|&i| v[i].as_deref())),
                            &category_counts(y.iter().map(|&i| v[i].as_deref())),
                        );
                        Ok(chi2_from_counts(&rc, &cc)?.statistic)
                    })
                    .with_context(|| format!("column {label}"))?;
                    columns.push(ColumnBaseline {
                        column: name.clone(),
                        method: "chi2".into(),
                        calibration: cal,
                        bins: None,
                        bandwidth: None,
                    });
                }
            }
        }
    }
    let baseline = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: reference.rows,
        columns,
    };
    std::fs::write(&a.output, serde_json::to_string_pretty(&baseline)? + "\n")
        .with_context(|| format!("writing {}", a.output.display()))?;
    match a.format {
        Format::Json => print_json(&baseline)?,
        Format::Table => {
            let mut t = table(&[
                "column",
                "method",
                "window",
                "pairs",
                "null mean",
                "null std",
                "threshold",
            ]);
            for c in &baseline.columns {
                t.add_row(vec![
                    c.column.clone().unwrap_or_else(|| "<array>".into()),
                    c.method.clone(),
                    c.calibration.config.window.to_string(),
                    c.calibration.config.pairs.to_string(),
                    format!("{:.6}", c.calibration.mean),
                    format!("{:.6}", c.calibration.std),
                    format!("{:.6}", c.calibration.threshold),
                ]);
            }
            println!("{t}");
            println!("baseline written to {}", a.output.display());
        }
    }
    Ok(Outcome::Success)
}

// ------------------------------------------------------------------ label shift

fn class_column(path: &Path, table: &Table, name: &str) -> anyhow::Result<Vec<String>> {
    let c = table.column(name).with_context(|| {
        format!(
            "{}: no column {name:?} (has: {}); see --label-column/--prediction-column",
            path.display(),
            table.names().join(", ")
        )
    })?;
    let v: Vec<Option<String>> = Col::from_data(&c.data).as_cat();
    v.into_iter()
        .enumerate()
        .map(|(i, x)| {
            x.with_context(|| {
                format!(
                    "{}: column {name:?} row {} is missing",
                    path.display(),
                    i + 2
                )
            })
        })
        .collect()
}

impl Col {
    fn from_data(d: &ColumnData) -> Col {
        match d {
            ColumnData::Numeric(v) => Col::Num(v.clone()),
            ColumnData::Categorical(v) => Col::Cat(v.clone()),
        }
    }
}

#[derive(Debug, Serialize)]
struct LabelShiftReport {
    validation_predictions: PathBuf,
    current_predictions: PathBuf,
    alpha: f64,
    alert: bool,
    #[serde(flatten)]
    estimate: bridgeml_monitor::label_shift::LabelShiftEstimate,
}

fn run_label_shift(a: LabelShiftArgs) -> anyhow::Result<Outcome> {
    let vt = Table::read(&a.validation_predictions)?;
    let ct = Table::read(&a.current_predictions)?;
    let labels = class_column(&a.validation_predictions, &vt, &a.label_column)?;
    let preds = class_column(&a.validation_predictions, &vt, &a.prediction_column)?;
    let cur = class_column(&a.current_predictions, &ct, &a.prediction_column)?;
    let classes: Vec<String> = labels
        .iter()
        .chain(&preds)
        .chain(&cur)
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = |v: &[String]| -> Vec<usize> {
        v.iter()
            .map(|x| classes.binary_search(x).expect("in set"))
            .collect()
    };
    let cfg = LabelShiftConfig {
        lambda: a.lambda,
        bootstrap: a.bootstrap,
        seed: a.seed,
        ..LabelShiftConfig::default()
    };
    let est = estimate_label_shift(
        classes.clone(),
        &index(&labels),
        &index(&preds),
        &index(&cur),
        cfg,
    )?;
    let alert = est.predicted_shift.p_value < a.alpha;
    let report = LabelShiftReport {
        validation_predictions: a.validation_predictions,
        current_predictions: a.current_predictions,
        alpha: a.alpha,
        alert,
        estimate: est,
    };
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let e = &report.estimate;
            let mut t = table(&[
                "class",
                "validation prior",
                "val. predicted",
                "current predicted",
                "estimated prior [95%]",
                "weight [95%]",
            ]);
            for j in 0..e.classes.len() {
                t.add_row(vec![
                    e.classes[j].clone(),
                    format!("{:.4}", e.validation_priors[j]),
                    format!("{:.4}", e.validation_predicted[j]),
                    format!("{:.4}", e.current_predicted[j]),
                    format!(
                        "{:.4} [{:.4}, {:.4}]",
                        e.estimated_priors[j], e.priors_lower[j], e.priors_upper[j]
                    ),
                    format!(
                        "{:.3} [{:.3}, {:.3}]",
                        e.weights[j], e.weights_lower[j], e.weights_upper[j]
                    ),
                ]);
            }
            println!("{t}");
            println!(
                "predicted-class shift: chi2 = {:.3}, p = {:.4} -> {}",
                e.predicted_shift.statistic,
                e.predicted_shift.p_value,
                if report.alert { "ALERT" } else { "ok" }
            );
        }
    }
    Ok(if a.fail_on_alert && alert {
        Outcome::CheckFailed
    } else {
        Outcome::Success
    })
}
