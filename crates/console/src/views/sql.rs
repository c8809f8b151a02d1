//! A small SQL highlighter for the migrations view: keywords, strings, numbers and
//! comments, line by line. Display only — it does not parse SQL and never fails.
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::theme::Theme;

const KEYWORDS: &[&str] = &[
    "ADD",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "AUTOINCREMENT",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "CREATE",
    "DEFAULT",
    "DEFERRABLE",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "FOREIGN",
    "FROM",
    "GROUP",
    "HAVING",
    "IF",
    "IN",
    "INDEX",
    "INSERT",
    "INTEGER",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LIKE",
    "LIMIT",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "PRAGMA",
    "PRIMARY",
    "REAL",
    "REFERENCES",
    "RENAME",
    "REPLACE",
    "ROLLBACK",
    "SELECT",
    "SET",
    "STRICT",
    "TABLE",
    "TEMP",
    "TEXT",
    "BLOB",
    "NUMERIC",
    "THEN",
    "TO",
    "TRIGGER",
    "UNIQUE",
    "UPDATE",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
    "WITHOUT",
    "ROWID",
    "CURRENT_TIMESTAMP",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Highlights one line of SQL. `in_comment` carries a `/* … */` block across lines.
pub fn highlight_line(line: &str, in_comment: &mut bool, theme: &Theme) -> Line<'static> {
    let keyword = if theme.color {
        Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let string = theme.fg(Color::Green);
    let number = theme.fg(Color::Yellow);
    let comment = theme.dim().add_modifier(Modifier::ITALIC);
    let chars: Vec<char> = line.chars().collect();
    let mut spans = Vec::new();
    let mut i = 0;
    let take = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if *in_comment {
            let mut j = i;
            while j < chars.len() && !(chars[j] == '*' && chars.get(j + 1) == Some(&'/')) {
                j += 1;
            }
            let end = (j + 2).min(chars.len());
            *in_comment = j >= chars.len();
            spans.push(Span::styled(take(start, end), comment));
            i = end;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            spans.push(Span::styled(take(i, chars.len()), comment));
            i = chars.len();
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            *in_comment = true;
            spans.push(Span::styled("/*".to_string(), comment));
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += 1;
            }
            let end = (j + 1).min(chars.len());
            let style = if c == '\'' { string } else { Style::new() };
            spans.push(Span::styled(take(start, end), style));
            i = end;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            spans.push(Span::styled(take(start, i), number));
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word = take(start, i);
            let style = if is_keyword(&word) {
                keyword
            } else {
                Style::new()
            };
            spans.push(Span::styled(word, style));
        } else {
            while i < chars.len() && !(chars[i].is_alphanumeric() || "_'\"`-/".contains(chars[i])) {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            spans.push(Span::raw(take(start, i)));
        }
    }
    Line::from(spans)
}

/// Highlights a whole migration, prefixing each line with `prefix`.
pub fn highlight(sql: &str, prefix: &str, theme: &Theme) -> Vec<Line<'static>> {
    let mut in_comment = false;
    sql.lines()
        .map(|l| {
            let mut line = highlight_line(&l.replace('\t', "    "), &mut in_comment, theme);
            line.spans.insert(0, Span::raw(prefix.to_string()));
            line
        })
        .collect()
}
