//! The stored form: round trips in both forms, the choice between them, and corrupt blobs
//! (truncated, trailing bytes, out-of-range buckets, bad widths) that must change nothing.
use super::*;

#[test]
fn bytes_round_trip_and_stay_small() {
    let mut h = Histogram::new();
    assert_eq!(Histogram::from_bytes(&h.to_bytes()).unwrap(), h);
    for v in [0.2, 0.25, 3.0, 3.0, 250.0, 90_000.0] {
        h.record(v);
    }
    let bytes = h.to_bytes();
    assert!(bytes.len() < 40, "{} bytes", bytes.len());
    assert_eq!(Histogram::from_bytes(&bytes).unwrap(), h);
}

#[test]
fn corrupt_blobs_are_errors() {
    let mut h = Histogram::new();
    h.record(1.0);
    let bytes = h.to_bytes();
    assert_eq!(
        Histogram::from_bytes(&bytes[..bytes.len() - 1]),
        Err(HistogramError::Truncated)
    );
    assert_eq!(Histogram::from_bytes(&[9]), Err(HistogramError::Version(9)));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Histogram::from_bytes(&long),
        Err(HistogramError::Trailing(1))
    );
    let mut far = bytes[..17].to_vec();
    far[0] = SPARSE;
    far.extend_from_slice(&[1, 0xff, 0x7f, 1]);
    assert_eq!(
        Histogram::from_bytes(&far),
        Err(HistogramError::Bucket(16383))
    );
}

#[test]
fn a_corrupt_blob_changes_nothing() {
    let mut base = Histogram::new();
    base.record(5.0);
    let mut other = Histogram::new();
    for v in [0.01, 1.0, 2.0, 900.0] {
        other.record(v);
    }
    let good = other.to_bytes();
    assert_eq!(good[0], SPARSE);
    for cut in [good.len() - 1, good.len() - 3, 20] {
        let mut h = base.clone();
        assert!(h.merge_bytes(&good[..cut]).is_err(), "cut at {cut}");
        assert_eq!(h, base, "cut at {cut}");
    }
    let mut long = good.clone();
    long.push(0);
    let mut h = base.clone();
    assert!(h.merge_bytes(&long).is_err());
    assert_eq!(h, base);
    let mut empty = Histogram::new();
    assert!(empty.merge_bytes(&good[..good.len() - 1]).is_err());
    assert_eq!(empty, Histogram::new());
}

fn wide() -> Histogram {
    let mut h = Histogram::new();
    for i in 0..5_000 {
        h.record(0.05 * 1.002f64.powi(i));
    }
    h
}

#[test]
fn wide_histograms_are_stored_dense_and_round_trip() {
    let h = wide();
    let bytes = h.to_bytes();
    assert_eq!(bytes[0], DENSE);
    assert_eq!(Histogram::from_bytes(&bytes).unwrap(), h);
    // Dense and sparse blobs merge into each other.
    let mut small = Histogram::new();
    small.record(1e5);
    let mut both = Histogram::from_bytes(&small.to_bytes()).unwrap();
    both.merge_bytes(&bytes).unwrap();
    let mut want = small.clone();
    want.merge(&h);
    assert_eq!(both, want);
    // Large counts pick a wider width.
    let mut heavy = Histogram::new();
    heavy.record_n(1.0, 1 << 40);
    heavy.record_n(1.1, 3);
    assert_eq!(Histogram::from_bytes(&heavy.to_bytes()).unwrap(), heavy);
}

#[test]
fn corrupt_dense_blobs_are_errors_and_zero_ends_are_trimmed() {
    let head = |lo: u8, len: u8, width: u8| {
        let mut b = vec![DENSE];
        b.extend_from_slice(&1.0f64.to_le_bytes());
        b.extend_from_slice(&2.0f64.to_le_bytes());
        b.extend_from_slice(&[lo, len, width]);
        b
    };
    let mut bad_width = head(10, 1, 3);
    bad_width.extend_from_slice(&[1, 0, 0]);
    assert!(Histogram::from_bytes(&bad_width).is_err());
    let mut short = head(10, 2, 2);
    short.extend_from_slice(&[1, 0, 1]);
    assert_eq!(
        Histogram::from_bytes(&short),
        Err(HistogramError::Truncated)
    );
    let mut beyond = vec![DENSE];
    beyond.extend_from_slice(&[0; 16]);
    beyond.extend_from_slice(&[0xff, 0x0f, 2, 1, 1, 1]);
    assert!(matches!(
        Histogram::from_bytes(&beyond),
        Err(HistogramError::Bucket(_))
    ));
    let mut padded = head(10, 4, 1);
    padded.extend_from_slice(&[0, 3, 4, 0]);
    let h = Histogram::from_bytes(&padded).unwrap();
    assert_eq!(h.count(), 7);
    let mut canonical = Histogram::new();
    canonical.merge_bytes(&h.to_bytes()).unwrap();
    assert_eq!(canonical, h);
    assert_eq!(h.buckets().count(), 2);
}
