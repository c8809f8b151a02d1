//! Telling the changes SQLite makes *in place* (ALTER TABLE … ADD COLUMN, RENAME COLUMN,
//! RENAME TO, which also rewrite dependent SQL text) from changes only a table rebuild or a
//! drop-and-create can make.
//!
//! Pure functions over stored SQL text and the detected renames. This file must not decide
//! what a change *means* for a release (that is the gate's job) and must not touch a database.

use std::collections::HashMap;

use super::diff::ColumnChange;
use super::sqltext::{Token, table_parts, tokenize};
use super::{Column, Table};

/// Renames the diff detected, lowercased (SQLite names are case-insensitive).
#[derive(Debug, Default)]
pub(crate) struct Renames {
    /// old table name → new table name
    pub tables: HashMap<String, String>,
    /// table name (after) → old column name → new column name
    pub columns: HashMap<String, HashMap<String, String>>,
}

/// Which names in a statement a column rename may apply to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// A table's or index's own SQL: columns are those of this (after-)table; table names
    /// only follow `ON` (indexes) or `REFERENCES` (foreign keys).
    Table(&'a str),
    /// Triggers and views: any name may be any table or column.
    Global,
}

impl Renames {
    pub fn add_column(&mut self, table: &str, from: &str, to: &str) {
        self.columns
            .entry(table.to_lowercase())
            .or_default()
            .insert(from.to_lowercase(), to.to_lowercase());
    }

    fn table(&self, key: String) -> String {
        self.tables.get(&key).cloned().unwrap_or(key)
    }

    fn column_of(&self, table: &str, key: String) -> String {
        self.columns
            .get(table)
            .and_then(|m| m.get(&key))
            .cloned()
            .unwrap_or(key)
    }

    fn any_column(&self, key: String) -> String {
        self.columns
            .values()
            .find_map(|m| m.get(&key))
            .cloned()
            .unwrap_or(key)
    }

    /// Comparison keys of `tokens` as they would read after the renames: what SQLite's
    /// rename machinery would have rewritten the text to. `extra` maps one more name (an
    /// index, trigger or view renamed by drop-and-create).
    pub fn mapped_keys(
        &self,
        tokens: &[Token],
        scope: Scope,
        extra: Option<(&str, &str)>,
    ) -> Vec<String> {
        let mut out = Vec::with_capacity(tokens.len());
        // The parent after REFERENCES, and whether we are inside its column list.
        let mut parent: Option<String> = None;
        let mut in_parent_cols = false;
        let mut table_next = false;
        for tok in tokens {
            let key = tok.key();
            if !tok.is_name() {
                if tok.is_punct("(") && parent.is_some() && !in_parent_cols {
                    in_parent_cols = true;
                } else if tok.is_punct(")") || !in_parent_cols {
                    parent = None;
                    in_parent_cols = false;
                }
                table_next = false;
                out.push(key);
                continue;
            }
            let mapped = match (extra, scope) {
                (Some((from, to)), _) if key == from.to_lowercase() => to.to_lowercase(),
                _ if table_next => {
                    let t = self.table(key);
                    parent = Some(t.clone());
                    t
                }
                _ if in_parent_cols => match &parent {
                    Some(p) => self.column_of(p, key),
                    None => key,
                },
                (_, Scope::Table(own)) => self.column_of(&own.to_lowercase(), key),
                (_, Scope::Global) => {
                    let t = self.table(key.clone());
                    if t != key { t } else { self.any_column(key) }
                }
            };
            if !table_next && !in_parent_cols {
                parent = None;
            }
            table_next = tok.is_word("references") || tok.is_word("on");
            out.push(mapped);
        }
        out
    }

    /// Whether `after_sql` is `before_sql` with only the renames applied (and whitespace,
    /// comments, quoting or case changed).
    pub fn same_sql(
        &self,
        before_sql: &str,
        after_sql: &str,
        scope: Scope,
        extra: Option<(&str, &str)>,
    ) -> bool {
        let after: Vec<String> = tokenize(after_sql).iter().map(Token::key).collect();
        self.mapped_keys(&tokenize(before_sql), scope, extra) == after
    }

    /// True when `before` → `after` needs a rebuild (or a native DROP COLUMN): anything
    /// other than in-place column renames, appended `ADD COLUMN`s and rewrites caused by
    /// renames elsewhere.
    pub fn needs_rebuild(&self, before: &Table, after: &Table, changes: &[ColumnChange]) -> bool {
        !self.explained_by_alter(before, after, changes)
    }

    fn explained_by_alter(&self, before: &Table, after: &Table, changes: &[ColumnChange]) -> bool {
        if before.without_rowid != after.without_rowid || before.strict != after.strict {
            return false;
        }
        if changes
            .iter()
            .any(|c| matches!(c, ColumnChange::Removed(_) | ColumnChange::Changed { .. }))
        {
            return false;
        }
        let own = after.name.to_lowercase();
        let kept = before.columns.len();
        if after.columns.len() < kept {
            return false;
        }
        let in_place = before
            .columns
            .iter()
            .zip(&after.columns)
            .all(|(b, a)| self.column_of(&own, b.name.to_lowercase()) == a.name.to_lowercase());
        let appended = &after.columns[kept..];
        if !in_place || !appended.iter().all(addable) {
            return false;
        }
        let (Some(bp), Some(ap)) = (table_parts(&before.sql), table_parts(&after.sql)) else {
            return false;
        };
        let virtual_table = tokenize(&before.sql)
            .get(1)
            .is_some_and(|t| t.is_word("virtual"));
        if virtual_table {
            return false;
        }
        let appended_names: Vec<String> = appended.iter().map(|c| c.name.to_lowercase()).collect();
        let mut after_segments = Vec::new();
        for seg in &ap.segments {
            let is_appended = seg
                .first()
                .is_some_and(|t| t.is_name() && appended_names.contains(&t.key()));
            if !is_appended {
                after_segments.push(seg.iter().map(Token::key).collect::<Vec<_>>());
            } else if seg
                .iter()
                .any(|t| t.is_word("unique") || t.is_word("primary"))
            {
                return false; // ADD COLUMN cannot add UNIQUE or PRIMARY KEY
            }
        }
        let scope = Scope::Table(&after.name);
        let before_segments: Vec<Vec<String>> = bp
            .segments
            .iter()
            .map(|seg| self.mapped_keys(seg, scope, None))
            .collect();
        let tail = |t: &[Token]| t.iter().map(Token::key).collect::<Vec<_>>();
        before_segments == after_segments && tail(&bp.tail) == tail(&ap.tail)
    }
}

/// Whether SQLite's ADD COLUMN accepts a column like this one.
fn addable(c: &Column) -> bool {
    c.pk == 0 && c.hidden != 3 && !(c.not_null && c.default.is_none())
}
