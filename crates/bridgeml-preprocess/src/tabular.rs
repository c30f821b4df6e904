//! Tabular steps: transform rows into a float32 feature matrix, and fit the
//! statistics the steps need (`bridgeml spec fit`).
//!
//! Arithmetic is float64 (as scikit-learn and pandas do it), the output is cast
//! to float32 once at the end. Columns keep the order of `input.columns`;
//! `one_hot` expands a column in place into `column=category` features.

use bridgeml_core::{ColumnData, Table, Tensor};
use ndarray::{ArrayD, IxDyn};

use crate::error::{PreprocessError, Result};
use crate::spec::{ImputeStrategy, Spec, Step, UnknownCategory};

/// The label used for unseen categories with `unknown = "__unknown__"`.
pub const UNKNOWN_BUCKET: &str = "__unknown__";

#[derive(Debug, Clone)]
enum Values {
    Numeric(Vec<f64>),
    Categorical(Vec<Option<String>>),
    /// Expanded features (name, values), in place of the original column.
    Expanded(Vec<(String, Vec<f64>)>),
}

#[derive(Debug, Clone)]
struct Frame {
    columns: Vec<(String, Values)>,
    rows: usize,
}

impl Frame {
    fn from_table(spec: &Spec, table: &Table, label: &str) -> Result<Frame> {
        let names = spec.input.columns.as_deref().unwrap_or(&[]);
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let col = table.column(name).ok_or_else(|| PreprocessError::Tabular {
                input: label.into(),
                reason: format!(
                    "column {name:?} is missing (the file has: {})",
                    table.names().join(", ")
                ),
            })?;
            let values = match &col.data {
                ColumnData::Numeric(v) => Values::Numeric(v.clone()),
                ColumnData::Categorical(v) => Values::Categorical(v.clone()),
            };
            columns.push((name.clone(), values));
        }
        Ok(Frame {
            columns,
            rows: table.n_rows(),
        })
    }

    fn get_mut(&mut self, name: &str) -> &mut Values {
        &mut self
            .columns
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("spec validation checks every column is declared")
            .1
    }

    fn numeric_mut(&mut self, name: &str, ctx: &Ctx) -> Result<&mut Vec<f64>> {
        match self.get_mut(name) {
            Values::Numeric(v) => Ok(v),
            Values::Categorical(_) => Err(ctx.fail(format!(
                "column {name:?} is categorical; this step needs numbers"
            ))),
            Values::Expanded(_) => Err(ctx.fail(format!(
                "column {name:?} was already expanded by an earlier step"
            ))),
        }
    }

    fn into_tensor(self, label: &str) -> Result<Tensor> {
        let mut features: Vec<(String, Vec<f64>)> = Vec::new();
        for (name, values) in self.columns {
            match values {
                Values::Numeric(v) => features.push((name, v)),
                Values::Expanded(e) => features.extend(e),
                Values::Categorical(_) => {
                    return Err(PreprocessError::Tabular {
                        input: label.into(),
                        reason: format!(
                            "column {name:?} is categorical: add a one_hot step for it"
                        ),
                    })
                }
            }
        }
        let n_features = features.len();
        let mut data = vec![0f32; self.rows * n_features];
        for (j, (name, values)) in features.iter().enumerate() {
            for (i, &v) in values.iter().enumerate() {
                if v.is_nan() {
                    return Err(PreprocessError::Tabular {
                        input: label.into(),
                        reason: format!(
                            "feature {name:?} is missing in row {i}: add an impute step for it"
                        ),
                    });
                }
                data[i * n_features + j] = v as f32;
            }
        }
        Ok(Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&[self.rows, n_features]), data).expect("dims match"),
        ))
    }
}

struct Ctx<'a> {
    label: &'a str,
    index: usize,
    op: &'static str,
}

impl Ctx<'_> {
    fn fail(&self, reason: String) -> PreprocessError {
        PreprocessError::Step {
            input: self.label.into(),
            step: self.index,
            op: self.op.into(),
            reason,
        }
    }
}

/// Transforms `table` into a `[rows, features]` float32 tensor, stopping
/// after step `until` when given (`Some(None)`: no step).
pub fn transform(
    spec: &Spec,
    table: &Table,
    label: &str,
    until: Option<Option<usize>>,
) -> Result<Tensor> {
    if !spec.is_fitted() {
        return Err(PreprocessError::InvalidArgument(format!(
            "{label}: the spec has unfitted statistics; run `bridgeml spec fit` first"
        )));
    }
    let mut frame = Frame::from_table(spec, table, label)?;
    let last = match until {
        None => spec.steps.len(),
        Some(None) => 0,
        Some(Some(i)) => i + 1,
    };
    for (index, step) in spec.steps[..last].iter().enumerate() {
        apply(
            &mut frame,
            step,
            &Ctx {
                label,
                index,
                op: step.op(),
            },
        )?;
    }
    frame.into_tensor(label)
}

/// Names of the output features, in order.
pub fn feature_names(spec: &Spec) -> Vec<String> {
    let mut names: Vec<Vec<String>> = spec
        .input
        .columns
        .iter()
        .flatten()
        .map(|c| vec![c.clone()])
        .collect();
    let cols = spec.input.columns.clone().unwrap_or_default();
    for step in &spec.steps {
        if let Step::OneHot {
            column,
            categories: Some(cats),
            unknown,
        } = step
        {
            let pos = cols.iter().position(|c| c == column).expect("validated");
            let mut expanded: Vec<String> = cats.iter().map(|c| format!("{column}={c}")).collect();
            if *unknown == UnknownCategory::UnknownBucket {
                expanded.push(format!("{column}={UNKNOWN_BUCKET}"));
            }
            names[pos] = expanded;
        }
    }
    names.into_iter().flatten().collect()
}

fn apply(frame: &mut Frame, step: &Step, ctx: &Ctx) -> Result<()> {
    match step {
        Step::Standardize {
            columns,
            mean: Some(mean),
            std: Some(std),
        } => {
            for (k, name) in columns.iter().enumerate() {
                for x in frame.numeric_mut(name, ctx)? {
                    *x = (*x - mean[k]) / std[k];
                }
            }
        }
        Step::MinMax {
            columns,
            min: Some(min),
            max: Some(max),
        } => {
            for (k, name) in columns.iter().enumerate() {
                let range = max[k] - min[k];
                for x in frame.numeric_mut(name, ctx)? {
                    *x = (*x - min[k]) / range;
                }
            }
        }
        Step::Clip { columns, min, max } => {
            for name in columns {
                for x in frame.numeric_mut(name, ctx)? {
                    // NaN stays NaN (missing), like numpy.clip.
                    if let Some(lo) = min {
                        if *x < *lo {
                            *x = *lo;
                        }
                    }
                    if let Some(hi) = max {
                        if *x > *hi {
                            *x = *hi;
                        }
                    }
                }
            }
        }
        Step::Impute {
            columns,
            value,
            values,
            ..
        } => {
            for (k, name) in columns.iter().enumerate() {
                let fill = values
                    .as_ref()
                    .map(|v| v[k])
                    .or(*value)
                    .expect("validated and fitted");
                match frame.get_mut(name) {
                    Values::Numeric(v) => {
                        v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = fill)
                    }
                    Values::Categorical(_) | Values::Expanded(_) => {
                        return Err(ctx.fail(format!("column {name:?} is not numeric")))
                    }
                }
            }
        }
        Step::OneHot {
            column,
            categories: Some(categories),
            unknown,
        } => {
            let texts = category_texts(frame.get_mut(column));
            let texts = match texts {
                Some(t) => t,
                None => return Err(ctx.fail(format!("column {column:?} was already expanded"))),
            };
            let bucket = *unknown == UnknownCategory::UnknownBucket;
            let width = categories.len() + usize::from(bucket);
            let mut feats: Vec<Vec<f64>> = vec![vec![0.0; frame.rows]; width];
            for (row, cat) in texts.iter().enumerate() {
                let hit = cat
                    .as_ref()
                    .and_then(|c| categories.iter().position(|k| k == c));
                match (hit, unknown) {
                    (Some(j), _) => feats[j][row] = 1.0,
                    (None, UnknownCategory::Error) => {
                        return Err(ctx.fail(format!(
                            "row {row}: category {} of column {column:?} was not seen when fitting (unknown = \"error\")",
                            cat.as_deref().map_or("<missing>".to_string(), |c| format!("{c:?}"))
                        )))
                    }
                    (None, UnknownCategory::AllZeros) => {}
                    (None, UnknownCategory::UnknownBucket) => feats[width - 1][row] = 1.0,
                }
            }
            let mut names: Vec<String> =
                categories.iter().map(|c| format!("{column}={c}")).collect();
            if bucket {
                names.push(format!("{column}={UNKNOWN_BUCKET}"));
            }
            *frame.get_mut(column) = Values::Expanded(names.into_iter().zip(feats).collect());
        }
        Step::Bucketize { column, edges } => {
            for x in frame.numeric_mut(column, ctx)? {
                if !x.is_nan() {
                    // index i such that edges[i-1] <= x < edges[i] (numpy.digitize, right=False)
                    *x = edges.partition_point(|e| *e <= *x) as f64;
                }
            }
        }
        other => {
            return Err(ctx.fail(format!(
                "{} is not fitted or not a tabular step",
                other.op()
            )))
        }
    }
    Ok(())
}

/// Category labels of a column: text as is, numbers in their shortest form.
fn category_texts(values: &Values) -> Option<Vec<Option<String>>> {
    match values {
        Values::Categorical(v) => Some(v.clone()),
        Values::Numeric(v) => Some(
            v.iter()
                .map(|x| {
                    if x.is_nan() {
                        None
                    } else {
                        Some(x.to_string())
                    }
                })
                .collect(),
        ),
        Values::Expanded(_) => None,
    }
}

/// Fits every missing statistic on `table`, step by step: each step is fitted
/// on the output of the steps before it, as a scikit-learn `Pipeline` does.
pub fn fit(spec: &Spec, table: &Table, label: &str) -> Result<Spec> {
    if spec.input.kind != crate::spec::InputKind::Tabular {
        return Err(PreprocessError::InvalidArgument(
            "spec fit applies to tabular specs (input.kind = \"tabular\")".into(),
        ));
    }
    if table.n_rows() == 0 {
        return Err(PreprocessError::Tabular {
            input: label.into(),
            reason: "no rows to fit on".into(),
        });
    }
    let mut fitted = spec.clone();
    let mut frame = Frame::from_table(spec, table, label)?;
    for index in 0..fitted.steps.len() {
        let ctx = Ctx {
            label,
            index,
            op: fitted.steps[index].op(),
        };
        let step = &mut fitted.steps[index];
        match step {
            Step::Standardize { columns, mean, std } => {
                let mut m = Vec::new();
                let mut s = Vec::new();
                for name in columns.iter() {
                    let v = present(frame.numeric_mut(name, &ctx)?, name, &ctx)?;
                    let mu = numpy_mean(&v);
                    let sq: Vec<f64> = v.iter().map(|x| (x - mu) * (x - mu)).collect();
                    let var = numpy_sum(&sq) / v.len() as f64;
                    // scikit-learn keeps constant columns unscaled (scale 1).
                    let sd = if var == 0.0 { 1.0 } else { var.sqrt() };
                    m.push(mu);
                    s.push(sd);
                }
                mean.get_or_insert(m);
                std.get_or_insert(s);
            }
            Step::MinMax { columns, min, max } => {
                let mut lo = Vec::new();
                let mut hi = Vec::new();
                for name in columns.iter() {
                    let v = present(frame.numeric_mut(name, &ctx)?, name, &ctx)?;
                    let a = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let b = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if a == b {
                        return Err(ctx.fail(format!(
                            "column {name:?} is constant ({a}); min_max cannot scale it"
                        )));
                    }
                    lo.push(a);
                    hi.push(b);
                }
                min.get_or_insert(lo);
                max.get_or_insert(hi);
            }
            Step::Impute {
                columns,
                strategy,
                values,
                ..
            } if *strategy != ImputeStrategy::Constant && values.is_none() => {
                let mut fills = Vec::new();
                for name in columns.iter() {
                    let mut v = present(frame.numeric_mut(name, &ctx)?, name, &ctx)?;
                    fills.push(match strategy {
                        ImputeStrategy::Mean => numpy_mean(&v),
                        _ => median(&mut v),
                    });
                }
                *values = Some(fills);
            }
            Step::OneHot {
                column, categories, ..
            } if categories.is_none() => {
                let texts = category_texts(frame.get_mut(column))
                    .ok_or_else(|| ctx.fail(format!("column {column:?} was already expanded")))?;
                let mut cats: Vec<String> = texts.into_iter().flatten().collect();
                cats.sort();
                cats.dedup();
                if cats.is_empty() {
                    return Err(ctx.fail(format!("column {column:?} has no values to fit")));
                }
                *categories = Some(cats);
            }
            _ => {}
        }
        let step = fitted.steps[index].clone();
        apply(&mut frame, &step, &ctx)?;
    }
    fitted.validate()?;
    Ok(fitted)
}

fn present(values: &[f64], name: &str, ctx: &Ctx) -> Result<Vec<f64>> {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Err(ctx.fail(format!("column {name:?} has no values to fit")));
    }
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        return Err(ctx.fail(format!("column {name:?} contains {x}")));
    }
    Ok(v)
}

/// `np.sum` of a float64 array, bit for bit: numpy's pairwise summation
/// (8 accumulators over blocks of up to 128 values, halving above that),
/// added to the reduction's identity 0.0. A plain left-to-right sum differs
/// from numpy in the last bits, which `spec fit` must not.
fn numpy_sum(v: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            a.iter().fold(-0.0, |acc, &x| acc + x)
        } else if n <= 128 {
            let mut r = [0f64; 8];
            r.copy_from_slice(&a[..8]);
            let full = n - n % 8;
            for chunk in a[8..full].chunks_exact(8) {
                for (acc, &x) in r.iter_mut().zip(chunk) {
                    *acc += x;
                }
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for &x in &a[full..] {
                res += x;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    0.0 + pairwise(v)
}

/// `np.mean` of a float64 array, bit for bit.
fn numpy_mean(v: &[f64]) -> f64 {
    numpy_sum(v) / v.len() as f64
}

/// numpy's median: the mean of the two middle values for even lengths.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_like_numpy_bit_for_bit() {
        // np.sum([0.1] * 10) == 1.0, a left-to-right sum gives 0.9999999999999999
        assert_eq!(numpy_sum(&[0.1; 10]), 1.0);
        // np.sum((np.arange(1, 1001) * 0.37) % 7.3) == 3634.000000000002 (naive: ...001)
        let v: Vec<f64> = (1..=1000).map(|i| (f64::from(i) * 0.37) % 7.3).collect();
        assert_eq!(numpy_sum(&v), 3634.000000000002);
        let mu = numpy_mean(&v);
        let sq: Vec<f64> = v.iter().map(|x| (x - mu) * (x - mu)).collect();
        // np.std(...) == 2.102580795118228
        assert_eq!((numpy_sum(&sq) / v.len() as f64).sqrt(), 2.102580795118228);
        assert_eq!(numpy_sum(&[-0.0, -0.0]).to_bits(), 0f64.to_bits());
    }
}
