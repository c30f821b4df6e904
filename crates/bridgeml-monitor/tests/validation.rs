//! The calibrated MMD threshold (mean + 2 std of B = 50 disjoint-subset
//! pairs) keeps its false-alarm rate near the nominal level on undrifted
//! windows, and still fires on a modest shift.

use bridgeml_monitor::calibrate::calibrate_mmd;
use bridgeml_monitor::mmd::{median_heuristic, mmd2_unbiased};
use bridgeml_monitor::rng::SplitMix64;
use bridgeml_monitor::CalibrationConfig;
use ndarray::Array2;

fn gaussian(n: usize, d: usize, shift: f64, rng: &mut SplitMix64) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(_, j)| {
        rng.normal() + if j == 0 { shift } else { 0.0 }
    })
}

#[test]
fn calibrated_mmd_false_alarm_rate_is_near_nominal() {
    let (d, w) = (8, 100);
    let mut rng = SplitMix64::new(11);
    let reference = gaussian(4000, d, 0.0, &mut rng);
    let bw = median_heuristic(reference.view(), 0).unwrap();
    let cal = calibrate_mmd(reference.view(), bw.sigma2, CalibrationConfig::new(w)).unwrap();
    // Fresh undrifted window pairs from the same distribution, scored as
    // calibrated (window vs window).
    let trials = 400;
    let mut alarms = 0;
    let mut hits = 0;
    for _ in 0..trials {
        let a = gaussian(w, d, 0.0, &mut rng);
        let b = gaussian(w, d, 0.0, &mut rng);
        if mmd2_unbiased(a.view(), b.view(), bw.sigma2).unwrap() > cal.threshold {
            alarms += 1;
        }
        let c = gaussian(w, d, 0.75, &mut rng);
        if mmd2_unbiased(a.view(), c.view(), bw.sigma2).unwrap() > cal.threshold {
            hits += 1;
        }
    }
    let rate = alarms as f64 / trials as f64;
    let power = hits as f64 / trials as f64;
    // Nominal for mean + 2 std of a normal null: 2.3%; the MMD^2_u null is
    // right-skewed and the threshold itself is estimated from 50 pairs, so
    // allow up to 8% (measured: see docs/MONITOR.md).
    eprintln!(
        "false-alarm rate {rate:.4}, power at 0.75 sd shift {power:.3}, threshold {:.6}",
        cal.threshold
    );
    assert!(rate <= 0.08, "false-alarm rate {rate}");
    assert!(power >= 0.8, "power {power}");
}

/// Measured error of the random-Fourier-feature estimator against the exact
/// MMD^2_u (numbers recorded in docs/BENCHMARKS.md). Run with
/// `cargo test -p bridgeml-monitor --test validation rff -- --nocapture`.
#[test]
fn rff_error_against_exact() {
    use bridgeml_monitor::mmd::{mmd2_rff, RandomFourierFeatures};
    let (n, d) = (2000, 16);
    let mut rng = SplitMix64::new(3);
    let x = gaussian(n, d, 0.0, &mut rng);
    for shift in [0.0, 0.2, 0.5] {
        let y = gaussian(n, d, shift, &mut rng);
        let bw = median_heuristic(x.view(), 0).unwrap();
        let exact = mmd2_unbiased(x.view(), y.view(), bw.sigma2).unwrap();
        for features in [256, 1024, 4096] {
            let mut errs = Vec::new();
            for seed in 0..5 {
                let f = RandomFourierFeatures::new(d, features, bw.sigma2, seed).unwrap();
                let a = mmd2_rff(&f.embed(x.view()).unwrap(), &f.embed(y.view()).unwrap()).unwrap();
                errs.push((a - exact).abs());
            }
            let mean_err = errs.iter().sum::<f64>() / errs.len() as f64;
            eprintln!("shift {shift} D {features}: exact {exact:.3e}, mean |error| over 5 seeds {mean_err:.3e}");
            if shift == 0.5 {
                assert!(mean_err < 0.2 * exact.abs() + 2e-3, "{mean_err} vs {exact}");
            }
        }
    }
}
