//! Special functions needed for p-values: log-gamma, the regularized upper
//! incomplete gamma (chi-square survival), and the one-sample Kolmogorov
//! distributions used by the asymptotic two-sample KS p-value.

use std::f64::consts::PI;

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, &g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma Q(a, x) (series below a+1,
/// Lentz continued fraction above).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let lg = ln_gamma(a);
    if x < a + 1.0 {
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        let p = sum * (-x + a * x.ln() - lg).exp();
        (1.0 - p).max(0.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-17 {
                break;
            }
        }
        ((-x + a * x.ln() - lg).exp() * h).clamp(0.0, 1.0)
    }
}

/// Survival function of the chi-square distribution with `dof` degrees of freedom.
pub fn chi2_sf(stat: f64, dof: f64) -> f64 {
    gamma_q(dof / 2.0, stat / 2.0)
}

/// ln C(n, k).
fn ln_binom(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// Exact one-sided one-sample KS survival P(D_n^+ >= x) (Birnbaum-Tingey),
/// as `scipy.special.smirnov(n, x)`; terms summed in log space.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let jmax = (nf * (1.0 - x)).floor() as u64;
    let mut s = 0.0;
    for j in 0..=jmax {
        let jf = j as f64;
        let a = x + jf / nf;
        let b = 1.0 - x - jf / nf;
        if b <= 0.0 {
            // The j = n(1-x) term: (1 - x - j/n)^(n-j) is 0 unless n-j = 0.
            if j == n {
                s += (ln_binom(nf, jf) + (jf - 1.0) * a.ln()).exp();
            }
            continue;
        }
        let lt = ln_binom(nf, jf) + (jf - 1.0) * a.ln() + (nf - jf) * b.ln();
        s += lt.exp();
    }
    (x * s).clamp(0.0, 1.0)
}

/// Pelz-Good approximation of the two-sided one-sample KS CDF P(D_n <= x),
/// as scipy's `_kolmogn_PelzGood`.
pub fn kolmogn_pelz_good_cdf(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let sqrt2pi = (2.0 * PI).sqrt();
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z * z * z, z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qp = q.powi((8 * kk) as i32);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for i in 0..4 {
            k[i] = k[i] * qp + coeffs[i];
        }
    }
    let den = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for i in 0..4 {
        k[i] = k[i] * q * sqrt2pi / den[i];
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let mut k2extra = 0.0;
    let mut k3extra = 0.0;
    let sqrt3z = 3f64.sqrt() * z;
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let ks2 = kf * kf;
        let qp = q2.powf(ks2);
        k2extra += ks2 * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    for (i, ki) in k.iter_mut().enumerate() {
        *ki /= n.powf(i as f64 / 2.0);
    }
    k.iter().sum()
}

/// Survival P(D_n >= x) of the two-sided one-sample KS statistic, following
/// scipy's `kstwo.sf` for n > 140 (the only sizes the two-sample asymptotic
/// path reaches, since exact is used up to 10,000 rows): Ruben-Gambino at the
/// ends, 2 x smirnov when n x^2 >= 2.2, and 1 - Pelz-Good otherwise (scipy
/// uses the Durbin matrix for n x^1.5 <= 1.4 there; both give p > 0.9 in that
/// region, see `docs/MONITOR.md`).
pub fn kstwo_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let lp = ln_gamma(nf + 1.0) - nf * nf.ln() + nf * (2.0 * t - 1.0).ln();
        return (1.0 - lp.exp()).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nx2 = t * x;
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nx2 >= 18.0 {
        return 0.0;
    }
    (1.0 - kolmogn_pelz_good_cdf(nf, x)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // scipy.stats.chi2.sf(3.0, 2) = exp(-1.5)
        assert!((chi2_sf(3.0, 2.0) - (-1.5f64).exp()).abs() < 1e-15);
        // ln Gamma(10) = ln(362880)
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-12);
        // scipy.special.smirnov(5, 0.3) = 0.34282
        let s = smirnov(5, 0.3);
        assert!((s - 0.34282).abs() < 1e-12, "{s}");
    }
}
