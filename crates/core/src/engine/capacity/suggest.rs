//! A query's plan and, when it scans a table, a suggested index — written out on request as
//! the workspace's next migration file.
//!
//! The suggestion is deliberately simple and honest: it reads `EXPLAIN QUERY PLAN` of the
//! fingerprint (parameters bound as NULL), takes each table the plan reads in full, and
//! proposes an index on that table's columns compared in WHERE / JOIN … ON (equalities
//! first, then one range), or — with no such column and a temp B-tree sorting the result —
//! on its ORDER BY columns. No suggestion when an existing index already leads with those
//! columns (SQLite chose to scan anyway) or the columns are not plain columns of the table.
//! Writing it out is `next_migration.rs`.
use std::collections::BTreeSet;

use serde::Serialize;

use crate::backend::{DatabaseRef, PlanStep};
use crate::engine::{Engine, PRODUCTION, Result};
use crate::gate::probes::plan::{accesses, aliases, render};
use crate::schema::Schema;

/// An index that would turn a scan into a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexSuggestion {
    pub table: String,
    pub columns: Vec<String>,
    pub name: String,
    /// `CREATE INDEX name ON table(columns)`.
    pub sql: String,
    /// Why: which scan it replaces.
    pub reason: String,
    /// The query it was suggested for (normalised text).
    pub query: String,
    /// Where writing it would put the migration (relative to the workspace), when known.
    pub file: Option<String>,
    /// The query's plan without and with the index, on a throwaway in-memory copy of the
    /// database's schema: the suggestion is offered only when the plan changes (the table
    /// is searched, no temp B-tree sorts it).
    #[serde(default)]
    pub plan_before: Vec<String>,
    #[serde(default)]
    pub plan_after: Vec<String>,
}

/// A query's plan on one environment's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryPlan {
    pub env: String,
    pub text: String,
    /// The plan as an indented tree (empty when it could not be read).
    pub lines: Vec<String>,
    /// Tables the plan reads in full.
    pub scans: Vec<String>,
    pub suggestion: Option<IndexSuggestion>,
    /// Why there is no plan (no database here, not valid SQL for it, …).
    pub error: Option<String>,
}

/// SQL that `EXPLAIN` accepts from a fingerprint: collapsed lists (`IN (?…)`,
/// `VALUES (?, ?)…`) back to one element; the number of `?` to bind.
fn explainable(text: &str) -> (String, usize) {
    let sql = text.replace('…', "");
    let params = sql.matches('?').count();
    (sql, params)
}

impl Engine {
    /// The database behind an environment name, if it has one here.
    fn env_database(&self, env: &str) -> Result<Option<DatabaseRef>> {
        if env == PRODUCTION {
            return self.production_db();
        }
        Ok(self
            .store
            .env(env)?
            .filter(|e| e.deleted_at.is_none())
            .and_then(|e| e.database_id)
            .map(DatabaseRef::new))
    }

    /// The plan of a query (normalised text) on `env`'s database, with a suggested index
    /// when it scans. Problems reading the plan are reported in [`QueryPlan::error`].
    pub fn query_plan(&self, env: &str, text: &str) -> Result<QueryPlan> {
        let mut out = QueryPlan {
            env: env.to_string(),
            text: text.to_string(),
            lines: Vec::new(),
            scans: Vec::new(),
            suggestion: None,
            error: None,
        };
        let db = match self.env_database(env)? {
            Some(db) if self.backend.exists(&db)? => db,
            _ => {
                out.error = Some(format!("environment {env} has no database here"));
                return Ok(out);
            }
        };
        let (sql, n) = explainable(text);
        let params = vec![serde_json::Value::Null; n];
        let result = match self
            .backend
            .query(&db, &format!("EXPLAIN QUERY PLAN {sql}"), &params)
        {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(format!("no plan: {e}"));
                return Ok(out);
            }
        };
        let steps: Vec<PlanStep> = (result.rows.iter())
            .filter_map(|r| {
                Some(PlanStep {
                    id: r.first()?.as_i64()?,
                    parent: r.get(1)?.as_i64()?,
                    detail: r.get(3)?.as_str()?.to_string(),
                })
            })
            .collect();
        let schema = self.backend.schema(&db, &self.ws.config.migrations_table)?;
        out.lines = render(&steps);
        out.scans = scanned_tables(&sql, &steps, &schema);
        out.suggestion = suggest_index(&sql, &steps, &schema)
            .and_then(|s| {
                match prove(&schema, &self.ws.config.migrations_table, &sql, n, &s) {
                    Ok(proven) => proven,
                    Err(e) => {
                        tracing::info!(error = %e, index = %s.sql, "a suggested index could not be proven; not offered");
                        None
                    }
                }
            })
            .map(|mut s| {
                s.query = text.to_string();
                s.file = self.next_migration(&s.name).ok().map(|m| m.shown);
                s
            });
        Ok(out)
    }
}

/// The plan of `sql` (with `n` NULL parameters) on `conn`.
fn plan_on(conn: &rusqlite::Connection, sql: &str, n: usize) -> rusqlite::Result<Vec<PlanStep>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let nulls = vec![rusqlite::types::Value::Null; n];
    stmt.query_map(rusqlite::params_from_iter(nulls), |r| {
        Ok(PlanStep {
            id: r.get(0)?,
            parent: r.get(1)?,
            detail: r.get(3)?,
        })
    })?
    .collect()
}

/// Builds a throwaway in-memory copy of `schema` (tables, views and indexes, no rows, under
/// the sandbox), plans `sql` before and after creating the suggested index, and returns the
/// suggestion with both plans when the index changes the plan: the table is searched, not
/// scanned, and no temp B-tree sorts it. `None` when the plan does not change.
fn prove(
    schema: &Schema,
    ledger_table: &str,
    sql: &str,
    n: usize,
    s: &IndexSuggestion,
) -> rusqlite::Result<Option<IndexSuggestion>> {
    let mut conn = rusqlite::Connection::open_in_memory()?;
    let _guard = crate::backend::sandbox::Sandbox::install(&mut conn, ledger_table)?;
    for t in schema.tables.values() {
        conn.execute_batch(&t.sql)?;
    }
    for i in schema.indexes.values() {
        if let Some(sql) = &i.sql {
            conn.execute_batch(sql)?;
        }
    }
    for v in schema.views.values() {
        conn.execute_batch(&v.sql)?;
    }
    let before = plan_on(&conn, sql, n)?;
    conn.execute_batch(&s.sql)?;
    let after = plan_on(&conn, sql, n)?;
    let names = aliases(sql, &table_names(schema));
    let scans_table = |steps: &[PlanStep]| {
        accesses(steps)
            .into_iter()
            .filter(|a| a.full())
            .any(|a| names.get(&a.shown.to_lowercase()) == Some(&s.table))
    };
    let sorts = |steps: &[PlanStep]| steps.iter().any(|p| p.detail.contains("USE TEMP B-TREE"));
    let better = scans_table(&before)
        && !scans_table(&after)
        && (!sorts(&after) || sorts(&before) && after.len() < before.len());
    Ok(better.then(|| IndexSuggestion {
        plan_before: render(&before),
        plan_after: render(&after),
        ..s.clone()
    }))
}

/// The schema's table names.
fn table_names(schema: &Schema) -> BTreeSet<String> {
    schema.tables.keys().cloned().collect()
}

/// Tables (real names) the plan reads in full.
fn scanned_tables(sql: &str, steps: &[PlanStep], schema: &Schema) -> Vec<String> {
    let names = aliases(sql, &table_names(schema));
    let mut out: Vec<String> = Vec::new();
    for a in accesses(steps).into_iter().filter(|a| a.full()) {
        if let Some(t) = names.get(&a.shown.to_lowercase())
            && !out.contains(t)
        {
            out.push(t.clone());
        }
    }
    out
}

/// A token of SQL text, as much as a suggestion needs.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Op(String),
    Punct(char),
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if matches!(c, '"' | '`' | '[') {
            let close = if c == '[' { ']' } else { c };
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i.min(chars.len())].iter().collect()));
            i += 1;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(Tok::Punct('?'));
        } else if matches!(c, '=' | '<' | '>' | '!') {
            let start = i;
            while i < chars.len() && matches!(chars[i], '=' | '<' | '>' | '!') {
                i += 1;
            }
            out.push(Tok::Op(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

/// How a predicate compares a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Range,
}

/// The comparison starting at `t[i]`, if any.
fn comparison(t: &[Tok], i: usize) -> Option<Cmp> {
    match t.get(i)? {
        Tok::Op(op) => match op.as_str() {
            "=" | "==" => Some(Cmp::Eq),
            "<" | ">" | "<=" | ">=" => Some(Cmp::Range),
            _ => None,
        },
        Tok::Word(w) => match w.to_ascii_uppercase().as_str() {
            "IN" | "IS" if !is_kw(t.get(i + 1), "NOT") => Some(Cmp::Eq),
            "BETWEEN" | "LIKE" | "GLOB" => Some(Cmp::Range),
            _ => None,
        },
        Tok::Punct(_) => None,
    }
}

/// A column reference ending at `t[end]`: `(qualifier, column)`.
fn column_ending_at(t: &[Tok], end: usize) -> Option<(Option<String>, String)> {
    let Tok::Word(col) = t.get(end)? else {
        return None;
    };
    if end >= 2
        && t.get(end - 1) == Some(&Tok::Punct('.'))
        && let Some(Tok::Word(q)) = t.get(end - 2)
    {
        return Some((Some(q.clone()), col.clone()));
    }
    Some((None, col.clone()))
}

/// A column reference starting at `t[start]`.
fn column_starting_at(t: &[Tok], start: usize) -> Option<(Option<String>, String)> {
    let Tok::Word(first) = t.get(start)? else {
        return None;
    };
    if t.get(start + 1) == Some(&Tok::Punct('.'))
        && let Some(Tok::Word(col)) = t.get(start + 2)
    {
        return Some((Some(first.clone()), col.clone()));
    }
    Some((None, first.clone()))
}

const CLAUSE_END: &[&str] = &[
    "ORDER",
    "GROUP",
    "LIMIT",
    "HAVING",
    "WINDOW",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "RETURNING",
    "JOIN",
];

type ColumnRef = (Option<String>, String);

/// The columns compared in WHERE and ON clauses, and the ORDER BY columns.
fn predicates(t: &[Tok]) -> (Vec<(ColumnRef, Cmp)>, Vec<ColumnRef>) {
    let mut preds = Vec::new();
    let mut order = Vec::new();
    let mut in_pred = false;
    let mut i = 0;
    while i < t.len() {
        if is_kw(t.get(i), "WHERE") || is_kw(t.get(i), "ON") {
            in_pred = true;
        } else if CLAUSE_END.iter().any(|k| is_kw(t.get(i), k)) {
            in_pred = false;
            if is_kw(t.get(i), "ORDER") && is_kw(t.get(i + 1), "BY") {
                let mut j = i + 2;
                while let Some(c) = column_starting_at(t, j) {
                    order.push(c.clone());
                    j += if c.0.is_some() { 3 } else { 1 };
                    while is_kw(t.get(j), "ASC") || is_kw(t.get(j), "DESC") {
                        j += 1;
                    }
                    if t.get(j) != Some(&Tok::Punct(',')) {
                        break;
                    }
                    j += 1;
                }
            }
        } else if in_pred && let Some(cmp) = comparison(t, i) {
            if i > 0
                && let Some(c) = column_ending_at(t, i - 1)
            {
                preds.push((c, cmp));
            }
            if cmp == Cmp::Eq
                && let Some(c) = column_starting_at(t, i + 1)
                && !is_kw(t.get(i + 1), "NULL")
            {
                preds.push((c, cmp));
            }
        }
        i += 1;
    }
    (preds, order)
}

fn ident(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// The index that would let the plan SEARCH a table it SCANs, if a simple one exists.
pub fn suggest_index(sql: &str, steps: &[PlanStep], schema: &Schema) -> Option<IndexSuggestion> {
    let names = aliases(sql, &table_names(schema));
    let tokens = tokenize(sql);
    let (preds, order) = predicates(&tokens);
    let sorts = steps
        .iter()
        .any(|s| s.detail.contains("TEMP B-TREE FOR ORDER BY"));
    for access in accesses(steps).into_iter().filter(|a| a.full()) {
        let Some(table_name) = names.get(&access.shown.to_lowercase()) else {
            continue;
        };
        let Some(table) = schema.tables.get(table_name) else {
            continue;
        };
        // The primary key: an `INTEGER PRIMARY KEY` is the rowid (already a search key);
        // any other is an automatic index (which `schema.indexes` does not list).
        let mut pk: Vec<&crate::schema::Column> =
            table.columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let rowid = (pk.len() == 1 && pk[0].decl_type.eq_ignore_ascii_case("INTEGER"))
            .then(|| pk[0].name.clone());
        let belongs = |(q, col): &ColumnRef| -> Option<String> {
            if let Some(q) = q
                && names.get(&q.to_lowercase()) != Some(table_name)
            {
                return None;
            }
            (table.columns.iter())
                .find(|c| c.name.eq_ignore_ascii_case(col))
                .map(|c| c.name.clone())
                .filter(|name| rowid.as_ref() != Some(name))
        };
        let mut columns: Vec<String> = Vec::new();
        for (c, _) in preds.iter().filter(|(_, cmp)| *cmp == Cmp::Eq) {
            if let Some(name) = belongs(c)
                && !columns.contains(&name)
            {
                columns.push(name);
            }
        }
        let equalities = columns.len();
        let range = (preds.iter())
            .filter(|(_, cmp)| *cmp == Cmp::Range)
            .find_map(|(c, _)| belongs(c))
            .filter(|name| !columns.contains(name));
        // Equality columns first, then one range column — or, without one, the ORDER BY
        // columns (all of this table's), so the index also hands rows over in order.
        let ordered = match range {
            Some(name) => {
                columns.push(name);
                false
            }
            None if equalities > 0 && !order.is_empty() => {
                let by: Vec<String> = order.iter().map_while(belongs).collect();
                let fits = by.len() == order.len() && equalities + by.len() <= 4;
                if fits {
                    columns.extend(
                        by.into_iter()
                            .filter(|c| !columns.contains(c))
                            .collect::<Vec<_>>(),
                    );
                }
                fits
            }
            None => false,
        };
        columns.truncate(4);
        let mut reason = if ordered {
            format!(
                "the plan scans every row of {table_name}{}; an index on ({}) lets SQLite search it and read the rows in ORDER BY order",
                if sorts { " and sorts them" } else { "" },
                columns.join(", ")
            )
        } else {
            format!(
                "the plan scans every row of {table_name}; an index on ({}) lets SQLite search it",
                columns.join(", ")
            )
        };
        if columns.is_empty() && sorts {
            let by: Vec<String> = order.iter().map_while(belongs).take(2).collect();
            if by.len() == order.len() {
                columns = by;
                reason = format!(
                    "the plan scans every row of {table_name} and sorts them; an index on ({}) reads them in order and stops at the LIMIT",
                    columns.join(", ")
                );
            }
        }
        if columns.is_empty() {
            continue;
        }
        let leads = |keys: &[String]| {
            keys.len() >= columns.len()
                && (keys.iter().zip(&columns)).all(|(a, b)| a.eq_ignore_ascii_case(b))
        };
        let pk_keys: Vec<String> = pk.iter().map(|c| c.name.clone()).collect();
        let covered = leads(&pk_keys)
            || (schema.indexes.values())
                .filter(|i| i.table.eq_ignore_ascii_case(table_name))
                .any(|i| leads(&i.columns));
        if covered {
            continue;
        }
        let base = format!("idx_{}_{}", table_name, columns.join("_"))
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>();
        let mut name = base.clone();
        let mut n = 2;
        while schema.indexes.keys().any(|k| k.eq_ignore_ascii_case(&name)) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        return Some(IndexSuggestion {
            sql: format!(
                "CREATE INDEX {} ON {}({})",
                ident(&name),
                ident(table_name),
                cols.join(", ")
            ),
            table: table_name.clone(),
            columns,
            name,
            reason,
            query: sql.to_string(),
            file: None,
            plan_before: Vec::new(),
            plan_after: Vec::new(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "
        CREATE TABLE users (id INTEGER PRIMARY KEY, telegram_id INTEGER, username TEXT, language_code TEXT);
        CREATE TABLE items (id INTEGER PRIMARY KEY, owner_id INTEGER, kind TEXT, price_stars INTEGER, like_count INTEGER);
        CREATE INDEX idx_items_owner ON items(owner_id);
    ";

    /// Plans the SQL on an in-memory database with [`SCHEMA`] and checks the suggestion.
    fn check(sql: &str, expected: Option<&str>) {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let (sql, n) = explainable(sql);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Value::Null; n];
        let steps: Vec<PlanStep> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| {
                Ok(PlanStep {
                    id: r.get(0)?,
                    parent: r.get(1)?,
                    detail: r.get(3)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let schema = crate::schema::schema_from_sql(SCHEMA).unwrap();
        let got = suggest_index(&sql, &steps, &schema).map(|s| s.sql);
        assert_eq!(got.as_deref(), expected, "{sql}\nplan: {steps:?}");
    }

    #[test]
    fn scans_get_an_index_on_their_compared_columns() {
        check(
            "SELECT id FROM items WHERE kind = ? AND price_stars < ?",
            Some("CREATE INDEX idx_items_kind_price_stars ON items(kind, price_stars)"),
        );
        check(
            "SELECT id FROM users WHERE language_code IN (?…)",
            Some("CREATE INDEX idx_users_language_code ON users(language_code)"),
        );
        check(
            "SELECT u.username FROM users AS u JOIN items AS i ON i.owner_id = u.id WHERE u.telegram_id = ?",
            Some("CREATE INDEX idx_users_telegram_id ON users(telegram_id)"),
        );
        check(
            "SELECT id, like_count FROM items ORDER BY like_count DESC LIMIT ?",
            Some("CREATE INDEX idx_items_like_count ON items(like_count)"),
        );
    }

    /// Issue 16 item 7: equality columns, then the ORDER BY columns, so the index also
    /// removes the sort; and the suggestion is proven on a throwaway copy.
    #[test]
    fn order_by_columns_follow_the_equalities_and_the_plan_is_proven() {
        let sql = "SELECT id, like_count FROM items WHERE kind = ? ORDER BY price_stars LIMIT ?";
        check(
            sql,
            Some("CREATE INDEX idx_items_kind_price_stars ON items(kind, price_stars)"),
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let steps = plan_on(&conn, sql, 2).unwrap();
        let schema = crate::schema::schema_from_sql(SCHEMA).unwrap();
        let s = suggest_index(sql, &steps, &schema).unwrap();
        assert!(s.reason.contains("ORDER BY order"), "{}", s.reason);
        let proven = prove(&schema, "d1_migrations", sql, 2, &s)
            .unwrap()
            .unwrap();
        let before = proven.plan_before.join("\n");
        let after = proven.plan_after.join("\n");
        assert!(
            before.contains("SCAN items") && before.contains("TEMP B-TREE"),
            "{before}"
        );
        assert!(
            after.contains("SEARCH items USING INDEX idx_items_kind_price_stars"),
            "{after}"
        );
        assert!(!after.contains("TEMP B-TREE"), "{after}");
        // An index that would not change the plan is not offered.
        let useless = IndexSuggestion {
            sql: "CREATE INDEX idx_items_like_count ON items(like_count)".into(),
            ..s
        };
        assert!(
            prove(&schema, "d1_migrations", sql, 2, &useless)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn searches_and_unhelpable_scans_get_nothing() {
        check("SELECT * FROM items WHERE owner_id = ?", None);
        check("SELECT * FROM users WHERE id = ?", None);
        check("SELECT count(*) FROM items", None);
        check("SELECT * FROM items WHERE lower(kind) = ?", None);
        check("INSERT INTO items (owner_id, kind) VALUES (?, ?)…", None);
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(ident("kind"), "kind");
        assert_eq!(ident("order items"), "\"order items\"");
        assert_eq!(ident("1x"), "\"1x\"");
    }
}
