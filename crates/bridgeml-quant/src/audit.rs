//! The quantization audit: a candidate model (INT8, FP16, QAT, ...) against
//! its reference on labelled data. Which classes pay, where the flips fall
//! (boundary band or not), and a recall-drop gate. Divergence comes from
//! the same core as `bridgeml diverge` ([`compare_outputs`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bridgeml_runtime::diverge::{argmax, compare_outputs, probabilities, OutputDivergence};
use ndarray::{ArrayD, Axis};
use serde::Serialize;

use crate::{QuantError, Result};

/// A labelled data set: files and class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    pub files: Vec<PathBuf>,
    pub labels: Vec<usize>,
    /// Name of class `i` (when known).
    pub class_names: Vec<String>,
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| QuantError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !is_hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Maps label strings to class indices: by `class_names` when given (a name
/// or an index), else integers as indices, else sorted names (ImageFolder).
fn index_labels(
    raw: &[String],
    class_names: Option<&[String]>,
) -> Result<(Vec<usize>, Vec<String>)> {
    if let Some(names) = class_names {
        let pos: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let idx = raw
            .iter()
            .map(|l| {
                pos.get(l.as_str())
                    .copied()
                    .or_else(|| l.parse::<usize>().ok().filter(|&i| i < names.len()))
                    .ok_or_else(|| {
                        QuantError::Labels(format!(
                            "label `{l}` is not one of the {} class names",
                            names.len()
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((idx, names.to_vec()));
    }
    if raw.iter().all(|l| l.parse::<usize>().is_ok()) {
        let idx: Vec<usize> = raw.iter().map(|l| l.parse().unwrap_or(0)).collect();
        let k = idx.iter().max().map_or(0, |m| m + 1);
        return Ok((idx, (0..k).map(|i| i.to_string()).collect()));
    }
    let names: Vec<String> = raw
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let pos: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    Ok((raw.iter().map(|l| pos[l.as_str()]).collect(), names))
}

/// Reads labels: `labels` is an ImageFolder directory (one sub-folder per
/// class; it must be `data` itself) or a CSV `file,label` (paths relative
/// to `data`; a `file,label` header is optional). Every CSV row must name an
/// existing file, and every file of `data` must have a label.
pub fn load_labels(
    data: &Path,
    labels: &Path,
    class_names: Option<&[String]>,
) -> Result<LabelledSet> {
    let mut files = Vec::new();
    let mut raw = Vec::new();
    if labels.is_dir() {
        let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| QuantError::io(p, e));
        if canon(data)? != canon(labels)? {
            return Err(QuantError::Labels(format!(
                "{} is an ImageFolder directory but --data is {}; with the ImageFolder layout pass the same directory to both",
                labels.display(),
                data.display()
            )));
        }
        let mut classes: Vec<PathBuf> = std::fs::read_dir(labels)
            .map_err(|e| QuantError::io(labels, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !is_hidden(p))
            .collect();
        classes.sort();
        let loose = list_files(labels)?;
        if let Some(f) = loose.first() {
            return Err(QuantError::Labels(format!(
                "{}: {} file(s) outside any class sub-folder (first: {}); the ImageFolder layout puts every file in its class's folder",
                labels.display(),
                loose.len(),
                f.display()
            )));
        }
        if classes.is_empty() {
            return Err(QuantError::Labels(format!(
                "{}: no class sub-folders (ImageFolder layout) and not a CSV file",
                labels.display()
            )));
        }
        for c in &classes {
            let name = c
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            for f in list_files(c)? {
                files.push(f);
                raw.push(name.clone());
            }
        }
    } else {
        let text = std::fs::read_to_string(labels).map_err(|e| QuantError::io(labels, e))?;
        let mut named = BTreeSet::new();
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((f, l)) = line.split_once(',') else {
                return Err(QuantError::Labels(format!(
                    "{} line {}: expected `file,label`, got `{line}`",
                    labels.display(),
                    ln + 1
                )));
            };
            let (f, l) = (f.trim().trim_matches('"'), l.trim().trim_matches('"'));
            if ln == 0 && f.eq_ignore_ascii_case("file") && l.eq_ignore_ascii_case("label") {
                continue;
            }
            let path = data.join(f);
            if !path.is_file() {
                return Err(QuantError::Labels(format!(
                    "{} line {}: `{f}` does not exist under {}: the label file does not match the data",
                    labels.display(),
                    ln + 1,
                    data.display()
                )));
            }
            named.insert(std::fs::canonicalize(&path).map_err(|e| QuantError::io(&path, e))?);
            files.push(path);
            raw.push(l.to_string());
        }
        if data.is_dir() {
            let unlabelled: Vec<PathBuf> = list_files(data)?
                .into_iter()
                .filter(|p| {
                    std::fs::canonicalize(p).map_or(true, |c| !named.contains(&c))
                        && std::fs::canonicalize(p).ok() != std::fs::canonicalize(labels).ok()
                })
                .collect();
            if let Some(f) = unlabelled.first() {
                return Err(QuantError::Labels(format!(
                    "{} file(s) of {} have no label in {} (first: {}): the label file does not match the data",
                    unlabelled.len(),
                    data.display(),
                    labels.display(),
                    f.display()
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(QuantError::Labels(format!(
            "{}: no labelled files",
            labels.display()
        )));
    }
    let (labels, class_names) = index_labels(&raw, class_names)?;
    Ok(LabelledSet {
        files,
        labels,
        class_names,
    })
}

/// Audit settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AuditConfig {
    /// Reference top-1 probability band `[lo, hi]` of boundary samples.
    pub band: (f64, f64),
    /// Gate: fail when a class's recall drops by more than this many points.
    pub max_recall_drop: f64,
    /// Warn when the imbalance ratio exceeds this and the candidate is not QAT.
    pub imbalance_warn: f64,
    /// A minority class has a prior under `largest prior x minority_fraction`.
    pub minority_fraction: f64,
    /// Near-tie margin handed to the divergence core.
    pub margin: f64,
    /// Imbalance of the training data (largest / smallest class count), when
    /// known (see [`crate::training_imbalance`]); the QAT rule is about the
    /// data the model learned from, which a balanced evaluation set hides.
    pub training_imbalance: Option<f64>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            band: (0.45, 0.55),
            max_recall_drop: 2.0,
            imbalance_warn: 10.0,
            minority_fraction: 0.1,
            margin: 0.05,
            training_imbalance: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScores {
    pub accuracy: f64,
    pub correct: usize,
    /// Macro-averaged recall over classes with support.
    pub macro_recall: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassReport {
    pub index: usize,
    pub name: String,
    pub support: usize,
    pub prior: f64,
    pub minority: bool,
    pub reference_precision: Option<f64>,
    pub reference_recall: Option<f64>,
    pub candidate_precision: Option<f64>,
    pub candidate_recall: Option<f64>,
    /// Candidate minus reference recall, in points (0-100 scale).
    pub recall_delta_points: Option<f64>,
    /// Flips whose candidate prediction is this class.
    pub flips_into: usize,
    /// Flips whose reference prediction was this class.
    pub flips_out_of: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlipGroup {
    pub samples: usize,
    pub flips: usize,
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flips {
    pub total: usize,
    pub rate: f64,
    pub band: (f64, f64),
    pub in_band: FlipGroup,
    pub outside_band: FlipGroup,
    /// Flips that turned a correct reference prediction wrong / a wrong one right.
    pub correct_to_wrong: usize,
    pub wrong_to_correct: usize,
}

/// One non-zero cell of `confusion(candidate) - confusion(reference)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionDelta {
    pub true_class: usize,
    pub predicted: usize,
    pub reference: i64,
    pub candidate: i64,
    pub delta: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub max_recall_drop: f64,
    /// Classes whose recall dropped by more than `max_recall_drop` points.
    pub failed_classes: Vec<usize>,
    pub warnings: Vec<String>,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub samples: usize,
    pub reference: ModelScores,
    pub candidate: ModelScores,
    pub accuracy_delta_points: f64,
    /// The training data's when known, else the evaluation set's.
    pub imbalance_ratio: f64,
    /// Whether `imbalance_ratio` comes from the training data.
    pub imbalance_from_training: bool,
    pub minority_classes: Vec<usize>,
    pub candidate_qat: bool,
    pub classes: Vec<ClassReport>,
    pub flips: Flips,
    pub confusion_delta: Vec<ConfusionDelta>,
    pub divergence: OutputDivergence,
    pub gate: Gate,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Audits `candidate` scores against `reference` scores (`[N, C]` logits
/// or probabilities) on `labels`.
pub fn audit(
    reference: &ArrayD<f32>,
    candidate: &ArrayD<f32>,
    labels: &[usize],
    class_names: &[String],
    candidate_qat: bool,
    config: &AuditConfig,
) -> Result<AuditReport> {
    let divergence = compare_outputs("scores", reference, candidate, config.margin)?;
    if reference.ndim() != 2 {
        return Err(QuantError::Invalid(format!(
            "the audit needs class scores [N, C]; the first output has shape {:?}",
            reference.shape()
        )));
    }
    let (n, c) = (reference.shape()[0], reference.shape()[1]);
    if labels.len() != n {
        return Err(QuantError::Labels(format!(
            "{} labels for {n} samples",
            labels.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= c) {
        return Err(QuantError::Labels(format!(
            "class index {bad} but the model has {c} classes: the labels do not match the model"
        )));
    }
    let rows = |a: &ArrayD<f32>| -> Vec<Vec<f64>> {
        a.axis_iter(Axis(0))
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect()
    };
    let (ra, ca) = (rows(reference), rows(candidate));
    let pr: Vec<usize> = ra.iter().map(|r| argmax(r).unwrap_or(0)).collect();
    let pc: Vec<usize> = ca.iter().map(|r| argmax(r).unwrap_or(0)).collect();
    let top: Vec<f64> = ra
        .iter()
        .map(|r| probabilities(r).into_iter().fold(0.0, f64::max))
        .collect();
    // Classes shown: any labelled or predicted.
    let classes: BTreeSet<usize> = labels.iter().chain(&pr).chain(&pc).copied().collect();
    let mut support = BTreeMap::new();
    for &l in labels {
        *support.entry(l).or_insert(0usize) += 1;
    }
    let largest = support.values().copied().max().unwrap_or(0);
    let smallest = support.values().copied().min().unwrap_or(0);
    let evaluation_imbalance = if smallest > 0 {
        largest as f64 / smallest as f64
    } else {
        1.0
    };
    let imbalance_ratio = config.training_imbalance.unwrap_or(evaluation_imbalance);
    let scores = |p: &[usize]| {
        let correct = p.iter().zip(labels).filter(|(a, b)| a == b).count();
        let recalls: Vec<f64> = support
            .iter()
            .map(|(&k, &s)| {
                p.iter()
                    .zip(labels)
                    .filter(|(&a, &b)| b == k && a == k)
                    .count() as f64
                    / s as f64
            })
            .collect();
        ModelScores {
            accuracy: correct as f64 / n.max(1) as f64,
            correct,
            macro_recall: recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        }
    };
    let (sr, sc) = (scores(&pr), scores(&pc));
    let mut class_reports = Vec::new();
    let mut minority = Vec::new();
    let mut failed = Vec::new();
    for &k in &classes {
        let s = support.get(&k).copied().unwrap_or(0);
        let prec = |p: &[usize]| {
            let predicted = p.iter().filter(|&&a| a == k).count();
            let tp = p
                .iter()
                .zip(labels)
                .filter(|(&a, &b)| a == k && b == k)
                .count();
            ratio(tp, predicted)
        };
        let rec = |p: &[usize]| {
            let tp = p
                .iter()
                .zip(labels)
                .filter(|(&a, &b)| a == k && b == k)
                .count();
            ratio(tp, s)
        };
        let (rr, cr) = (rec(&pr), rec(&pc));
        let delta = rr.zip(cr).map(|(a, b)| 100.0 * (b - a));
        let is_minority = s > 0 && (s as f64) < config.minority_fraction * largest as f64;
        if is_minority {
            minority.push(k);
        }
        if delta.is_some_and(|d| d < -config.max_recall_drop - 1e-9) {
            failed.push(k);
        }
        class_reports.push(ClassReport {
            index: k,
            name: class_names.get(k).cloned().unwrap_or_else(|| k.to_string()),
            support: s,
            prior: s as f64 / n.max(1) as f64,
            minority: is_minority,
            reference_precision: prec(&pr),
            reference_recall: rr,
            candidate_precision: prec(&pc),
            candidate_recall: cr,
            recall_delta_points: delta,
            flips_into: (0..n).filter(|&i| pr[i] != pc[i] && pc[i] == k).count(),
            flips_out_of: (0..n).filter(|&i| pr[i] != pc[i] && pr[i] == k).count(),
        });
    }
    let flipped: Vec<bool> = (0..n).map(|i| pr[i] != pc[i]).collect();
    let in_band: Vec<bool> = top
        .iter()
        .map(|&p| p >= config.band.0 && p <= config.band.1)
        .collect();
    let group = |want: bool| {
        let samples = in_band.iter().filter(|&&b| b == want).count();
        let flips = (0..n).filter(|&i| in_band[i] == want && flipped[i]).count();
        FlipGroup {
            samples,
            flips,
            rate: ratio(flips, samples).unwrap_or(0.0),
        }
    };
    let total = flipped.iter().filter(|&&f| f).count();
    let flips = Flips {
        total,
        rate: ratio(total, n).unwrap_or(0.0),
        band: config.band,
        in_band: group(true),
        outside_band: group(false),
        correct_to_wrong: (0..n).filter(|&i| flipped[i] && pr[i] == labels[i]).count(),
        wrong_to_correct: (0..n).filter(|&i| flipped[i] && pc[i] == labels[i]).count(),
    };
    let mut cm: BTreeMap<(usize, usize), (i64, i64)> = BTreeMap::new();
    for i in 0..n {
        cm.entry((labels[i], pr[i])).or_default().0 += 1;
        cm.entry((labels[i], pc[i])).or_default().1 += 1;
    }
    let confusion_delta = cm
        .into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|((t, p), (a, b))| ConfusionDelta {
            true_class: t,
            predicted: p,
            reference: a,
            candidate: b,
            delta: b - a,
        })
        .collect();
    let mut warnings = Vec::new();
    if imbalance_ratio > config.imbalance_warn && !candidate_qat {
        warnings.push(format!(
            "class imbalance is {imbalance_ratio:.1}:1 (over {:.0}:1) and the candidate was not produced by quantization-aware training (no `{}` metadata): prefer QAT for imbalanced data",
            config.imbalance_warn,
            crate::QAT_KEY
        ));
    }
    for &k in &failed {
        let name = class_names.get(k).cloned().unwrap_or_else(|| k.to_string());
        if minority.contains(&k) {
            warnings.push(format!(
                "minority class `{name}` lost recall beyond the gate"
            ));
        }
    }
    let pass = failed.is_empty();
    Ok(AuditReport {
        samples: n,
        accuracy_delta_points: 100.0 * (sc.accuracy - sr.accuracy),
        reference: sr,
        candidate: sc,
        imbalance_ratio,
        imbalance_from_training: config.training_imbalance.is_some(),
        minority_classes: minority,
        candidate_qat,
        classes: class_reports,
        flips,
        confusion_delta,
        divergence,
        gate: Gate {
            max_recall_drop: config.max_recall_drop,
            failed_classes: failed,
            warnings,
            pass,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(rows: &[[f32; 3]]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(
            vec![rows.len(), 3],
            rows.iter().flatten().copied().collect(),
        )
        .unwrap()
    }

    #[test]
    fn flips_recall_and_gate() {
        // 4 samples: class 0 x2, class 1 x1, class 2 x1. The candidate flips
        // the class-2 sample (a near tie) to class 1.
        let r = arr(&[
            [5.0, 0.0, 0.0],
            [5.0, 0.0, 0.0],
            [0.0, 5.0, 0.0],
            [0.0, 0.1, 0.2],
        ]);
        let c = arr(&[
            [5.0, 0.0, 0.0],
            [5.0, 0.0, 0.0],
            [0.0, 5.0, 0.0],
            [0.0, 0.3, 0.2],
        ]);
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let rep = audit(
            &r,
            &c,
            &[0, 0, 1, 2],
            &names,
            false,
            &AuditConfig::default(),
        )
        .unwrap();
        assert_eq!(rep.flips.total, 1);
        assert_eq!(rep.reference.accuracy, 1.0);
        assert_eq!(rep.candidate.accuracy, 0.75);
        let c2 = rep.classes.iter().find(|k| k.index == 2).unwrap();
        assert_eq!(c2.recall_delta_points, Some(-100.0));
        assert_eq!(c2.flips_out_of, 1);
        assert_eq!(rep.gate.failed_classes, vec![2]);
        assert!(!rep.gate.pass);
        assert_eq!(rep.imbalance_ratio, 2.0);
        assert_eq!(rep.confusion_delta.len(), 2);
        assert_eq!(rep.divergence.top1.as_ref().unwrap().disagreements, 1);
        // Identical models pass.
        let same = audit(
            &r,
            &r,
            &[0, 0, 1, 2],
            &names,
            false,
            &AuditConfig::default(),
        )
        .unwrap();
        assert!(same.gate.pass && same.flips.total == 0);
        assert!(!same.imbalance_from_training && same.gate.warnings.is_empty());
        // The same balanced evaluation, but the model learned from 20:1 data:
        // the imbalance => QAT rule follows the training data.
        let cfg = AuditConfig {
            training_imbalance: Some(20.0),
            ..AuditConfig::default()
        };
        let trained = audit(&r, &r, &[0, 0, 1, 2], &names, false, &cfg).unwrap();
        assert_eq!(trained.imbalance_ratio, 20.0);
        assert!(trained.imbalance_from_training);
        assert!(
            trained.gate.warnings[0].contains("20.0:1"),
            "{:?}",
            trained.gate.warnings
        );
        let qat = audit(&r, &r, &[0, 0, 1, 2], &names, true, &cfg).unwrap();
        assert!(qat.gate.warnings.is_empty());
    }

    #[test]
    fn labels_beyond_the_model_are_an_error() {
        let r = arr(&[[1.0, 0.0, 0.0]]);
        assert!(matches!(
            audit(&r, &r, &[5], &[], false, &AuditConfig::default()),
            Err(QuantError::Labels(_))
        ));
    }
}
