//! Latency summaries of a probe's timed runs.
use super::report::Latency;

/// p50 / p95 / max of `timings` (nearest rank), `None` when nothing ran.
pub fn latency(timings: &[f64]) -> Option<Latency> {
    if timings.is_empty() {
        return None;
    }
    let mut sorted = timings.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = (p * sorted.len() as f64).ceil() as usize;
        sorted[i.clamp(1, sorted.len()) - 1]
    };
    Some(Latency {
        p50_ms: rank(0.50),
        p95_ms: rank(0.95),
        max_ms: sorted[sorted.len() - 1],
        runs: sorted.len(),
    })
}

/// Milliseconds for people: three significant digits, no trailing noise.
pub fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let t: Vec<f64> = (1..=20).map(f64::from).collect();
        let l = latency(&t).unwrap();
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.max_ms, l.runs),
            (10.0, 19.0, 20.0, 20)
        );
        let one = latency(&[3.0]).unwrap();
        assert_eq!((one.p50_ms, one.p95_ms, one.max_ms), (3.0, 3.0, 3.0));
        assert!(latency(&[]).is_none());
    }

    #[test]
    fn ms_formatting() {
        assert_eq!(ms(0.0234), "0.023");
        assert_eq!(ms(3.456), "3.46");
        assert_eq!(ms(45.26), "45.3");
        assert_eq!(ms(1234.4), "1234");
    }
}
