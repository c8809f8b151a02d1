//! Human rendering of a [`SchemaDiff`]: one plain-text line per object change, indented
//! lines for column, foreign-key and SQL detail.
//!
//! Plain text only: no ANSI codes, no terminal width assumptions. The CLI and the console
//! colour lines by [`DiffLine::sign`].

use serde::{Deserialize, Serialize};

use super::diff::{Change, ColumnChange, ObjectKind, SchemaDiff};
use super::sqltext::{fold, join_display, table_parts, tokenize};
use super::{Column, ForeignKey};

/// One rendered line. `text` is the whole line as printed, indentation and sign included
/// (`"    + column bio TEXT"`); `sign` (`'+'`, `'-'`, `'~'` or `' '`) is for colouring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub sign: char,
    pub text: String,
}

impl std::fmt::Display for DiffLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

const INDENT: &str = "    ";

fn line(sign: char, body: String) -> DiffLine {
    DiffLine {
        sign,
        text: format!("{sign} {body}"),
    }
}

fn detail(sign: char, body: String) -> DiffLine {
    DiffLine {
        sign,
        text: format!("{INDENT}{sign} {body}"),
    }
}

impl SchemaDiff {
    /// Renders every change, e.g. `+ table scores (id INTEGER, …)`, `~ table users`,
    /// `    - column legacy_flag INTEGER`, `~ table users renamed → members`.
    pub fn render_text(&self) -> Vec<DiffLine> {
        let mut out = Vec::new();
        for change in &self.changes {
            render_change(change, &mut out);
        }
        out
    }
}

fn render_change(change: &Change, out: &mut Vec<DiffLine>) {
    match change {
        Change::Added { kind, name, sql } => {
            out.push(line('+', format!("{kind} {name}{}", summary(*kind, sql))))
        }
        Change::Removed { kind, name, sql } => {
            out.push(line('-', format!("{kind} {name}{}", summary(*kind, sql))))
        }
        Change::Renamed { kind, from, to } => {
            out.push(line('~', format!("{kind} {from} renamed → {to}")))
        }
        Change::Changed {
            kind,
            name,
            sql_before,
            sql_after,
        } => {
            out.push(line('~', format!("{kind} {name}")));
            out.push(detail('-', fold(sql_before)));
            out.push(detail('+', fold(sql_after)));
        }
        Change::TableChanged {
            name,
            rebuilt,
            columns,
            fks_before,
            fks_after,
            sql_before,
            sql_after,
        } => {
            let note = if *rebuilt { " (rebuilt)" } else { "" };
            out.push(line('~', format!("table {name}{note}")));
            let start = out.len();
            out.extend(columns.iter().map(render_column_change));
            for fk in fks_before.iter().filter(|fk| !contains_fk(fks_after, fk)) {
                out.push(detail('-', describe_fk(fk)));
            }
            for fk in fks_after.iter().filter(|fk| !contains_fk(fks_before, fk)) {
                out.push(detail('+', describe_fk(fk)));
            }
            // Nothing structural to show (a CHECK, UNIQUE or option changed): show the SQL.
            if out.len() == start {
                out.push(detail('-', fold(sql_before)));
                out.push(detail('+', fold(sql_after)));
            }
        }
    }
}

fn render_column_change(change: &ColumnChange) -> DiffLine {
    match change {
        ColumnChange::Added(c) => detail('+', format!("column {}", describe_column(c))),
        ColumnChange::Removed(c) => detail('-', format!("column {}", describe_column(c))),
        ColumnChange::Renamed { from, to } => detail('~', format!("column {from} renamed → {to}")),
        ColumnChange::Changed { before, after } => {
            let shape = |c: &Column| {
                let s = describe_shape(c);
                if s.is_empty() {
                    "(no type)".to_string()
                } else {
                    s
                }
            };
            detail(
                '~',
                format!(
                    "column {}: {} → {}",
                    after.name,
                    shape(before),
                    shape(after)
                ),
            )
        }
    }
}

fn describe_column(c: &Column) -> String {
    let shape = describe_shape(c);
    if shape.is_empty() {
        c.name.clone()
    } else {
        format!("{} {shape}", c.name)
    }
}

/// Type and constraints of a column, as a reader would write them.
fn describe_shape(c: &Column) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !c.decl_type.is_empty() {
        parts.push(c.decl_type.clone());
    }
    if c.pk > 0 {
        parts.push("PRIMARY KEY".into());
    }
    if c.not_null {
        parts.push("NOT NULL".into());
    }
    if let Some(d) = &c.default {
        parts.push(format!("DEFAULT {d}"));
    }
    match c.hidden {
        2 => parts.push("GENERATED VIRTUAL".into()),
        3 => parts.push("GENERATED STORED".into()),
        _ => {}
    }
    parts.join(" ")
}

fn fk_key(fk: &ForeignKey) -> (String, String, String, &str, &str) {
    let lower = |v: &[String]| v.join(",").to_lowercase();
    (
        fk.table.to_lowercase(),
        lower(&fk.from),
        lower(&fk.to),
        &fk.on_delete,
        &fk.on_update,
    )
}

fn contains_fk(list: &[ForeignKey], fk: &ForeignKey) -> bool {
    list.iter().any(|other| fk_key(other) == fk_key(fk))
}

fn describe_fk(fk: &ForeignKey) -> String {
    let mut s = format!("foreign key ({}) → {}", fk.from.join(", "), fk.table);
    if fk.to.iter().any(|c| !c.is_empty()) {
        s.push_str(&format!("({})", fk.to.join(", ")));
    }
    for (what, action) in [("delete", &fk.on_delete), ("update", &fk.on_update)] {
        if !action.eq_ignore_ascii_case("NO ACTION") {
            s.push_str(&format!(" on {what} {action}"));
        }
    }
    s
}

/// What follows the name on an added or removed object's line: a table's definitions, an
/// index's `ON table(columns)`; nothing for triggers and views (their SQL is in the change).
fn summary(kind: ObjectKind, sql: &str) -> String {
    match kind {
        ObjectKind::Table => table_summary(sql),
        ObjectKind::Index => {
            let tokens = tokenize(sql);
            let unique = tokens.get(1).is_some_and(|t| t.is_word("unique"));
            let on = tokens.iter().position(|t| t.is_word("on"));
            let mut s = on
                .map(|p| format!(" {}", join_display(&tokens[p..])))
                .unwrap_or_default();
            if unique {
                s.push_str(" (unique)");
            }
            s
        }
        ObjectKind::Trigger | ObjectKind::View => String::new(),
    }
}

/// ` (id INTEGER PRIMARY KEY, name TEXT) STRICT`, or ` USING fts5(title, body)`.
fn table_summary(sql: &str) -> String {
    let Some(parts) = table_parts(sql) else {
        return format!(": {}", fold(sql));
    };
    let tokens = tokenize(sql);
    let open = tokens.iter().position(|t| t.is_punct("(")).unwrap_or(0);
    let using = tokens[..open].iter().position(|t| t.is_word("using"));
    let module = using
        .map(|u| format!(" {}", join_display(&tokens[u..open])))
        .unwrap_or_default();
    let defs: Vec<String> = parts.segments.iter().map(|s| join_display(s)).collect();
    let space = if module.is_empty() { " " } else { "" };
    let mut s = format!("{module}{space}({})", defs.join(", "));
    if !parts.tail.is_empty() {
        s.push(' ');
        s.push_str(&join_display(&parts.tail));
    }
    s
}
