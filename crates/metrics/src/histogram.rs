//! The latency histogram behind every rollup: log-linear buckets (HDR-style, 64 linear
//! sub-buckets per power of two of microseconds) from 1 µs to 2^32 µs (≈ 71 min), so any
//! quantile is within [`RELATIVE_ERROR`] (1/128 ≈ 0.78 %) of the exact sample quantile.
//! Merging is plain bucket addition (associative, commutative, lossless), which is what lets
//! minute rollups fold into hours and days. Owns the sparse byte format stored in SQLite BLOBs;
//! it must not know about rollups, tables or time.

/// log2 of the linear sub-buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Powers of two covered: 2^0 µs … 2^32 µs.
const OCTAVES: usize = 32;
mod codec;
mod reconstruct;

#[cfg(test)]
mod accuracy_tests;

/// Number of buckets.
pub const BUCKETS: usize = OCTAVES * SUB_BUCKETS;
/// Stated bound on the relative error of [`Histogram::quantile`] for values in 1 µs … 1 h:
/// half a bucket's width over its lower edge, 1/128 ≈ 0.78 %.
pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;
/// Smallest value told apart, in milliseconds (1 µs); smaller values share the first bucket.
pub const MIN_MS: f64 = 0.001;
/// Largest value told apart, in milliseconds (just under 2^32 µs); larger ones are clamped.
pub const MAX_MS: f64 = 4_294_967.295;

/// Why a stored histogram could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HistogramError {
    #[error("histogram blob is truncated")]
    Truncated,
    #[error("histogram blob has unknown format version {0}")]
    Version(u8),
    #[error("histogram blob names bucket {0}, beyond the last ({max})", max = BUCKETS - 1)]
    Bucket(u64),
    #[error("histogram blob has {0} bytes after its last bucket")]
    Trailing(usize),
    #[error("histogram blob counts overflow")]
    Overflow,
}

/// A latency histogram in milliseconds. Stores counts for the range of buckets between the
/// lowest and highest recorded value (never a zero at either end), plus the exact min and max.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    offset: usize,
    counts: Vec<u64>,
    total: u64,
    min_ms: f64,
    max_ms: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            offset: 0,
            counts: Vec::new(),
            total: 0,
            min_ms: f64::INFINITY,
            max_ms: f64::NEG_INFINITY,
        }
    }
}

/// The bucket of a duration in milliseconds (NaN and negatives count as 0).
pub fn bucket_of(ms: f64) -> usize {
    let us = (ms * 1000.0).clamp(1.0, MAX_MS * 1000.0);
    let us = if us.is_nan() { 1.0 } else { us };
    // The f64 exponent is the power of two; its top mantissa bits are the linear sub-bucket.
    let bits = us.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as usize - 1023;
    let sub = ((bits >> (52 - SUB_BITS)) as usize) & (SUB_BUCKETS - 1);
    exp * SUB_BUCKETS + sub
}

/// The `[lower, upper)` edges of a bucket in milliseconds.
pub fn bucket_bounds(index: usize) -> (f64, f64) {
    let exp = (index / SUB_BUCKETS) as u64;
    let sub = (index % SUB_BUCKETS) as f64;
    // 2^exp, built from its bits (exp < 32).
    let base = f64::from_bits((exp + 1023) << 52) / 1000.0;
    let width = base / SUB_BUCKETS as f64;
    (base + sub * width, base + (sub + 1.0) * width)
}

fn representative(index: usize) -> f64 {
    let (lo, hi) = bucket_bounds(index);
    (lo + hi) / 2.0
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one duration in milliseconds.
    pub fn record(&mut self, ms: f64) {
        self.record_n(ms, 1);
    }

    /// Records `n` occurrences of a duration in milliseconds.
    pub fn record_n(&mut self, ms: f64, n: u64) {
        if n == 0 {
            return;
        }
        let ms = if ms.is_nan() || ms < 0.0 {
            0.0
        } else {
            ms.min(MAX_MS)
        };
        let i = bucket_of(ms);
        self.cover(i, i);
        self.counts[i - self.offset] += n;
        self.total += n;
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// Back to empty, keeping the allocation.
    pub fn clear(&mut self) {
        let mut counts = std::mem::take(&mut self.counts);
        counts.clear();
        *self = Histogram {
            counts,
            ..Histogram::default()
        };
    }

    /// Grows the stored range to include buckets `lo..=hi`.
    fn cover(&mut self, lo: usize, hi: usize) {
        if self.counts.is_empty() {
            self.offset = lo;
            self.counts.resize(hi - lo + 1, 0);
            return;
        }
        if lo < self.offset {
            let extra = self.offset - lo;
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.offset = lo;
        }
        let end = self.offset + self.counts.len();
        if hi >= end {
            self.counts.resize(hi + 1 - self.offset, 0);
        }
    }

    /// Adds every count of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        self.cover(other.offset, other.offset + other.counts.len() - 1);
        let start = other.offset - self.offset;
        for (dst, src) in self.counts[start..].iter_mut().zip(&other.counts) {
            *dst += src;
        }
        self.total += other.total;
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// Takes `other`'s counts back out, bucket by bucket and never below zero: the inverse
    /// of [`Histogram::merge`] for a histogram merged in earlier (D1 analytics replace a
    /// re-fetched bucket this way). Counts come back exactly; the exact min and max cannot,
    /// so when the bucket that held one empties it becomes the edge of the nearest bucket
    /// still holding counts.
    pub fn subtract(&mut self, other: &Histogram) {
        if other.total == 0 || self.total == 0 {
            return;
        }
        let end = self.offset + self.counts.len();
        for (k, &c) in other.counts.iter().enumerate() {
            let i = other.offset + k;
            if i < self.offset || i >= end {
                continue;
            }
            let slot = &mut self.counts[i - self.offset];
            let taken = (*slot).min(c);
            *slot -= taken;
            self.total -= taken;
        }
        let (Some(first), Some(last)) = (
            self.counts.iter().position(|c| *c > 0),
            self.counts.iter().rposition(|c| *c > 0),
        ) else {
            self.clear();
            return;
        };
        self.counts.truncate(last + 1);
        self.counts.drain(..first);
        self.offset += first;
        let last = self.offset + self.counts.len() - 1;
        if bucket_of(self.min_ms) < self.offset {
            self.min_ms = bucket_bounds(self.offset).0;
        }
        if bucket_of(self.max_ms) > last {
            self.max_ms = representative(last);
        }
    }

    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Exact smallest recorded duration.
    pub fn min(&self) -> Option<f64> {
        (self.total > 0).then_some(self.min_ms)
    }

    /// Exact largest recorded duration.
    pub fn max(&self) -> Option<f64> {
        (self.total > 0).then_some(self.max_ms)
    }

    /// The `q` quantile (0 ≤ q ≤ 1) by nearest rank: the value at rank ⌈q·n⌉, within
    /// [`RELATIVE_ERROR`] for values in range. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let v = representative(self.offset + k);
                return Some(v.clamp(self.min_ms, self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// Several quantiles in one pass (same answers as [`Histogram::quantile`] for each).
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let mut out = [None; N];
        if self.total == 0 {
            return out;
        }
        let rank = |q: f64| {
            let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
            ((q * self.total as f64).ceil() as u64).clamp(1, self.total)
        };
        let ranks: [u64; N] = std::array::from_fn(|i| rank(qs[i]));
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_by_key(|&i| ranks[i]);
        let (mut seen, mut next) = (0u64, 0usize);
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            while next < N && seen >= ranks[order[next]] {
                let v = representative(self.offset + k);
                out[order[next]] = Some(v.clamp(self.min_ms, self.max_ms));
                next += 1;
            }
            if next == N {
                break;
            }
        }
        out
    }

    /// Non-empty buckets as `(lower_ms, upper_ms, count)`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, &c)| {
                let (lo, hi) = bucket_bounds(self.offset + k);
                (lo, hi, c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_within_the_stated_error_of_its_values() {
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            let mid = representative(i);
            assert!(lo < hi);
            assert!((mid - lo) / lo <= RELATIVE_ERROR + 1e-12, "bucket {i}");
            assert_eq!(bucket_of(lo), i, "lower edge of {i}");
            assert_eq!(bucket_of(mid), i, "middle of {i}");
            if i + 1 < BUCKETS {
                assert_eq!(bucket_bounds(i + 1).0, hi, "buckets {i} and next touch");
            }
        }
        assert!(
            bucket_bounds(BUCKETS - 1).1 >= 3_600_000.0,
            "covers one hour"
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = Histogram::new();
        for v in [f64::NAN, -1.0, 0.0, 0.0001, 1e12, f64::INFINITY] {
            h.record(v);
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.min(), Some(0.0));
        assert_eq!(h.max(), Some(MAX_MS));
    }

    #[test]
    fn quantiles_of_a_small_sample() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100 {
            h.record(v as f64);
        }
        for (q, exact) in [
            (0.0, 1.0),
            (0.5, 50.0),
            (0.95, 95.0),
            (0.99, 99.0),
            (1.0, 100.0),
        ] {
            let got = h.quantile(q).unwrap();
            assert!((got - exact).abs() / exact <= RELATIVE_ERROR, "q{q}: {got}");
        }
    }

    #[test]
    fn quantiles_in_one_pass_agree_with_one_at_a_time() {
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v as f64 * 0.37);
        }
        let qs = [0.99, 0.5, 0.0, 1.0, 0.95];
        let all = h.quantiles(qs);
        for (q, got) in qs.iter().zip(all) {
            assert_eq!(got, h.quantile(*q));
        }
        assert_eq!(Histogram::new().quantiles([0.5]), [None]);
    }

    #[test]
    fn subtract_undoes_a_merge() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for v in [0.5, 2.0, 3.0] {
            a.record(v);
        }
        b.record(0.01);
        b.record_n(700.0, 3);
        let before = a.clone();
        a.merge(&b);
        a.subtract(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(
            a.quantiles([0.0, 0.5, 1.0]),
            before.quantiles([0.0, 0.5, 1.0])
        );
        assert_eq!(
            a.buckets().collect::<Vec<_>>(),
            before.buckets().collect::<Vec<_>>()
        );
        // The exact extremes of what is left are lost, but stay inside their buckets.
        let (lo, _) = bucket_bounds(bucket_of(0.5));
        assert_eq!(a.min(), Some(lo));
        assert!(a.max().unwrap() < bucket_bounds(bucket_of(3.0)).1);
        a.subtract(&before);
        assert!(a.is_empty());
        assert_eq!(a, Histogram::new());
        // More than is there: nothing goes below zero.
        let mut c = Histogram::new();
        c.record(1.0);
        c.subtract(&b);
        assert_eq!(c.count(), 1);
        assert_eq!(Histogram::from_bytes(&c.to_bytes()).unwrap(), c);
    }

    #[test]
    fn merge_grows_the_range_both_ways() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record(10.0);
        b.record(0.01);
        b.record(5_000.0);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), Some(0.01));
        assert_eq!(a.max(), Some(5_000.0));
        let mut c = Histogram::new();
        c.merge_bytes(&b.to_bytes()).unwrap();
        c.merge_bytes(&Histogram::new().to_bytes()).unwrap();
        assert_eq!(c, b);
    }
}
