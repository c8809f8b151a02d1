//! A histogram rebuilt from a summary, for sources that report quantiles instead of samples
//! (D1's `d1QueriesAdaptiveGroups`: a count, a sum and p50/p95/p99 per query and bucket).
//!
//! This is an approximation, and the only one the monitor makes: the rebuilt histogram has
//! exactly `count` samples, its nearest-rank p50, p95 and p99 are the reported ones (within
//! the histogram's bucket error), and its mean is the reported mean whenever the quantiles
//! allow it. Everything else about the shape is a guess: samples between two quantiles sit
//! at their midpoint, samples below p50 at one value, samples above p99 at one value. So
//! quantiles of *merged* buckets (an hour of minutes, a day of queries) are estimates, not
//! Cloudflare's numbers, and other quantiles (p75, max) carry no information.
use super::Histogram;

impl Histogram {
    /// Rebuilds `count` samples with the given total and quantiles (milliseconds). Quantiles
    /// out of order are put in order; a NaN or negative one counts as 0.
    pub fn from_summary(count: u64, sum_ms: f64, p50: f64, p95: f64, p99: f64) -> Histogram {
        let mut h = Histogram::new();
        if count == 0 {
            return h;
        }
        let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let sum = clean(sum_ms);
        if count == 1 {
            // One sample: the sum is exact.
            h.record(sum);
            return h;
        }
        let p50 = clean(p50);
        let p95 = clean(p95).max(p50);
        let p99 = clean(p99).max(p95);
        let rank = |q: f64| ((q * count as f64).ceil() as u64).clamp(1, count);
        let (r50, r95, r99) = (rank(0.50), rank(0.95), rank(0.99));
        // Sorted, the samples are: `below` at L, p50 at rank r50, `mid1` at M1, p95 at r95,
        // `mid2` at M2, p99 at r99, `tail` at T. Ranks that coincide share one anchor.
        let below = r50 - 1;
        let has95 = r95 > r50;
        let has99 = r99 > r95;
        let mid1 = r95.saturating_sub(r50 + 1);
        let mid2 = r99.saturating_sub(r95 + 1);
        let tail = count - r99;
        let m1 = (p50 + p95) / 2.0;
        let m2 = (p95 + p99) / 2.0;
        let anchors = p50 + if has95 { p95 } else { 0.0 } + if has99 { p99 } else { 0.0 };
        let fixed = anchors + mid1 as f64 * m1 + mid2 as f64 * m2;
        // The mean decides where the unconstrained ends go: the tail absorbs an excess, the
        // samples below p50 a shortfall; neither may cross its quantile.
        let (mut low, mut high) = (p50, p99);
        let residual = sum - fixed - below as f64 * low - tail as f64 * high;
        if residual > 0.0 && tail > 0 {
            high += residual / tail as f64;
        } else if residual < 0.0 && below > 0 {
            low = (low + residual / below as f64).max(0.0);
        }
        h.record_n(low, below);
        h.record(p50);
        h.record_n(m1, mid1);
        if has95 {
            h.record(p95);
        }
        h.record_n(m2, mid2);
        if has99 {
            h.record(p99);
        }
        h.record_n(high, tail);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::super::RELATIVE_ERROR;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * RELATIVE_ERROR + 1e-9
    }

    /// `(count, sum, p50, p95, p99)`: the rebuilt histogram keeps the count and quantiles,
    /// and the mean unless `mean_kept` is false.
    fn check(count: u64, sum: f64, p: [f64; 3], mean_kept: bool) {
        let h = Histogram::from_summary(count, sum, p[0], p[1], p[2]);
        assert_eq!(h.count(), count, "count");
        let [q50, q95, q99] = h.quantiles([0.5, 0.95, 0.99]);
        for (got, want) in [(q50, p[0]), (q95, p[1]), (q99, p[2])] {
            let got = got.unwrap();
            assert!(
                close(got, want),
                "{count} {sum} {p:?}: quantile {got} vs {want}"
            );
        }
        let mean: f64 = h
            .buckets()
            .map(|(lo, hi, c)| (lo + hi) / 2.0 * c as f64)
            .sum::<f64>()
            / count as f64;
        if mean_kept {
            let want = sum / count as f64;
            assert!(
                (mean - want).abs() <= want * 2.0 * RELATIVE_ERROR + 1e-6,
                "{count} {sum} {p:?}: mean {mean} vs {want}"
            );
        }
    }

    #[test]
    fn counts_and_quantiles_survive_and_the_mean_when_possible() {
        check(100, 150.0, [1.0, 3.0, 5.0], true);
        check(1_000, 2_000.0, [0.8, 6.0, 9.0], true);
        // A heavy tail beyond p99 carries the excess.
        check(1_000, 50_000.0, [1.0, 4.0, 10.0], true);
        // A mean below what the quantiles imply: the lower half moves down.
        check(200, 250.0, [1.0, 2.0, 3.0], true);
        // One the quantiles cannot reach: the lower half stops at zero.
        check(200, 120.0, [1.0, 2.0, 3.0], false);
        // Few samples: ranks coincide.
        check(2, 3.0, [1.0, 2.0, 2.0], false);
        check(3, 6.0, [2.0, 3.0, 3.0], false);
        check(20, 40.0, [2.0, 2.0, 2.0], true);
    }

    #[test]
    fn one_sample_is_its_sum_and_nothing_is_empty() {
        let h = Histogram::from_summary(1, 4.5, 9.0, 9.0, 9.0);
        assert_eq!(h.min(), Some(4.5));
        assert!(Histogram::from_summary(0, 10.0, 1.0, 2.0, 3.0).is_empty());
    }

    #[test]
    fn garbage_in_stays_in_range() {
        let h = Histogram::from_summary(10, f64::NAN, -1.0, f64::INFINITY, 2.0);
        assert_eq!(h.count(), 10);
        assert!(h.max().unwrap() <= 2.0 + 1e-9);
        // Quantiles out of order are sorted.
        let h = Histogram::from_summary(100, 100.0, 5.0, 1.0, 0.5);
        assert!(close(h.quantile(0.99).unwrap(), 5.0));
    }
}
