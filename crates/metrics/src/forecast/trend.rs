//! The models behind a forecast: a least-squares line, Holt's damped trend (grid-searched
//! smoothing), the holdout that picks between them, and the weekly pattern removed before
//! either is fitted. Pure arithmetic on dense daily values; must not know dates or limits.
use super::{Fitted, Model};

/// Holt is chosen only when its holdout error is below this share of the line's.
const HOLT_MARGIN: f64 = 0.75;

pub(super) struct Line {
    pub a: f64,
    pub b: f64,
    pub sigma: f64,
    pub se_b: f64,
}

pub(super) fn linear(y: &[f64]) -> Line {
    let n = y.len() as f64;
    let x_mean = (n - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, v) in y.iter().enumerate() {
        let dx = x as f64 - x_mean;
        sxy += dx * (v - y_mean);
        sxx += dx * dx;
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let a = y_mean - b * x_mean;
    let sse: f64 = y
        .iter()
        .enumerate()
        .map(|(x, v)| (v - a - b * x as f64).powi(2))
        .sum();
    let sigma = if n > 2.0 {
        (sse / (n - 2.0)).sqrt()
    } else {
        0.0
    };
    // Relative to the data's scale, a residual this small is rounding: treat as exact.
    let sigma = if sigma <= 1e-9 * y_mean.abs().max(1.0) {
        0.0
    } else {
        sigma
    };
    let se_b = if sxx > 0.0 { sigma / sxx.sqrt() } else { 0.0 };
    Line { a, b, sigma, se_b }
}

/// Σ φ^k for k = 1..=h (h for φ = 1).
pub(super) fn damped_sum(phi: f64, h: f64) -> f64 {
    if (phi - 1.0).abs() < 1e-12 {
        h
    } else {
        phi * (1.0 - phi.powf(h)) / (1.0 - phi)
    }
}

/// Holt's damped trend with given smoothing: final (level, trend) and one-step errors.
fn holt_run(y: &[f64], alpha: f64, beta: f64, phi: f64) -> (f64, f64, f64, usize) {
    let k = (y.len() - 1).min(3);
    let (mut level, mut trend) = (y[0], (y[k] - y[0]) / k.max(1) as f64);
    let (mut sse, mut m) = (0.0, 0usize);
    for (t, &v) in y.iter().enumerate().skip(1) {
        let predicted = level + phi * trend;
        if t > k {
            sse += (v - predicted).powi(2);
            m += 1;
        }
        let next = alpha * v + (1.0 - alpha) * predicted;
        trend = beta * (next - level) + (1.0 - beta) * phi * trend;
        level = next;
    }
    (level, trend, sse, m)
}

/// The best Holt parameters on `y` by one-step error (grid search).
fn holt(y: &[f64]) -> Fitted {
    let mut best = (f64::INFINITY, 0.5, 0.1, 0.9);
    for alpha in [0.1, 0.2, 0.3, 0.5, 0.7, 0.9] {
        for beta in [0.02, 0.05, 0.1, 0.2, 0.3] {
            for phi in [0.8, 0.9, 0.95, 0.98, 1.0] {
                let (_, _, sse, _) = holt_run(y, alpha, beta, phi);
                if sse < best.0 {
                    best = (sse, alpha, beta, phi);
                }
            }
        }
    }
    let (_, alpha, beta, phi) = best;
    let (level, trend, sse, m) = holt_run(y, alpha, beta, phi);
    Fitted {
        model: Model::DampedTrend,
        a: level,
        b: trend,
        phi,
        sigma: if m > 0 { (sse / m as f64).sqrt() } else { 0.0 },
        holdout_rmse: 0.0,
        other_holdout_rmse: 0.0,
        n: y.len(),
        season: Vec::new(),
    }
}

fn line_fit(y: &[f64]) -> Fitted {
    let l = linear(y);
    Fitted {
        model: Model::Linear,
        a: l.a,
        b: l.b,
        phi: 1.0,
        sigma: l.sigma,
        holdout_rmse: 0.0,
        other_holdout_rmse: 0.0,
        n: y.len(),
        season: Vec::new(),
    }
}

/// Holdout error of `fit_with` on the last `k` points, from rolling origins: each of the
/// last `k` days is forecast from every origin before it (fits on the days up to the origin),
/// which steadies the comparison on short series.
fn holdout(y: &[f64], k: usize, fit_with: fn(&[f64]) -> Fitted) -> f64 {
    let (mut sse, mut m) = (0.0, 0usize);
    for origin in y.len() - k..y.len() {
        let fit = fit_with(&y[..origin]);
        for (i, v) in y[origin..].iter().enumerate() {
            sse += (v - fit.expected(i as f64 + 1.0)).powi(2);
            m += 1;
        }
    }
    (sse / m.max(1) as f64).sqrt()
}

/// Scores both models on the last ~20 % of days (fitted before them), then refits the
/// winner on all days. The line wins unless Holt is clearly better.
pub(super) fn choose(y: &[f64]) -> Fitted {
    let k = ((y.len() as f64 * 0.2).round() as usize).clamp(2, y.len() - 2);
    let line_err = holdout(y, k, line_fit);
    let holt_err = holdout(y, k, holt);
    if holt_err < HOLT_MARGIN * line_err {
        Fitted {
            holdout_rmse: holt_err,
            other_holdout_rmse: line_err,
            ..holt(y)
        }
    } else {
        Fitted {
            holdout_rmse: line_err,
            other_holdout_rmse: holt_err,
            ..line_fit(y)
        }
    }
}

/// Least seasonal strength (1 − Var(remainder) / Var(detrended)) worth modelling.
const MIN_SEASON_STRENGTH: f64 = 0.4;

/// The additive weekly pattern: 7 offsets (index = day number mod 7, summing to 0) from the
/// series detrended by a centred 7-day moving average; empty for series under three weeks
/// or when the pattern explains too little of what the trend leaves.
pub(super) fn weekly_season(y: &[f64]) -> Vec<f64> {
    if y.len() < 21 {
        return Vec::new();
    }
    let detrended: Vec<(usize, f64)> = (3..y.len() - 3)
        .map(|x| (x, y[x] - y[x - 3..=x + 3].iter().sum::<f64>() / 7.0))
        .collect();
    let (mut sums, mut counts) = ([0.0; 7], [0usize; 7]);
    for &(x, d) in &detrended {
        sums[x % 7] += d;
        counts[x % 7] += 1;
    }
    let mut season: Vec<f64> = (0..7).map(|k| sums[k] / counts[k].max(1) as f64).collect();
    let mean = season.iter().sum::<f64>() / 7.0;
    season.iter_mut().for_each(|s| *s -= mean);
    let variance = |values: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = values.collect();
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64
    };
    let total = variance(&mut detrended.iter().map(|p| p.1));
    let remainder = variance(&mut detrended.iter().map(|&(x, d)| d - season[x % 7]));
    if total <= 0.0 || 1.0 - remainder / total < MIN_SEASON_STRENGTH {
        return Vec::new();
    }
    season
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holt_with_no_damping_follows_a_line_exactly() {
        let y: Vec<f64> = (0..30).map(|x| 5.0 + 2.0 * x as f64).collect();
        let (level, trend, sse, _) = holt_run(&y, 0.5, 0.1, 1.0);
        assert!((level - 63.0).abs() < 1e-9 && (trend - 2.0).abs() < 1e-9 && sse < 1e-12);
        assert!((damped_sum(0.5, 2.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_weekly_pattern_is_found_and_noise_is_not() {
        let weekly: Vec<f64> = (0..42)
            .map(|x| 10.0 * x as f64 + [5.0, -5.0, 0.0, 0.0, 0.0, 0.0, 0.0][x % 7])
            .collect();
        let s = weekly_season(&weekly);
        assert!(
            (s[0] - 5.0).abs() < 1e-9 && (s[1] + 5.0).abs() < 1e-9,
            "{s:?}"
        );
        let line: Vec<f64> = (0..42).map(|x| 3.0 * x as f64).collect();
        assert!(weekly_season(&line).is_empty());
        assert!(weekly_season(&line[..20]).is_empty());
    }
}
