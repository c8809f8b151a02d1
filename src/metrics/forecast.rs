//! "Days until limit": fits a daily series with least squares (a straight line) and with a
//! damped-trend Holt model, keeps the one with the smaller error on a holdout of the last
//! ~20 % of days (the line wins unless Holt is clearly better), and reports the day the
//! projection reaches the limit as a range from the fit's residual spread. A trend that is
//! flat, falling or not significant (slope under 3 standard errors) is "not within horizon":
//! a capacity alarm must be earned. Pure arithmetic; must not read stores or know plans.
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How to forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOptions {
    /// Furthest day ahead a crossing is reported.
    pub horizon_days: i64,
    /// Only the last this many days (by date) are fitted.
    pub lookback_days: i64,
    /// Fewer points than this: no forecast.
    pub min_points: usize,
    /// Width of the range in residual standard deviations (1.28: an 80 % band).
    pub z: f64,
    /// Least t-statistic of the fitted slope that counts as a trend.
    pub min_trend_t: f64,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        ForecastOptions {
            horizon_days: 365,
            lookback_days: 90,
            min_points: 7,
            z: 1.2816,
            min_trend_t: 3.0,
        }
    }
}

/// Holt is chosen only when its holdout error is below this share of the line's.
const HOLT_MARGIN: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    Linear,
    DampedTrend,
}

/// A fitted model over `n` consecutive days (x = 0 … n−1, the last observed day is n−1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    pub model: Model,
    /// Line: intercept and slope. Holt: final level and trend, damping `phi`.
    pub a: f64,
    pub b: f64,
    pub phi: f64,
    /// Residual standard deviation (line) or one-step error deviation (Holt).
    pub sigma: f64,
    /// Root mean square error on the holdout for the chosen model and for the other one.
    pub holdout_rmse: f64,
    pub other_holdout_rmse: f64,
    pub n: usize,
}

impl Fitted {
    /// Expected value `h` days after the last observed day.
    pub fn expected(&self, h: f64) -> f64 {
        match self.model {
            Model::Linear => self.a + self.b * (self.n as f64 - 1.0 + h),
            Model::DampedTrend => self.a + self.b * damped_sum(self.phi, h),
        }
    }

    /// Spread of the value `h` days ahead (the line's prediction-interval shape).
    pub fn spread(&self, h: f64) -> f64 {
        let n = self.n as f64;
        let x_mean = (n - 1.0) / 2.0;
        let sxx = n * (n * n - 1.0) / 12.0;
        let dx = n - 1.0 + h - x_mean;
        self.sigma * (1.0 + 1.0 / n + dx * dx / sxx.max(1.0)).sqrt()
    }

    /// The current trend per day.
    pub fn trend_per_day(&self) -> f64 {
        match self.model {
            Model::Linear => self.b,
            Model::DampedTrend => self.b * self.phi,
        }
    }
}

/// When the limit is reached, as a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Earliest plausible day (projection + spread reaches the limit).
    pub pessimistic: NaiveDate,
    pub expected: NaiveDate,
    /// Latest plausible day; `None` when it is beyond the horizon.
    pub optimistic: Option<NaiveDate>,
    /// Days from the last observed day to `expected`.
    pub days_until: i64,
    pub days_until_min: i64,
    pub days_until_max: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The latest value is at or over the limit, continuously since `since`.
    Reached { since: NaiveDate },
    Within(Crossing),
    NotWithinHorizon { horizon_days: i64 },
    TooFewPoints { points: usize, needed: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub limit: f64,
    pub last_day: Option<NaiveDate>,
    pub last_value: Option<f64>,
    pub outcome: Outcome,
    pub fit: Option<Fitted>,
    /// Width of the range in spreads (from the options).
    pub z: f64,
}

impl Forecast {
    /// Expected days until the limit, when within the horizon (0 when already reached).
    pub fn days_until(&self) -> Option<i64> {
        match &self.outcome {
            Outcome::Reached { .. } => Some(0),
            Outcome::Within(c) => Some(c.days_until),
            _ => None,
        }
    }

    /// One line for humans: "in 42 days (35–60)", "limit reached", "not within horizon".
    pub fn describe(&self) -> String {
        match &self.outcome {
            Outcome::Reached { since } => format!("limit reached (since {since})"),
            Outcome::Within(c) => match c.days_until_max {
                Some(max) => format!("in {} days ({}–{max})", c.days_until, c.days_until_min),
                None => format!("in {} days ({}–beyond horizon)", c.days_until, c.days_until_min),
            },
            Outcome::NotWithinHorizon { horizon_days } => {
                format!("not within horizon ({horizon_days} days)")
            }
            Outcome::TooFewPoints { points, needed } => {
                format!("not enough history ({points} of {needed} days)")
            }
        }
    }

    /// Projected `(day, expected, low, high)` for the next `days` days.
    pub fn projection(&self, days: i64) -> Vec<(NaiveDate, f64, f64, f64)> {
        let (Some(fit), Some(last), z) = (&self.fit, self.last_day, self.z) else {
            return Vec::new();
        };
        (1..=days)
            .filter_map(|h| {
                let (e, s) = (fit.expected(h as f64), fit.spread(h as f64));
                Some((last.checked_add_days(chrono::Days::new(h as u64))?, e, e - z * s, e + z * s))
            })
            .collect()
    }
}

/// Forecasts when `series` (one value per day; gaps interpolated, duplicates: last wins)
/// reaches `limit`.
pub fn forecast(series: &[(NaiveDate, f64)], limit: f64, opts: &ForecastOptions) -> Forecast {
    let (first_day, y) = regularise(series, opts.lookback_days);
    let last_day = first_day.and_then(|d| d.checked_add_days(chrono::Days::new(y.len().saturating_sub(1) as u64)));
    let mut out = Forecast {
        limit,
        last_day,
        last_value: y.last().copied(),
        outcome: Outcome::TooFewPoints {
            points: y.len(),
            needed: opts.min_points.max(4),
        },
        fit: None,
        z: opts.z,
    };
    let (Some(first), Some(last)) = (first_day, last_day) else {
        return out;
    };
    if let Some(&v) = y.last()
        && v >= limit
    {
        let run = y.iter().rev().take_while(|v| **v >= limit).count();
        let since = first + chrono::Days::new((y.len() - run) as u64);
        out.outcome = Outcome::Reached { since };
        return out;
    }
    if y.len() < opts.min_points.max(4) {
        return out;
    }
    let fit = choose(&y);
    let line = linear(&y);
    let significant = line.b > 0.0 && (line.se_b == 0.0 || line.b / line.se_b >= opts.min_trend_t);
    let horizon = opts.horizon_days.max(1);
    let first_at = |f: &dyn Fn(f64) -> f64| (1..=horizon).find(|h| f(*h as f64) >= limit);
    let expected = if significant {
        first_at(&|h| fit.expected(h))
    } else {
        None
    };
    out.outcome = match expected {
        None => Outcome::NotWithinHorizon {
            horizon_days: horizon,
        },
        Some(days) => {
            let early = first_at(&|h| fit.expected(h) + opts.z * fit.spread(h)).unwrap_or(days);
            let late = first_at(&|h| fit.expected(h) - opts.z * fit.spread(h));
            let day = |h: i64| last + chrono::Days::new(h as u64);
            Outcome::Within(Crossing {
                pessimistic: day(early.min(days)),
                expected: day(days),
                optimistic: late.map(|h| day(h.max(days))),
                days_until: days,
                days_until_min: early.min(days),
                days_until_max: late.map(|h| h.max(days)),
            })
        }
    };
    out.fit = Some(fit);
    out
}

/// Dense daily values over the last `lookback` days: sorted, last duplicate wins, gaps
/// linearly interpolated. Returns the first day and the values.
fn regularise(series: &[(NaiveDate, f64)], lookback: i64) -> (Option<NaiveDate>, Vec<f64>) {
    let mut points: Vec<(NaiveDate, f64)> =
        series.iter().copied().filter(|p| p.1.is_finite()).collect();
    points.sort_by_key(|p| p.0);
    points.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    let Some(&(last, _)) = points.last() else {
        return (None, Vec::new());
    };
    let cutoff = last - chrono::Duration::days(lookback.max(1) - 1);
    points.retain(|p| p.0 >= cutoff);
    let first = points[0].0;
    let mut y = Vec::with_capacity(((last - first).num_days() + 1) as usize);
    for pair in points.windows(2) {
        let (d0, v0) = pair[0];
        let (d1, v1) = pair[1];
        let gap = (d1 - d0).num_days();
        for k in 0..gap {
            y.push(v0 + (v1 - v0) * k as f64 / gap as f64);
        }
    }
    y.push(points[points.len() - 1].1);
    (Some(first), y)
}

struct Line {
    a: f64,
    b: f64,
    sigma: f64,
    se_b: f64,
}

fn linear(y: &[f64]) -> Line {
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
    let sigma = if n > 2.0 { (sse / (n - 2.0)).sqrt() } else { 0.0 };
    // Relative to the data's scale, a residual this small is rounding: treat as exact.
    let sigma = if sigma <= 1e-9 * y_mean.abs().max(1.0) { 0.0 } else { sigma };
    let se_b = if sxx > 0.0 { sigma / sxx.sqrt() } else { 0.0 };
    Line { a, b, sigma, se_b }
}

/// Σ φ^k for k = 1..=h (h for φ = 1).
fn damped_sum(phi: f64, h: f64) -> f64 {
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
    }
}

fn rmse(fit: &Fitted, test: &[f64]) -> f64 {
    let sse: f64 = test
        .iter()
        .enumerate()
        .map(|(i, v)| (v - fit.expected(i as f64 + 1.0)).powi(2))
        .sum();
    (sse / test.len().max(1) as f64).sqrt()
}

/// Fits both models on all but the last ~20 %, scores them there, refits the winner on all.
fn choose(y: &[f64]) -> Fitted {
    let k = ((y.len() as f64 * 0.2).round() as usize).clamp(2, y.len() - 2);
    let (train, test) = y.split_at(y.len() - k);
    let line_err = rmse(&line_fit(train), test);
    let holt_err = rmse(&holt(train), test);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_interpolated_and_duplicates_take_the_last() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2025, 1, n).unwrap();
        let (first, y) = regularise(&[(d(5), 50.0), (d(1), 10.0), (d(3), 0.0), (d(3), 30.0)], 90);
        assert_eq!(first, Some(d(1)));
        assert_eq!(y, vec![10.0, 20.0, 30.0, 40.0, 50.0]);
        let (first, y) = regularise(&[(d(1), 1.0), (d(9), 9.0)], 3);
        assert_eq!((first, y), (Some(d(9)), vec![9.0]));
    }

    #[test]
    fn holt_with_no_damping_follows_a_line_exactly() {
        let y: Vec<f64> = (0..30).map(|x| 5.0 + 2.0 * x as f64).collect();
        let (level, trend, sse, _) = holt_run(&y, 0.5, 0.1, 1.0);
        assert!((level - 63.0).abs() < 1e-9 && (trend - 2.0).abs() < 1e-9 && sse < 1e-12);
        assert!((damped_sum(0.5, 2.0) - 0.75).abs() < 1e-12);
    }
}
