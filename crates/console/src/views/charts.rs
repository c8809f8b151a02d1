//! Small helpers the Monitor and Capacity charts share: relative time labels (so no wall
//! clock is drawn), axis labels, compact numbers, a text gauge bar and max-pooling a series
//! to the columns a sparkline has.
use ratatui::text::{Line, Span};

use super::theme::Theme;

/// `-60m`, `-12h`, `-3.5d`, `now`: a time `secs` before the end of a window.
pub fn ago(secs: i64) -> String {
    match secs {
        0 => "now".into(),
        s if s < 2 * 3_600 => format!("-{}m", s / 60),
        s if s < 48 * 3_600 => format!("-{}h", s / 3_600),
        s => {
            let days = s as f64 / 86_400.0;
            if (days - days.round()).abs() < 0.05 {
                format!("-{}d", days.round())
            } else {
                format!("-{days:.1}d")
            }
        }
    }
}

/// A compact number: `950`, `12.3k`, `4.5M`, `1.2G`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Milliseconds for a table cell: `0.42`, `3.1`, `1,234`.
pub fn ms(v: f64) -> String {
    if v >= 1_000.0 {
        crate::format::thousands(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Three axis labels for `[0, max]`.
pub fn y_labels(max: f64, fmt: impl Fn(f64) -> String) -> Vec<Line<'static>> {
    vec![
        Line::from(fmt(0.0)),
        Line::from(fmt(max / 2.0)),
        Line::from(fmt(max)),
    ]
}

/// A gauge as text: `━━━━━━────` of `width` cells, filled by `share` (0…1), coloured by how
/// close to the limit it is.
pub fn bar(share: f64, width: usize, theme: &Theme) -> Vec<Span<'static>> {
    let share = if share.is_finite() { share } else { 1.0 };
    let filled = ((share.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    let style = match share {
        s if s >= 1.0 => theme.bad(),
        s if s >= 0.8 => theme.warn(),
        _ => theme.ok(),
    };
    vec![
        Span::styled("━".repeat(filled), style),
        Span::styled("─".repeat(width - filled), theme.dim()),
    ]
}

/// The series fitted to exactly `width` columns: a long one reduced (each column the largest
/// of its stretch, so every spike stays), a short one stretched (each value repeated), so a
/// sparkline spans its whole box whatever the window.
pub fn pool(values: &[u64], width: usize) -> Vec<u64> {
    let n = values.len();
    if width == 0 || n == 0 || n == width {
        return values.to_vec();
    }
    if n < width {
        return (0..width).map(|c| values[c * n / width]).collect();
    }
    (0..width)
        .map(|c| {
            let (a, b) = (c * n / width, ((c + 1) * n / width).max(c * n / width + 1));
            values[a..b.min(n)].iter().copied().max().unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_numbers() {
        assert_eq!(ago(0), "now");
        assert_eq!(ago(3_600), "-60m");
        assert_eq!(ago(12 * 3_600), "-12h");
        assert_eq!(ago(7 * 86_400), "-7d");
        assert_eq!(ago(302_400), "-3.5d");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(ms(0.123), "0.12");
        assert_eq!(ms(1_234.5), "1,235");
        assert_eq!(pool(&[1, 5, 2, 2, 9], 3), vec![1, 5, 9]);
        assert_eq!(pool(&[1, 2], 4), vec![1, 1, 2, 2]);
        assert_eq!(pool(&[1; 61], 30).len(), 30);
    }
}
