//! Schema-diff rules for one migration: `destructive.*` from [`crate::schema::diff`] of the
//! replay's schema before and after it (which already sees through the create-copy-drop-rename
//! rebuild), and `d1.too-many-columns` from the schema after it. Each finding is attributed to
//! the statement responsible: the DROP TABLE / ALTER TABLE / rename, and for a rebuild the
//! DROP TABLE or the RENAME TO of the rebuilt table.
//!
//! Pure: schemas and statement kinds in, findings out.
use super::Drafts;
use super::rules::Rows;
use super::sql::Kind;
use crate::gate::thousands;
use crate::schema::{Change, Column, ColumnChange, ObjectKind, Schema, diff};

/// D1's limit on columns per table.
pub(super) const MAX_COLUMNS: usize = 100;

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The first statement matching `pred`.
fn find(kinds: &[Kind], pred: impl Fn(&Kind) -> bool) -> Option<usize> {
    kinds.iter().position(pred)
}

/// The statement that rebuilt (or otherwise rewrote) `table`.
fn rebuild_of(kinds: &[Kind], table: &str) -> Option<usize> {
    find(kinds, |k| matches!(k, Kind::DropTable(t) if same(t, table)))
        .or_else(|| {
            find(
                kinds,
                |k| matches!(k, Kind::RenameTable { to, .. } if same(to, table)),
            )
        })
        .or_else(|| {
            find(kinds, |k| match k {
                Kind::AddColumn { table: t, .. }
                | Kind::DropColumn { table: t, .. }
                | Kind::RenameColumn { table: t, .. }
                | Kind::RenameTable { table: t, .. } => same(t, table),
                _ => false,
            })
        })
        .or_else(|| {
            find(
                kinds,
                |k| matches!(k, Kind::CreateTable(t) if same(t, table)),
            )
        })
}

/// What changed in a column's definition, for the message.
fn column_delta(before: &Column, after: &Column) -> String {
    let mut parts = Vec::new();
    let ty = |c: &Column| {
        if c.decl_type.is_empty() {
            "(no type)".to_string()
        } else {
            c.decl_type.clone()
        }
    };
    if !same(&before.decl_type, &after.decl_type) {
        parts.push(format!("type {} → {}", ty(before), ty(after)));
    }
    if before.not_null != after.not_null {
        parts.push(
            if after.not_null {
                "NOT NULL added"
            } else {
                "NOT NULL removed"
            }
            .to_string(),
        );
    }
    if before.default != after.default {
        let d = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        parts.push(format!(
            "default {} → {}",
            d(&before.default),
            d(&after.default)
        ));
    }
    if before.pk != after.pk {
        parts.push("primary key changed".to_string());
    }
    if before.hidden != after.hidden {
        parts.push("generated/hidden changed".to_string());
    }
    parts.join(", ")
}

const LIVE_CODE: &str = "breaks the live code that still runs during rollout";

/// `destructive.*` and `d1.too-many-columns` for one migration.
pub(super) fn schema_rules(
    kinds: &[Kind],
    before: &Schema,
    after: &Schema,
    rows: &Rows<'_>,
    out: &mut Drafts<'_>,
) {
    for change in diff(before, after).changes {
        match change {
            Change::Removed {
                kind: ObjectKind::Table,
                name,
                ..
            } => {
                let at = find(kinds, |k| matches!(k, Kind::DropTable(t) if same(t, &name)));
                let data = match rows(&name) {
                    Some(n) => format!(" and its {} rows", thousands(n)),
                    None => " and its rows".to_string(),
                };
                out.push(
                    "destructive.drop-table",
                    at,
                    format!("drops table {name}{data}; the live code still uses it during rollout"),
                );
            }
            Change::Renamed {
                kind: ObjectKind::Table,
                from,
                to,
            } => {
                let at = find(kinds, |k| {
                    matches!(k, Kind::RenameTable { table, to: t } if same(table, &from) && same(t, &to))
                })
                .or_else(|| find(kinds, |k| matches!(k, Kind::DropTable(t) if same(t, &from))))
                .or_else(|| rebuild_of(kinds, &to));
                out.push(
                    "destructive.rename-table",
                    at,
                    format!("renames table {from} to {to}: {LIVE_CODE}"),
                );
            }
            Change::TableChanged { name, columns, .. } => {
                column_rules(kinds, &name, &columns, out);
            }
            _ => {}
        }
    }
    for t in after.tables.values() {
        let count = |cols: &[Column]| cols.iter().filter(|c| c.hidden != 1).count();
        let n = count(&t.columns);
        let was = before.tables.get(&t.name).map_or(0, |b| count(&b.columns));
        if n > MAX_COLUMNS && n > was {
            let at = kinds
                .iter()
                .rposition(|k| matches!(k, Kind::AddColumn { table, .. } if same(table, &t.name)))
                .or_else(|| {
                    find(
                        kinds,
                        |k| matches!(k, Kind::CreateTable(x) if same(x, &t.name)),
                    )
                })
                .or_else(|| rebuild_of(kinds, &t.name));
            out.push(
                "d1.too-many-columns",
                at,
                format!(
                    "table {} has {n} columns after this migration; D1 allows at most {MAX_COLUMNS}",
                    t.name
                ),
            );
        }
    }
}

fn column_rules(kinds: &[Kind], table: &str, columns: &[ColumnChange], out: &mut Drafts<'_>) {
    for c in columns {
        match c {
            ColumnChange::Removed(col) => {
                let at = find(kinds, |k| {
                    matches!(k, Kind::DropColumn { table: t, column } if same(t, table) && same(column, &col.name))
                })
                .or_else(|| rebuild_of(kinds, table));
                out.push(
                    "destructive.drop-column",
                    at,
                    format!(
                        "drops column {table}.{} and its data; the live code still uses it during rollout",
                        col.name
                    ),
                );
            }
            ColumnChange::Renamed { from, to } => {
                let at = find(kinds, |k| {
                    matches!(k, Kind::RenameColumn { table: t, from: f, to: x }
                        if same(t, table) && same(f, from) && same(x, to))
                })
                .or_else(|| rebuild_of(kinds, table));
                out.push(
                    "destructive.rename-column",
                    at,
                    format!("renames column {table}.{from} to {table}.{to}: {LIVE_CODE}"),
                );
            }
            ColumnChange::Changed { before, after } => {
                out.push(
                    "destructive.alter-column",
                    rebuild_of(kinds, table),
                    format!(
                        "changes column {table}.{}: {}; existing rows and the live code may not fit the new definition",
                        after.name,
                        column_delta(before, after)
                    ),
                );
            }
            ColumnChange::Added(_) => {}
        }
    }
}
