//! "Days until limit": fits a daily series with least squares (a straight line) and with a
//! damped-trend Holt model, keeps the one with the smaller error on a holdout of the last
//! ~20 % of days (the line wins unless Holt is clearly better), and reports the day the
//! projection reaches the limit as a range from the fit's residual spread. A clear weekly
//! pattern (three weeks of data or more) is removed before fitting and added back to the
//! projection, so a weekday peak crosses first. A trend that is flat, falling or not
//! significant (slope under 3 standard errors) is "not within horizon": a capacity alarm
//! must be earned. Pure arithmetic; must not read stores or know plans.
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;
mod trend;

use trend::{choose, damped_sum, linear, weekly_season};

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
            min_trend_t: 4.0,
        }
    }
}

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
    /// Weekly offsets added to the trend (index: day number since the first day, mod 7);
    /// empty when the series shows no weekly pattern.
    pub season: Vec<f64>,
}

impl Fitted {
    /// Expected value `h` days after the last observed day.
    pub fn expected(&self, h: f64) -> f64 {
        let trend = match self.model {
            Model::Linear => self.a + self.b * (self.n as f64 - 1.0 + h),
            Model::DampedTrend => self.a + self.b * damped_sum(self.phi, h),
        };
        let day = (self.n as i64 - 1 + h.round() as i64).rem_euclid(7) as usize;
        trend + self.season.get(day).copied().unwrap_or(0.0)
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
    Reached {
        since: NaiveDate,
    },
    Within(Crossing),
    NotWithinHorizon {
        horizon_days: i64,
    },
    TooFewPoints {
        points: usize,
        needed: usize,
    },
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
                None => format!(
                    "in {} days ({}–beyond horizon)",
                    c.days_until, c.days_until_min
                ),
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
                Some((
                    last.checked_add_days(chrono::Days::new(h as u64))?,
                    e,
                    e - z * s,
                    e + z * s,
                ))
            })
            .collect()
    }
}

/// Forecasts when `series` (one value per day; gaps interpolated, duplicates: last wins)
/// reaches `limit`.
pub fn forecast(series: &[(NaiveDate, f64)], limit: f64, opts: &ForecastOptions) -> Forecast {
    let (first_day, y) = regularise(series, opts.lookback_days);
    let last_day = first_day
        .and_then(|d| d.checked_add_days(chrono::Days::new(y.len().saturating_sub(1) as u64)));
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
    let season = weekly_season(&y);
    let adjusted: Vec<f64> = if season.is_empty() {
        y.clone()
    } else {
        y.iter()
            .enumerate()
            .map(|(x, v)| v - season[x % 7])
            .collect()
    };
    let fit = Fitted {
        season,
        ..choose(&adjusted)
    };
    let line = linear(&adjusted);
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
