//! Every statistic against the numpy/scipy reference written by
//! `scripts/fixtures/make_monitor_fixtures.py` into `tests/fixtures/monitor/`.
//!
//! Tolerances: exact equality where the computation is the same sequence of
//! IEEE operations (edges, counts, KS statistic); 1e-12 relative where only
//! the summation order differs (PSI, JS, W1, MMD, chi-square statistic);
//! 1e-9 relative for p-values from special functions; documented looser
//! bounds where the algorithm differs from scipy's (see each test).

use std::path::PathBuf;

use bridgeml_monitor::label_shift::{estimate_label_shift, LabelShiftConfig};
use bridgeml_monitor::mmd::{median_heuristic, mmd2_unbiased, mmd_permutation_test};
use bridgeml_monitor::psi::{Binning, PsiConfig, ReferenceBins};
use bridgeml_monitor::special::{kstwo_sf, smirnov};
use bridgeml_monitor::univariate::{
    adjust_p_values, chi2_categorical, chi2_from_counts, js_distance_from_counts, ks_2samp,
    wasserstein_1, Correction,
};
use ndarray::Array2;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/monitor")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    let tol = rel * b.abs().max(1e-300);
    assert!(
        (a - b).abs() <= tol,
        "{what}: got {a:e}, want {b:e} (rel {:e})",
        ((a - b) / b).abs()
    );
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_vec((n, d), rows.concat()).unwrap()
}

fn generated(n: u64, c: f64, scale: f64, offset: f64) -> Vec<f64> {
    (1..=n)
        .map(|i| ((i as f64 * c) % 1.0) * scale + offset)
        .collect()
}

#[test]
fn psi_matches_numpy() {
    for case in fixture("psi.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = PsiConfig {
            n_bins: case["n_bins"].as_u64().unwrap() as usize,
            eps: case["eps"].as_f64().unwrap(),
            binning: if case["equal_width"].as_bool().unwrap() {
                Binning::EqualWidth
            } else {
                Binning::Quantile
            },
        };
        let r = f64s(&case["reference"]);
        let c = f64s(&case["current"]);
        let bins = ReferenceBins::fit(&r, cfg).unwrap();
        assert_eq!(bins.edges, f64s(&case["edges"]), "{name}: edges");
        assert_eq!(
            bins.counts,
            u64s(&case["reference_counts"]),
            "{name}: reference counts"
        );
        assert_eq!(
            bins.missing,
            case["reference_missing"].as_u64().unwrap(),
            "{name}"
        );
        let cc = bins.count(&c).unwrap();
        assert_eq!(
            cc.counts,
            u64s(&case["current_counts"]),
            "{name}: current counts"
        );
        assert_eq!(
            cc.missing,
            case["current_missing"].as_u64().unwrap(),
            "{name}"
        );
        let want = case["psi"].as_f64().unwrap();
        let got = bins.psi(&c).unwrap();
        if want == 0.0 {
            assert_eq!(got, 0.0, "{name}");
        } else {
            close(got, want, 1e-12, name);
        }
    }
}

#[test]
fn ks_matches_scipy() {
    for case in fixture("ks.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (a, b) = match case.get("generated") {
            Some(g) => {
                let g = f64s(g);
                (
                    generated(g[0] as u64, g[1], g[2], g[3]),
                    generated(g[4] as u64, g[5], g[6], g[7]),
                )
            }
            None => (f64s(&case["reference"]), f64s(&case["current"])),
        };
        let r = ks_2samp(&a, &b).unwrap();
        assert_eq!(
            r.statistic,
            case["statistic"].as_f64().unwrap(),
            "{name}: D"
        );
        let want = case["p_value"].as_f64().unwrap();
        // Exact paths are the same recurrences as scipy: 1e-10 relative.
        // The asymptotic path uses Pelz-Good where scipy uses the Durbin
        // matrix (p > 0.99 there): 1e-6 absolute.
        if a.len().max(b.len()) <= 10_000 {
            close(r.p_value, want, 1e-10, name);
        } else {
            assert!(
                (r.p_value - want).abs() < 1e-6 || (r.p_value - want).abs() < 1e-6 * want,
                "{name}: {} vs {want}",
                r.p_value
            );
        }
    }
}

#[test]
fn kstwo_and_smirnov_match_scipy() {
    for case in fixture("kstwo.json").as_array().unwrap() {
        let n = case["n"].as_u64().unwrap();
        let x = case["x"].as_f64().unwrap();
        close(
            smirnov(n, x),
            case["smirnov"].as_f64().unwrap(),
            1e-10,
            &format!("smirnov({n},{x})"),
        );
        let want = case["sf"].as_f64().unwrap();
        let got = kstwo_sf(n, x);
        assert!(
            (got - want).abs() <= 1e-6 * want.max(1e-3),
            "kstwo.sf({x},{n}): {got} vs {want}"
        );
    }
}

#[test]
fn chi2_js_w1_and_corrections_match_scipy() {
    let c = fixture("chi2.json");
    let cat = |v: &Value| -> Vec<Option<String>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    let (r, cu) = (cat(&c["reference"]), cat(&c["current"]));
    let rr: Vec<Option<&str>> = r.iter().map(|x| x.as_deref()).collect();
    let cc: Vec<Option<&str>> = cu.iter().map(|x| x.as_deref()).collect();
    let t = chi2_categorical(&rr, &cc).unwrap();
    close(
        t.statistic,
        c["statistic"].as_f64().unwrap(),
        1e-12,
        "chi2 statistic",
    );
    close(t.p_value, c["p_value"].as_f64().unwrap(), 1e-9, "chi2 p");
    let t = chi2_from_counts(&u64s(&c["counts_reference"]), &u64s(&c["counts_current"])).unwrap();
    close(
        t.statistic,
        c["counts_statistic"].as_f64().unwrap(),
        1e-12,
        "chi2 counts statistic",
    );
    close(
        t.p_value,
        c["counts_p_value"].as_f64().unwrap(),
        1e-9,
        "chi2 counts p",
    );

    for case in fixture("js.json").as_array().unwrap() {
        let got =
            js_distance_from_counts(&u64s(&case["reference"]), &u64s(&case["current"])).unwrap();
        let want = case["distance"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1e-12),
            "js {got} {want}"
        );
    }
    for case in fixture("wasserstein.json").as_array().unwrap() {
        let got = wasserstein_1(&f64s(&case["reference"]), &f64s(&case["current"])).unwrap();
        close(
            got,
            case["distance"].as_f64().unwrap(),
            1e-12,
            "wasserstein",
        );
    }
    let c = fixture("corrections.json");
    let p = f64s(&c["p_values"]);
    for (got, want) in adjust_p_values(&p, Correction::Bonferroni)
        .iter()
        .zip(f64s(&c["bonferroni"]))
    {
        close(*got, want, 1e-15, "bonferroni");
    }
    for (got, want) in adjust_p_values(&p, Correction::BenjaminiHochberg)
        .iter()
        .zip(f64s(&c["benjamini_hochberg"]))
    {
        close(*got, want, 1e-15, "bh");
    }
}

#[test]
fn mmd_matches_numpy() {
    for case in fixture("mmd.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = matrix(&case["x"]);
        let y = matrix(&case["y"]);
        let bw = median_heuristic(x.view(), 0).unwrap();
        close(
            bw.median_sq_distance.unwrap(),
            case["median"].as_f64().unwrap(),
            1e-12,
            name,
        );
        assert!(!bw.subsampled);
        // MMD^2_u is a difference of kernel means in [0, 1]; summation order
        // differs from numpy, so compare with an absolute 1e-13 (the kernel
        // means' rounding level) plus 1e-10 relative.
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-13 + 1e-10 * b.abs();
        let want = case["mmd2_u"].as_f64().unwrap();
        let got = mmd2_unbiased(x.view(), y.view(), bw.sigma2).unwrap();
        assert!(near(got, want), "{name}: {got:e} vs {want:e}");
        let want1 = case["mmd2_u_sigma2_1"].as_f64().unwrap();
        let got1 = mmd2_unbiased(x.view(), y.view(), 1.0).unwrap();
        assert!(near(got1, want1), "{name}: {got1:e} vs {want1:e}");
        // The permutation path computes the observed statistic from quadratic forms.
        let t = mmd_permutation_test(x.view(), y.view(), bw.sigma2, 30, 1).unwrap();
        assert!(
            (t.statistic - want).abs() < 1e-10,
            "{name}: {} vs {want}",
            t.statistic
        );
        assert!(t.p_value > 0.0 && t.p_value <= 1.0);
    }
}

#[test]
fn permuted_statistics_equal_direct_recomputation() {
    // Rebuild each permutation's relabelling from the same seed and check the
    // one-pass quadratic-form statistic against mmd2_unbiased on the split.
    let case = &fixture("mmd.json")[0];
    let x = matrix(&case["x"]);
    let y = matrix(&case["y"]);
    let (n, m) = (x.nrows(), y.nrows());
    let t = mmd_permutation_test(x.view(), y.view(), 3.0, 5, 42).unwrap();
    let pooled = ndarray::concatenate(ndarray::Axis(0), &[x.view(), y.view()]).unwrap();
    let mut labels: Vec<bool> = (0..n + m).map(|i| i < n).collect();
    let mut rng = bridgeml_monitor::rng::SplitMix64::new(42);
    for p in 0..5 {
        rng.shuffle(&mut labels);
        let xi: Vec<usize> = (0..n + m).filter(|&i| labels[i]).collect();
        let yi: Vec<usize> = (0..n + m).filter(|&i| !labels[i]).collect();
        let direct = mmd2_unbiased(
            pooled.select(ndarray::Axis(0), &xi).view(),
            pooled.select(ndarray::Axis(0), &yi).view(),
            3.0,
        )
        .unwrap();
        assert!((t.null_statistics[p] - direct).abs() < 1e-12, "perm {p}");
    }
    let exceed = t
        .null_statistics
        .iter()
        .filter(|&&v| v >= t.statistic)
        .count();
    assert_eq!(t.p_value, (1 + exceed) as f64 / 6.0);
}

#[test]
fn label_shift_point_estimate_matches_numpy() {
    let c = fixture("label_shift.json");
    let us = |v: &Value| -> Vec<usize> { u64s(v).into_iter().map(|x| x as usize).collect() };
    let cfg = LabelShiftConfig {
        lambda: c["lam"].as_f64().unwrap(),
        bootstrap: 100,
        ..Default::default()
    };
    let e = estimate_label_shift(
        vec!["0".into(), "1".into(), "2".into()],
        &us(&c["labels"]),
        &us(&c["predictions"]),
        &us(&c["current"]),
        cfg,
    )
    .unwrap();
    for (k, want) in [
        ("validation_priors", &e.validation_priors),
        ("estimated_priors", &e.estimated_priors),
        ("weights", &e.weights),
    ] {
        for (g, w) in want.iter().zip(f64s(&c[k])) {
            close(*g, w, 1e-9, k);
        }
    }
    // The true current priors (0.2, 0.3, 0.5) lie inside the 95% intervals.
    for (j, truth) in f64s(&c["true_current_priors"]).iter().enumerate() {
        assert!(
            e.priors_lower[j] - 0.02 <= *truth && *truth <= e.priors_upper[j] + 0.02,
            "class {j}: {:?}",
            e
        );
    }
}
