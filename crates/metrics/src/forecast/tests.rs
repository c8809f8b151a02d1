//! Forecast behaviour on synthetic series with known answers: a line crosses on its day
//! (with and without noise), flat / falling / noisy-flat series raise no alarm, weekly
//! seasonality on growth still crosses near the true day, plus edge cases.
use chrono::Duration;

use super::*;
use crate::testing::Rng;

#[test]
fn gaps_are_interpolated_and_duplicates_take_the_last() {
    let d = |n: u32| NaiveDate::from_ymd_opt(2025, 1, n).unwrap();
    let (first, y) = regularise(&[(d(5), 50.0), (d(1), 10.0), (d(3), 0.0), (d(3), 30.0)], 90);
    assert_eq!(first, Some(d(1)));
    assert_eq!(y, vec![10.0, 20.0, 30.0, 40.0, 50.0]);
    let (first, y) = regularise(&[(d(1), 1.0), (d(9), 9.0)], 3);
    assert_eq!((first, y), (Some(d(9)), vec![9.0]));
}

fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
}

fn series(n: i64, mut f: impl FnMut(i64) -> f64) -> Vec<(NaiveDate, f64)> {
    (0..n).map(|x| (day0() + Duration::days(x), f(x))).collect()
}

fn crossing(s: &[(NaiveDate, f64)], limit: f64) -> Outcome {
    forecast(s, limit, &ForecastOptions::default()).outcome
}

/// The expected crossing is within `tolerance` days of `true_x` days after day 0.
fn assert_crosses_near(outcome: &Outcome, true_x: i64, tolerance: i64) {
    let Outcome::Within(c) = outcome else {
        panic!("expected a crossing, got {outcome:?}");
    };
    let got = (c.expected - day0()).num_days();
    assert!(
        (got - true_x).abs() <= tolerance,
        "crossing at day {got}, truth {true_x}"
    );
    assert!(c.pessimistic <= c.expected);
    assert!(c.optimistic.is_none_or(|o| o >= c.expected));
}

#[test]
fn a_known_line_crosses_on_its_day() {
    // 1,000 + 50/day reaches 6,000 on day 100.
    let exact = series(60, |x| 1_000.0 + 50.0 * x as f64);
    let f = forecast(&exact, 6_000.0, &ForecastOptions::default());
    assert_crosses_near(&f.outcome, 100, 1);
    assert_eq!(f.days_until(), Some(41));
    assert!(f.describe().starts_with("in 41 days"), "{}", f.describe());
    for seed in 0..5 {
        let mut rng = Rng(seed);
        let noisy = series(60, |x| 1_000.0 + 50.0 * x as f64 + 40.0 * rng.normal());
        let outcome = crossing(&noisy, 6_000.0);
        assert_crosses_near(&outcome, 100, 1);
        let Outcome::Within(c) = outcome else {
            unreachable!()
        };
        assert!(c.days_until_min < c.days_until, "noise gives a range");
    }
}

#[test]
fn flat_falling_and_noisy_series_raise_no_alarm() {
    assert!(matches!(
        crossing(&series(60, |_| 5_000.0), 6_000.0),
        Outcome::NotWithinHorizon { .. }
    ));
    assert!(matches!(
        crossing(&series(60, |x| 5_000.0 - 20.0 * x as f64), 6_000.0),
        Outcome::NotWithinHorizon { .. }
    ));
    for seed in 0..50 {
        let mut rng = Rng(seed);
        let noisy = series(45, |_| 5_000.0 + 500.0 * rng.normal());
        let outcome = crossing(&noisy, 7_000.0);
        assert!(
            matches!(outcome, Outcome::NotWithinHorizon { .. }),
            "seed {seed}: {outcome:?}"
        );
    }
}

#[test]
fn weekly_seasonality_on_growth_still_crosses_near_the_true_date() {
    let truth = |x: i64| {
        let week = (2.0 * std::f64::consts::PI * x as f64 / 7.0).sin();
        2_000.0 + 40.0 * x as f64 + 300.0 * week
    };
    // The trend alone reaches 6,700 on day 117.5; the weekly peak gets there first, on day
    // 113 (by 54), while the peak before (day 107) stays 128 under: a clear first day.
    const LIMIT: f64 = 6_700.0;
    let first_day = (56..).find(|x| truth(*x) >= LIMIT).unwrap();
    assert_eq!(first_day, 113);
    for seed in 0..5 {
        let mut rng = Rng(100 + seed);
        let s = series(56, |x| truth(x) + 30.0 * rng.normal());
        assert_crosses_near(&crossing(&s, LIMIT), first_day, 2);
    }
    // Without noise the pattern is found exactly and the day is exact.
    let exact = series(56, truth);
    let f = forecast(&exact, LIMIT, &ForecastOptions::default());
    assert_eq!(f.fit.as_ref().map(|f| f.season.len()), Some(7));
    assert_crosses_near(&f.outcome, first_day, 0);
}

#[test]
fn reached_too_short_and_gappy_series() {
    let over = series(20, |x| 100.0 * x as f64);
    let f = forecast(&over, 1_750.0, &ForecastOptions::default());
    assert_eq!(
        f.outcome,
        Outcome::Reached {
            since: day0() + Duration::days(18)
        }
    );
    assert_eq!(f.days_until(), Some(0));
    assert!(matches!(
        crossing(&series(3, |x| x as f64), 10.0),
        Outcome::TooFewPoints { points: 3, .. }
    ));
    assert!(matches!(
        crossing(&[], 10.0),
        Outcome::TooFewPoints { points: 0, .. }
    ));
    // Every third day missing: the line is still found.
    let gappy: Vec<_> = series(60, |x| 1_000.0 + 50.0 * x as f64)
        .into_iter()
        .filter(|(d, _)| (*d - day0()).num_days() % 3 != 1)
        .collect();
    assert_crosses_near(&crossing(&gappy, 6_000.0), 100, 1);
    let f = forecast(&gappy, 6_000.0, &ForecastOptions::default());
    let projection = f.projection(5);
    assert_eq!(projection.len(), 5);
    assert!(projection.iter().all(|(_, e, lo, hi)| lo <= e && e <= hi));
}

#[test]
fn a_recent_change_of_trend_is_followed_by_the_damped_trend_model() {
    for seed in 0..5 {
        let mut rng = Rng(seed);
        // Flat for 40 days, then +100/day: reaches 6,000 on day 90. A line through all 60
        // days would say ~day 120.
        let s = series(60, |x| {
            1_000.0 + 100.0 * (x - 40).max(0) as f64 + 20.0 * rng.normal()
        });
        let f = forecast(&s, 6_000.0, &ForecastOptions::default());
        assert_eq!(f.fit.as_ref().map(|f| f.model), Some(Model::DampedTrend));
        assert_crosses_near(&f.outcome, 90, 5);
    }
}
