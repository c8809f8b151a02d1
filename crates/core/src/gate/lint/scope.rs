//! Which tables one migration can change, from its statements' kinds. The schema rules
//! compare only those tables before and after the migration, so linting n migrations reads
//! what they touch instead of reading a growing schema twice per migration (which made lint
//! grow about n^2.5: 1,000 pending migrations took over six minutes).
//!
//! Pure over statement text and kinds. When a statement might change a table it cannot
//! name (`CREATE VIRTUAL TABLE`, DDL the classification does not read), the scope is
//! [`Scope::All`] and the rules compare the whole schema, as they always did.
use std::collections::BTreeSet;

use super::sql::{Kind, tokenize};
use crate::schema::Schema;
use crate::workspace::Migration;

/// The tables a migration may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scope {
    /// These tables, by lowercased name (SQLite names are case-insensitive).
    Tables(BTreeSet<String>),
    /// Any table: read the whole schema.
    All,
}

impl Scope {
    /// Both scopes together.
    pub fn union(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::Tables(a), Scope::Tables(b)) => Scope::Tables(a.union(b).cloned().collect()),
            _ => Scope::All,
        }
    }

    /// `schema` cut to this scope (it was read for this scope or a wider one).
    pub fn restrict(&self, schema: &Schema) -> Schema {
        match self {
            Scope::All => schema.clone(),
            Scope::Tables(names) => Schema {
                tables: schema
                    .tables
                    .iter()
                    .filter(|(name, _)| names.contains(&name.to_ascii_lowercase()))
                    .map(|(name, t)| (name.clone(), t.clone()))
                    .collect(),
                ..Schema::default()
            },
        }
    }
}

/// The scope of migration `m`, whose statements have `kinds`.
pub(super) fn of(m: &Migration, kinds: &[Kind]) -> Scope {
    let mut names = BTreeSet::new();
    for (st, kind) in m.statements.iter().zip(kinds) {
        let mut add = |n: &str| {
            names.insert(n.to_ascii_lowercase());
        };
        match kind {
            Kind::CreateTable(t) | Kind::DropTable(t) => add(t),
            Kind::RenameTable { table, to } => {
                add(table);
                add(to);
            }
            Kind::RenameColumn { table, .. }
            | Kind::AddColumn { table, .. }
            | Kind::DropColumn { table, .. } => add(table),
            Kind::Other if may_change_a_table(&st.sql) => return Scope::All,
            _ => {}
        }
    }
    Scope::Tables(names)
}

/// Whether an unclassified statement is DDL that might create, drop or alter a table.
fn may_change_a_table(sql: &str) -> bool {
    let toks = tokenize(sql);
    let word = |i: usize| toks.get(i).map(|t| t.raw.to_ascii_lowercase());
    let harmless =
        |w: Option<String>| w.is_some_and(|w| matches!(w.as_str(), "index" | "view" | "trigger"));
    match word(0).as_deref() {
        Some("create") => {
            let mut i = 1;
            while matches!(word(i).as_deref(), Some("unique" | "temp" | "temporary")) {
                i += 1;
            }
            !harmless(word(i))
        }
        Some("drop") => !harmless(word(1)),
        Some("alter") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::lint::sql::classify;

    fn scope(sql: &str) -> Scope {
        let m = Migration::from_sql("1.sql", "1.sql", sql.into(), false).unwrap();
        let kinds: Vec<Kind> = m.statements.iter().map(|s| classify(&s.sql)).collect();
        of(&m, &kinds)
    }

    fn tables(names: &[&str]) -> Scope {
        Scope::Tables(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn names_the_tables_ddl_touches() {
        assert_eq!(
            scope(
                "CREATE TABLE __new_Users (id INTEGER);
                 INSERT INTO __new_Users SELECT id FROM users;
                 DROP TABLE users;
                 ALTER TABLE __new_Users RENAME TO Users;
                 CREATE INDEX ix ON Users(id);
                 CREATE VIEW v AS SELECT 1;
                 DROP INDEX ix;
                 ALTER TABLE t ADD COLUMN c TEXT;"
            ),
            tables(&["__new_users", "t", "users"])
        );
        assert_eq!(scope("UPDATE t SET a = 1; DELETE FROM u;"), tables(&[]));
    }

    #[test]
    fn unknown_table_ddl_reads_everything() {
        assert_eq!(
            scope("CREATE VIRTUAL TABLE docs USING fts5(body);"),
            Scope::All
        );
        assert_eq!(scope("ALTER TABLE;"), Scope::All);
        assert_eq!(
            tables(&["a"]).union(&Scope::All),
            Scope::All,
            "a union with everything is everything"
        );
    }
}
