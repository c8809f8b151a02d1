//! Rollup shapes shared by writing and reading: the four resolutions (minute, hour, day,
//! Monday-based week) and their tables, the sums one rollup row holds, a pre-aggregated [`Rollup`] input (for
//! sources that already aggregate, such as D1's analytics or the demo's history), and the
//! plan that covers a time window with the fewest rows. Pure; no SQL is run here.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::QueryEvent;
use super::histogram::Histogram;

/// The time span of one rollup row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
    /// Monday 00:00 UTC to the next Monday.
    Week,
}

/// Unix seconds of a Monday 00:00 UTC (1970-01-05): weeks are aligned to it.
const MONDAY: i64 = 4 * 86_400;

impl Resolution {
    pub const ALL: [Resolution; 4] = [
        Resolution::Minute,
        Resolution::Hour,
        Resolution::Day,
        Resolution::Week,
    ];

    /// Length in seconds.
    pub const fn secs(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
            Resolution::Week => 7 * 86_400,
        }
    }

    /// Start of the row holding time `t` (unix seconds).
    pub const fn floor(self, t: i64) -> i64 {
        let shift = if matches!(self, Resolution::Week) {
            MONDAY
        } else {
            0
        };
        (t - shift).div_euclid(self.secs()) * self.secs() + shift
    }

    /// Start of the first row at or after `t`.
    pub const fn ceil(self, t: i64) -> i64 {
        let f = self.floor(t);
        if f == t { t } else { f + self.secs() }
    }

    /// Per-fingerprint table.
    pub(crate) const fn fp_table(self) -> &'static str {
        match self {
            Resolution::Minute => "fp_minute",
            Resolution::Hour => "fp_hour",
            Resolution::Day => "fp_day",
            Resolution::Week => "fp_week",
        }
    }

    /// Per-environment table (all fingerprints together).
    pub(crate) const fn env_table(self) -> &'static str {
        match self {
            Resolution::Minute => "env_minute",
            Resolution::Hour => "env_hour",
            Resolution::Day => "env_day",
            Resolution::Week => "env_week",
        }
    }
}

/// The sums one rollup row holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sums {
    pub count: u64,
    pub errors: u64,
    pub sum_ms: f64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_returned: u64,
    pub hist: Histogram,
}

impl Sums {
    pub fn add_event(&mut self, e: &QueryEvent) {
        self.count += 1;
        self.errors += u64::from(e.error.is_some());
        self.sum_ms += e.duration_ms;
        self.rows_read += e.rows_read;
        self.rows_written += e.rows_written;
        self.rows_returned += e.rows_returned;
        self.hist.record(e.duration_ms);
    }

    /// Back to empty, keeping the histogram's allocation.
    pub fn clear(&mut self) {
        let mut hist = std::mem::take(&mut self.hist);
        hist.clear();
        *self = Sums {
            hist,
            ..Sums::default()
        };
    }

    pub fn merge(&mut self, o: &Sums) {
        self.count += o.count;
        self.errors += o.errors;
        self.sum_ms += o.sum_ms;
        self.rows_read += o.rows_read;
        self.rows_written += o.rows_written;
        self.rows_returned += o.rows_returned;
        self.hist.merge(&o.hist);
    }
}

/// A pre-aggregated rollup for one (environment, fingerprint, minute or hour), for sources
/// that aggregate before d1ops sees them. `count` should equal `histogram.count()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    /// Start of the span; floored to `resolution`.
    pub start: DateTime<Utc>,
    /// `Minute` or `Hour` (an hour rollup fills the hour, day and week tiers only). `Day`
    /// and `Week` are treated as `Hour` at the span's start.
    pub resolution: Resolution,
    pub env: String,
    /// Normalised SQL text.
    pub fingerprint: String,
    pub count: u64,
    pub errors: u64,
    pub sum_ms: f64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_returned: u64,
    pub histogram: Histogram,
}

impl Rollup {
    /// Adds `other`'s counts, sums and histogram to this rollup (its span and keys stay).
    pub(crate) fn merge(&mut self, other: &Rollup) {
        self.count += other.count;
        self.errors += other.errors;
        self.sum_ms += other.sum_ms;
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
        self.rows_returned += other.rows_returned;
        self.histogram.merge(&other.histogram);
    }

    pub(crate) fn sums(&self) -> Sums {
        Sums {
            count: self.count,
            errors: self.errors,
            sum_ms: self.sum_ms,
            rows_read: self.rows_read,
            rows_written: self.rows_written,
            rows_returned: self.rows_returned,
            hist: self.histogram.clone(),
        }
    }
}

/// One stretch of a window read from one resolution: rows with `from <= t < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub res: Resolution,
    pub from: i64,
    pub to: i64,
}

/// Covers `[from, to)` (unix seconds, rounded outward to whole minutes) with the fewest rows:
/// whole weeks, days and hours from their tiers, minutes for the ragged edges. When nothing
/// was recorded at or after `to` (`data_end <= to`), the window is extended to the end of its
/// week — exact, and it lets "up to now" read this week's row instead of its days, hours and
/// minutes. Minute edges before `minutes_from` (minute rows already dropped) are read from
/// the hour that contains them instead, so they count that whole hour.
pub(crate) fn cover(from: i64, to: i64, minutes_from: i64, data_end: i64) -> Vec<Span> {
    let from = Resolution::Minute.floor(from);
    let mut to = Resolution::Minute.ceil(to);
    if from < to && data_end <= to {
        to = Resolution::Week.ceil(to);
    }
    let mut spans: Vec<Span> = Vec::new();
    let mut t = from;
    while t < to {
        let res = [Resolution::Week, Resolution::Day, Resolution::Hour]
            .into_iter()
            .find(|r| r.floor(t) == t && t + r.secs() <= to)
            .unwrap_or(Resolution::Minute);
        let end = if res == Resolution::Minute {
            // Minutes run to the next hour boundary or the end, whichever is first.
            (Resolution::Hour.floor(t) + 3_600).min(to)
        } else {
            t + res.secs()
        };
        push(
            &mut spans,
            Span {
                res,
                from: t,
                to: end,
            },
        );
        t = end;
    }
    for s in &mut spans {
        if s.res == Resolution::Minute && s.from < minutes_from {
            let hour = Resolution::Hour.floor(s.from);
            *s = Span {
                res: Resolution::Hour,
                from: hour,
                to: hour + 3_600,
            };
        }
    }
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        push(&mut merged, s);
    }
    merged
}

fn push(spans: &mut Vec<Span>, s: Span) {
    match spans.last_mut() {
        Some(last) if last.res == s.res && last.to == s.from => last.to = s.to,
        _ => spans.push(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resolution::*;

    const H: i64 = 3_600;
    const D: i64 = 86_400;

    fn check(from: i64, to: i64, minutes_from: i64, expected: &[(Resolution, i64, i64)]) {
        let got: Vec<_> = cover(from, to, minutes_from, i64::MAX)
            .into_iter()
            .map(|s| (s.res, s.from, s.to))
            .collect();
        assert_eq!(got, expected, "cover({from}, {to}, {minutes_from})");
    }

    #[test]
    fn windows_use_the_coarsest_rows_that_fit() {
        check(0, 0, i64::MIN, &[]);
        check(0, 600, i64::MIN, &[(Minute, 0, 600)]);
        check(30, 90, i64::MIN, &[(Minute, 0, 120)]);
        check(0, 2 * D, i64::MIN, &[(Day, 0, 2 * D)]);
        check(
            D - H - 60,
            3 * D + H + 120,
            i64::MIN,
            &[
                (Minute, D - H - 60, D - H),
                (Hour, D - H, D),
                (Day, D, 3 * D),
                (Hour, 3 * D, 3 * D + H),
                (Minute, 3 * D + H, 3 * D + H + 120),
            ],
        );
    }

    #[test]
    fn a_window_past_the_last_data_reads_whole_days() {
        let got: Vec<_> = cover(D - H - 60, 3 * D + H + 120, i64::MIN, 3 * D + H + 60)
            .into_iter()
            .map(|s| (s.res, s.from, s.to))
            .collect();
        assert_eq!(
            got,
            vec![
                (Minute, D - H - 60, D - H),
                (Hour, D - H, D),
                (Day, D, 4 * D)
            ]
        );
        // Data after the window's end: the edges stay exact.
        assert_eq!(
            cover(0, 90, i64::MIN, 180),
            vec![Span {
                res: Minute,
                from: 0,
                to: 120
            }]
        );
        // The first Monday is 1970-01-05 (day 4): up to it, whole days.
        assert_eq!(
            cover(0, 90, i64::MIN, 120),
            vec![Span {
                res: Day,
                from: 0,
                to: 4 * D
            }]
        );
        assert!(cover(60, 60, i64::MIN, 0).is_empty());
    }

    #[test]
    fn whole_monday_weeks_come_from_the_week_tier() {
        const M: i64 = 4 * D; // Monday 1970-01-05
        assert_eq!(Week.floor(M + 3 * D), M);
        assert_eq!(Week.floor(M - 1), M - 7 * D);
        assert_eq!((Week.ceil(M + 1), Week.ceil(M)), (M + 7 * D, M));
        check(
            M - H - 60,
            M + 14 * D + D + 30,
            i64::MIN,
            &[
                (Minute, M - H - 60, M - H),
                (Hour, M - H, M),
                (Week, M, M + 14 * D),
                (Day, M + 14 * D, M + 15 * D),
                (Minute, M + 15 * D, M + 15 * D + 60),
            ],
        );
        // Up to "now" (no later data): the current week is one row.
        let got: Vec<_> = cover(M + 2 * D, M + 9 * D + 7, i64::MIN, M + 9 * D + 60)
            .into_iter()
            .map(|s| (s.res, s.from, s.to))
            .collect();
        assert_eq!(
            got,
            vec![(Day, M + 2 * D, M + 7 * D), (Week, M + 7 * D, M + 14 * D)]
        );
    }

    #[test]
    fn dropped_minutes_widen_to_their_hour() {
        check(
            D - H - 60,
            D + 120,
            D,
            &[(Hour, D - 2 * H, D), (Minute, D, D + 120)],
        );
        check(H + 60, H + 120, 10 * D, &[(Hour, H, 2 * H)]);
    }
}
