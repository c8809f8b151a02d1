//! Fitting text to the room there is, without losing any of it for good: styled lines wrapped
//! at spaces (continuations marked and indented), table columns sized by priority (the least
//! important dropped first, the rest given what is left) and cells cut with `…`.
//!
//! Pure layout arithmetic over ratatui's text types; nothing here reads the state.
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;

use crate::format;

/// Marks a line that continues the one above (wrapped SQL, dialog text).
pub const CONTINUED: &str = "↪ ";

/// Wraps one styled line into lines of at most `width` characters, breaking at a space when
/// the line has one, else mid-word. Continuation lines start with `indent` (kept short so
/// they always fit).
pub fn wrap_line(line: Line<'static>, width: usize, indent: &str) -> Vec<Line<'static>> {
    let width = width.max(8);
    let chars: Vec<(char, Style)> = (line.spans.iter())
        .flat_map(|s| {
            let style = line.style.patch(s.style);
            s.content.chars().map(move |c| (c, style))
        })
        .collect();
    if chars.len() <= width {
        return vec![line];
    }
    let indent: String = indent.chars().take(width / 2).collect();
    let indent_w = indent.chars().count();
    let mut out = Vec::new();
    let mut start = 0;
    let mut first = true;
    while start < chars.len() {
        let room = if first { width } else { width - indent_w };
        let mut end = (start + room).min(chars.len());
        if end < chars.len() && chars[end].0 != ' ' {
            // Break after the last space inside this piece, if it leaves a useful piece.
            if let Some(space) = (start + 1..end).rev().find(|&i| chars[i].0 == ' ')
                && space - start >= room / 3
            {
                end = space + 1;
            }
        }
        let mut spans = Vec::new();
        if !first {
            spans.push(Span::raw(indent.clone()));
        }
        spans.extend(group(&chars[start..end]));
        out.push(Line::from(spans));
        start = end;
        // A continuation does not start with the spaces it was broken at.
        while start < chars.len() && chars[start].0 == ' ' {
            start += 1;
        }
        first = false;
    }
    out
}

/// Wraps every line (see [`wrap_line`]).
pub fn wrap_lines(lines: Vec<Line<'static>>, width: usize, indent: &str) -> Vec<Line<'static>> {
    lines
        .into_iter()
        .flat_map(|l| {
            let lead = leading_spaces(&l);
            let indent = format!("{}{indent}", " ".repeat(lead.min(8)));
            wrap_line(l, width, &indent)
        })
        .collect()
}

fn leading_spaces(line: &Line) -> usize {
    let mut n = 0;
    for s in &line.spans {
        let spaces = s.content.chars().take_while(|c| *c == ' ').count();
        n += spaces;
        if spaces < s.content.chars().count() {
            break;
        }
    }
    n
}

/// Runs of equal style back into spans.
fn group(chars: &[(char, Style)]) -> Vec<Span<'static>> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style: Option<Style> = None;
    for &(c, s) in chars {
        if style.is_some_and(|cur| cur != s) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                style.unwrap_or_default(),
            ));
        }
        style = Some(s);
        text.push(c);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style.unwrap_or_default()));
    }
    spans
}

/// Styled spans cut to `width` characters, the last one shown ending in `…` when cut.
pub fn clip_spans(spans: Vec<Span<'static>>, width: usize) -> Vec<Span<'static>> {
    let total: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    if total <= width {
        return spans;
    }
    let mut out = Vec::new();
    let mut left = width;
    for s in spans {
        let n = s.content.chars().count();
        if n < left {
            left -= n;
            out.push(s);
            continue;
        }
        out.push(Span::styled(format::clip(&s.content, left), s.style));
        break;
    }
    out
}

/// Grows without bound: the column takes a share of what is left.
pub const FILL: u16 = u16::MAX;

/// One table column: heading, the width it needs at least and at most, and how important
/// it is (0 most: dropped last, grown first).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub head: &'static str,
    pub min: u16,
    pub max: u16,
    pub prio: u8,
    pub right: bool,
}

pub const fn col(head: &'static str, min: u16, max: u16, prio: u8) -> Col {
    Col {
        head,
        min,
        max,
        prio,
        right: false,
    }
}

pub const fn right(head: &'static str, min: u16, max: u16, prio: u8) -> Col {
    Col {
        head,
        min,
        max,
        prio,
        right: true,
    }
}

/// The width of each column in `width` characters with one space between columns; 0 for a
/// column dropped because the more important ones need the room.
pub fn widths(cols: &[Col], width: u16) -> Vec<u16> {
    let mut keep: Vec<bool> = vec![true; cols.len()];
    let need = |keep: &[bool]| -> u32 {
        let n = keep.iter().filter(|k| **k).count() as u32;
        (cols.iter().zip(keep))
            .filter(|(_, k)| **k)
            .map(|(c, _)| u32::from(c.min))
            .sum::<u32>()
            + n.saturating_sub(1)
    };
    while need(&keep) > u32::from(width) {
        // Drop the least important column still shown (the rightmost among equals).
        let Some(i) = (0..cols.len())
            .filter(|&i| keep[i])
            .max_by_key(|&i| (cols[i].prio, i))
        else {
            break;
        };
        if keep.iter().filter(|k| **k).count() == 1 {
            break;
        }
        keep[i] = false;
    }
    let mut out: Vec<u16> = (cols.iter().zip(&keep))
        .map(|(c, k)| if *k { c.min } else { 0 })
        .collect();
    let mut left = u32::from(width).saturating_sub(need(&keep));
    let mut order: Vec<usize> = (0..cols.len()).filter(|&i| keep[i]).collect();
    order.sort_by_key(|&i| (cols[i].prio, i));
    for &i in order.iter().filter(|&&i| cols[i].max != FILL) {
        let grow = u32::from(cols[i].max.saturating_sub(cols[i].min)).min(left);
        out[i] += grow as u16;
        left -= grow;
    }
    let fills: Vec<usize> = order.into_iter().filter(|&i| cols[i].max == FILL).collect();
    let n = fills.len() as u32;
    for (k, &i) in fills.iter().enumerate() {
        let share = left / n + u32::from((k as u32) < left % n);
        out[i] = out[i].saturating_add(share as u16);
    }
    out
}

/// Text cut to `w` characters, ending in `…` when cut; right-aligned columns are padded.
pub fn cut(text: &str, w: u16, right: bool) -> String {
    let s = format::clip(text, w as usize);
    if right {
        format!("{s:>width$}", width = w as usize)
    } else {
        s
    }
}

/// A table cell cut to its column.
pub fn cell(text: impl AsRef<str>, style: Style, c: &Col, w: u16) -> Cell<'static> {
    Cell::from(Span::styled(cut(text.as_ref(), w, c.right), style))
}

/// The shown columns' cells of one row (`cells` in `cols`' order) and their widths.
pub fn row_cells(cols: &[Col], widths: &[u16], cells: Vec<(String, Style)>) -> Vec<Cell<'static>> {
    (cols.iter().zip(widths).zip(cells))
        .filter(|((_, w), _)| **w > 0)
        .map(|((c, w), (text, style))| cell(text, style, c, *w))
        .collect()
}

/// The headings of the shown columns.
pub fn heads(cols: &[Col], widths: &[u16]) -> Vec<Cell<'static>> {
    (cols.iter().zip(widths))
        .filter(|(_, w)| **w > 0)
        .map(|(c, w)| Cell::from(cut(c.head, *w, c.right)))
        .collect()
}

/// The constraints of the shown columns.
pub fn constraints(widths: &[u16]) -> Vec<ratatui::layout::Constraint> {
    (widths.iter())
        .filter(|w| **w > 0)
        .map(|w| ratatui::layout::Constraint::Length(*w))
        .collect()
}

/// One row as a single line of text (for views drawn as paragraphs): the shown columns, one
/// space apart, each cut or padded to its width.
pub fn text_row(cols: &[Col], widths: &[u16], cells: Vec<(String, Style)>) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut first = true;
    for ((c, w), (text, style)) in cols.iter().zip(widths).zip(cells) {
        if *w == 0 {
            continue;
        }
        if !first {
            spans.push(Span::raw(" "));
        }
        first = false;
        let s = cut(&text, *w, c.right);
        let pad = (*w as usize).saturating_sub(s.chars().count());
        spans.push(Span::styled(format!("{s}{}", " ".repeat(pad)), style));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn wraps_at_spaces_and_marks_continuations() {
        let line = Line::from("   │ SELECT username FROM users GROUP BY username;");
        let out = wrap_line(line, 30, "   ┆ ");
        assert_eq!(
            text(&out),
            vec![
                "   │ SELECT username FROM ",
                "   ┆ users GROUP BY username;"
            ]
        );
        let short = wrap_line(Line::from("fits"), 30, "  ");
        assert_eq!(text(&short), vec!["fits"]);
    }

    #[test]
    fn columns_drop_by_priority_and_fill_what_is_left() {
        let cols = [
            col("ID", 10, 26, 0),
            col("STATE", 12, 13, 0),
            col("MIGS", 4, 4, 5),
            col("LABEL", 8, FILL, 1),
        ];
        assert_eq!(widths(&cols, 80), vec![26, 13, 4, 34]);
        assert_eq!(widths(&cols, 33), vec![11, 12, 0, 8]);
        assert_eq!(cut("users table", 8, false), "users t…");
        assert_eq!(cut("7", 4, true), "   7");
    }
}
