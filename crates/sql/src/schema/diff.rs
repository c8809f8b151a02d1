//! Comparing two [`Schema`]s into an ordered list of [`Change`]s: added, removed, renamed
//! and changed objects, with per-column detail for tables and a `rebuilt` flag for table
//! changes SQLite cannot make in place.
//!
//! Pure: no database, no I/O, no policy. Whether a change is destructive or allowed is for
//! the gate to say; how it is shown is `render.rs`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::rebuild::{Renames, Scope};
use super::{Column, ForeignKey, Schema, Table};

/// The kind of schema object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Table,
    Index,
    Trigger,
    View,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::Index => "index",
            ObjectKind::Trigger => "trigger",
            ObjectKind::View => "view",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between two schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added {
        kind: ObjectKind,
        name: String,
        sql: String,
    },
    Removed {
        kind: ObjectKind,
        name: String,
        sql: String,
    },
    /// A table present on both sides whose definition differs.
    TableChanged {
        name: String,
        /// True when the change needs a table rebuild (or a native DROP COLUMN): anything
        /// beyond appended ADD COLUMNs, in-place column renames and rewrites SQLite made
        /// because something else was renamed.
        rebuilt: bool,
        columns: Vec<ColumnChange>,
        fks_before: Vec<ForeignKey>,
        fks_after: Vec<ForeignKey>,
        sql_before: String,
        sql_after: String,
    },
    Renamed {
        kind: ObjectKind,
        from: String,
        to: String,
    },
    /// An index, trigger or view present on both sides with different SQL.
    Changed {
        kind: ObjectKind,
        name: String,
        sql_before: String,
        sql_after: String,
    },
}

/// One column-level difference inside a [`Change::TableChanged`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ColumnChange {
    Added(Column),
    Removed(Column),
    Changed { before: Column, after: Column },
    Renamed { from: String, to: String },
}

/// The ordered differences between two schemas: tables, then indexes, triggers and views,
/// each group by name (a rename sorts by its old name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDiff {
    pub changes: Vec<Change>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compares `before` with `after`.
pub fn diff(before: &Schema, after: &Schema) -> SchemaDiff {
    let mut renames = Renames::default();
    let mut changes = diff_tables(before, after, &mut renames);

    let groups = [
        (ObjectKind::Index, index_objs(before), index_objs(after)),
        (
            ObjectKind::Trigger,
            trigger_objs(before),
            trigger_objs(after),
        ),
        (ObjectKind::View, view_objs(before), view_objs(after)),
    ];
    for (kind, b, a) in groups {
        changes.extend(diff_objects(kind, &b, &a, &renames));
    }
    SchemaDiff { changes }
}

fn index_objs(s: &Schema) -> Vec<Obj<'_>> {
    let it = s.indexes.values();
    it.map(|i| Obj {
        name: &i.name,
        sql: i.sql.as_deref().unwrap_or(""),
        table: Some(&i.table),
    })
    .collect()
}

fn trigger_objs(s: &Schema) -> Vec<Obj<'_>> {
    s.triggers
        .values()
        .map(|t| Obj {
            name: &t.name,
            sql: &t.sql,
            table: None,
        })
        .collect()
}

fn view_objs(s: &Schema) -> Vec<Obj<'_>> {
    s.views
        .values()
        .map(|v| Obj {
            name: &v.name,
            sql: &v.sql,
            table: None,
        })
        .collect()
}

fn sorted(mut keyed: Vec<(String, Change)>) -> Vec<Change> {
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, c)| c).collect()
}

fn diff_tables(before: &Schema, after: &Schema, renames: &mut Renames) -> Vec<Change> {
    let mut keyed = Vec::new();
    let mut added: Vec<&Table> = after
        .tables
        .values()
        .filter(|t| !before.tables.contains_key(&t.name))
        .collect();
    for old in before
        .tables
        .values()
        .filter(|t| !after.tables.contains_key(&t.name))
    {
        if let Some(pos) = added.iter().position(|new| same_column_list(old, new)) {
            let new = added.remove(pos);
            renames
                .tables
                .insert(old.name.to_lowercase(), new.name.to_lowercase());
            let (from, to) = (old.name.clone(), new.name.clone());
            keyed.push((
                old.name.clone(),
                Change::Renamed {
                    kind: ObjectKind::Table,
                    from,
                    to,
                },
            ));
        } else {
            let (name, sql) = (old.name.clone(), old.sql.clone());
            keyed.push((
                old.name.clone(),
                Change::Removed {
                    kind: ObjectKind::Table,
                    name,
                    sql,
                },
            ));
        }
    }
    for new in added {
        let (name, sql) = (new.name.clone(), new.sql.clone());
        keyed.push((
            new.name.clone(),
            Change::Added {
                kind: ObjectKind::Table,
                name,
                sql,
            },
        ));
    }

    // Column renames everywhere must be known before judging any table: a parent's
    // RENAME COLUMN rewrites its children's REFERENCES clauses too.
    let common: Vec<(&Table, &Table, Vec<ColumnChange>)> = before
        .tables
        .values()
        .filter_map(|b| {
            after
                .tables
                .get(&b.name)
                .map(|a| (b, a, column_changes(b, a)))
        })
        .collect();
    for (_, a, cols) in &common {
        for c in cols {
            if let ColumnChange::Renamed { from, to } = c {
                renames.add_column(&a.name, from, to);
            }
        }
    }
    for (b, a, columns) in common {
        let scope = Scope::Table(&a.name);
        let same = columns.is_empty()
            && b.without_rowid == a.without_rowid
            && b.strict == a.strict
            && renames.same_sql(&b.sql, &a.sql, scope, None);
        if same {
            continue;
        }
        let rebuilt = renames.needs_rebuild(b, a, &columns);
        keyed.push((
            a.name.clone(),
            Change::TableChanged {
                name: a.name.clone(),
                rebuilt,
                columns,
                fks_before: b.foreign_keys.clone(),
                fks_after: a.foreign_keys.clone(),
                sql_before: b.sql.clone(),
                sql_after: a.sql.clone(),
            },
        ));
    }
    sorted(keyed)
}

/// Same column names and declared types, in order (SQLite names and types are
/// case-insensitive).
fn same_column_list(a: &Table, b: &Table) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name.eq_ignore_ascii_case(&y.name) && x.decl_type.eq_ignore_ascii_case(&y.decl_type)
        })
}

/// Same type and constraints; the name is not compared.
fn same_shape(a: &Column, b: &Column) -> bool {
    a.decl_type.eq_ignore_ascii_case(&b.decl_type)
        && a.not_null == b.not_null
        && a.default == b.default
        && a.pk == b.pk
        && a.hidden == b.hidden
}

/// Column changes of one table: for each old column in order its removal, rename or
/// change, then the added columns in their new order. A removed and an added column at the
/// same position with the same shape are a rename.
fn column_changes(before: &Table, after: &Table) -> Vec<ColumnChange> {
    let find =
        |cols: &[Column], name: &str| cols.iter().position(|c| c.name.eq_ignore_ascii_case(name));
    // Positions where an old column was renamed in place.
    let mut renamed_at: HashSet<usize> = HashSet::new();
    for (i, b) in before.columns.iter().enumerate() {
        if find(&after.columns, &b.name).is_some() {
            continue;
        }
        if let Some(a) = after.columns.get(i)
            && find(&before.columns, &a.name).is_none()
            && same_shape(b, a)
        {
            renamed_at.insert(i);
        }
    }
    let mut out = Vec::new();
    for (i, b) in before.columns.iter().enumerate() {
        match find(&after.columns, &b.name) {
            Some(j) => {
                let a = &after.columns[j];
                if !same_shape(b, a) {
                    out.push(ColumnChange::Changed {
                        before: b.clone(),
                        after: a.clone(),
                    });
                }
            }
            None => match after.columns.get(i).filter(|_| renamed_at.contains(&i)) {
                Some(a) => out.push(ColumnChange::Renamed {
                    from: b.name.clone(),
                    to: a.name.clone(),
                }),
                None => out.push(ColumnChange::Removed(b.clone())),
            },
        }
    }
    for (j, a) in after.columns.iter().enumerate() {
        if !renamed_at.contains(&j) && find(&before.columns, &a.name).is_none() {
            out.push(ColumnChange::Added(a.clone()));
        }
    }
    out
}

/// An index, trigger or view reduced to what the diff needs.
struct Obj<'a> {
    name: &'a str,
    sql: &'a str,
    /// The table an index is on (its column renames apply); `None` for triggers and views.
    table: Option<&'a str>,
}

impl Obj<'_> {
    fn scope(&self) -> Scope<'_> {
        self.table.map_or(Scope::Global, Scope::Table)
    }
}

fn diff_objects(kind: ObjectKind, before: &[Obj], after: &[Obj], renames: &Renames) -> Vec<Change> {
    let in_list = |list: &[Obj], name: &str| list.iter().any(|o| o.name == name);
    let mut keyed = Vec::new();
    let mut added: Vec<&Obj> = after.iter().filter(|a| !in_list(before, a.name)).collect();
    for old in before.iter().filter(|b| !in_list(after, b.name)) {
        // Indexes, triggers and views cannot be renamed in SQLite, but a drop and a create
        // of the same definition under a new name is one to a reader.
        let same = |new: &&Obj| {
            renames.same_sql(old.sql, new.sql, new.scope(), Some((old.name, new.name)))
        };
        if let Some(pos) = added.iter().position(same) {
            let new = added.remove(pos);
            let (from, to) = (old.name.to_string(), new.name.to_string());
            keyed.push((from.clone(), Change::Renamed { kind, from, to }));
        } else {
            let (name, sql) = (old.name.to_string(), old.sql.to_string());
            keyed.push((name.clone(), Change::Removed { kind, name, sql }));
        }
    }
    for new in added {
        let (name, sql) = (new.name.to_string(), new.sql.to_string());
        keyed.push((name.clone(), Change::Added { kind, name, sql }));
    }
    for b in before {
        let Some(a) = after.iter().find(|a| a.name == b.name) else {
            continue;
        };
        if !renames.same_sql(b.sql, a.sql, a.scope(), None) {
            let (sql_before, sql_after) = (b.sql.to_string(), a.sql.to_string());
            keyed.push((
                a.name.to_string(),
                Change::Changed {
                    kind,
                    name: a.name.to_string(),
                    sql_before,
                    sql_after,
                },
            ));
        }
    }
    sorted(keyed)
}
