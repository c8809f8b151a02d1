//! The stated error holds where it matters: percentiles of 1M generated latencies
//! (lognormal-ish with a slow tail), recorded whole and as 1,000 merged "minute rollups",
//! are within [`RELATIVE_ERROR`] of the exact percentiles; merging is associative and
//! commutative bucket for bucket.
use super::*;
use crate::testing::Rng;

fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn assert_close(got: f64, want: f64, what: &str) {
    let err = (got - want).abs() / want;
    assert!(
        err <= RELATIVE_ERROR + 1e-12,
        "{what}: {got} vs exact {want} ({:.4} % > {:.4} %)",
        err * 100.0,
        RELATIVE_ERROR * 100.0
    );
}

const QS: [f64; 7] = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];

#[test]
fn percentiles_of_a_million_latencies_are_within_the_stated_error() {
    let mut rng = Rng(7);
    let mut values: Vec<f64> = (0..1_000_000).map(|_| rng.latency()).collect();
    let mut whole = Histogram::new();
    // The same sample as 1,000 "minute rollups" merged through their stored bytes.
    let mut merged = Histogram::new();
    for chunk in values.chunks(1_000) {
        let mut part = Histogram::new();
        for &v in chunk {
            whole.record(v);
            part.record(v);
        }
        merged.merge_bytes(&part.to_bytes()).unwrap();
    }
    assert_eq!(merged, whole);
    values.sort_by(f64::total_cmp);
    for q in QS {
        assert_close(
            whole.quantile(q).unwrap(),
            exact(&values, q),
            &format!("q{q}"),
        );
    }
    assert_eq!(whole.count(), 1_000_000);
    assert!(
        whole.to_bytes().len() < 4_096,
        "sparse: {} bytes",
        whole.to_bytes().len()
    );
}

#[test]
fn merging_is_associative_and_commutative_bucket_for_bucket() {
    let mut rng = Rng(11);
    let mut make = |n: usize, scale: f64| {
        let mut h = Histogram::new();
        for _ in 0..n {
            h.record(rng.latency() * scale);
        }
        h
    };
    let (a, b, c) = (make(5_000, 1.0), make(3_000, 50.0), make(10, 0.001));
    let sum = |x: &Histogram, y: &Histogram| {
        let mut s = x.clone();
        s.merge(y);
        s
    };
    let left = sum(&a, &sum(&b, &c));
    let right = sum(&sum(&a, &b), &c);
    assert_eq!(left, right);
    assert_eq!(
        left.buckets().collect::<Vec<_>>(),
        right.buckets().collect::<Vec<_>>()
    );
    assert_eq!(sum(&a, &b), sum(&b, &a));
    assert_eq!(sum(&a, &Histogram::new()), a);
    assert_eq!(left.count(), 8_010);
}
