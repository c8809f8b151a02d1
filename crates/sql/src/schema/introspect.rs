//! Reading a [`Schema`] out of a live SQLite connection (`sqlite_schema` plus the
//! table-valued pragmas), fingerprinting it, and counting rows per user table.
//!
//! Everything here is read-only on the caller's connection; the only database written is
//! the private in-memory one [`schema_from_sql`] opens. Object names always travel as bound
//! parameters, except in `count(*)`, where they are quoted with [`quote_ident`].

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use super::sqltext::canonical;
use super::{
    Column, ForeignKey, Index, Schema, SchemaError, Table, Trigger, View, is_internal_name,
    quote_ident,
};

/// Reads the user schema of `conn`'s `main` database, leaving out internal objects (see
/// [`Schema`]) and the ledger table `ledger_table` (matched case-insensitively).
pub fn read_schema(conn: &Connection, ledger_table: &str) -> Result<Schema, SchemaError> {
    let tables = user_tables(conn, ledger_table)?;
    let names: HashSet<String> = tables.iter().map(|t| t.name.to_lowercase()).collect();
    let mut schema = Schema::default();
    for info in tables {
        let table = read_table(conn, info)?;
        schema.tables.insert(table.name.clone(), table);
    }

    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_schema \
         WHERE type IN ('index', 'trigger', 'view') ORDER BY name",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, name, table, sql) = row?;
        match kind.as_str() {
            "view" => {
                if !is_internal_name(&name, ledger_table) {
                    let sql = sql.unwrap_or_default();
                    schema.views.insert(name.clone(), View { name, sql });
                }
            }
            // Indexes and triggers belong to a table; if that table is internal, so are they.
            // Autoindexes (no SQL) are part of their table's definition.
            "index" => {
                if let Some(sql) = sql
                    && names.contains(&table.to_lowercase())
                {
                    let index = read_index(conn, name, table, sql)?;
                    schema.indexes.insert(index.name.clone(), index);
                }
            }
            _ => {
                // Triggers may sit on tables or (INSTEAD OF) on views.
                if !is_internal_name(&table, ledger_table) && !is_internal_name(&name, ledger_table)
                {
                    let sql = sql.unwrap_or_default();
                    schema
                        .triggers
                        .insert(name.clone(), Trigger { name, table, sql });
                }
            }
        }
    }
    Ok(schema)
}

/// The user tables of `conn`'s `main` database among `names` (matched case-insensitively, as
/// SQLite matches names), read as [`read_schema`] reads tables, for a caller that knows which
/// tables a change touched (lint's replay, once per migration): the cost is one pass over
/// `sqlite_schema`'s names plus the tables asked for. Unlike [`read_schema`], WITHOUT ROWID
/// and STRICT come from the table's own SQL (its options after the column list), not from
/// `pragma_table_list`, which walks every table on each call; and a virtual table's shadow
/// tables are not told apart, so ask only for names statements wrote. Indexes, triggers and
/// views are not read.
pub fn read_tables(
    conn: &Connection,
    ledger_table: &str,
    names: &[String],
) -> Result<BTreeMap<String, Table>, SchemaError> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    // The names are filtered in SQLite's scan (far cheaper than handing every row over),
    // a bounded number of bound parameters at a time.
    let mut infos = Vec::new();
    for chunk in names.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT name, sql FROM main.sqlite_schema \
             WHERE type = 'table' AND name COLLATE NOCASE IN ({list})"
        ))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(chunk))?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            if is_internal_name(&name, ledger_table)
                || infos.iter().any(|i: &TableInfo| i.name == name)
            {
                continue;
            }
            let sql = row.get::<_, Option<String>>(1)?.unwrap_or_default();
            let (without_rowid, strict, virtual_table) = table_options(&sql);
            infos.push(TableInfo {
                name,
                sql,
                without_rowid,
                strict,
                virtual_table,
            });
        }
    }
    for info in infos {
        let table = read_table(conn, info)?;
        out.insert(table.name.clone(), table);
    }
    Ok(out)
}

/// WITHOUT ROWID, STRICT and VIRTUAL as a stored `CREATE TABLE` states them: the options
/// follow the column list's closing parenthesis.
fn table_options(sql: &str) -> (bool, bool, bool) {
    let toks = super::sqltext::tokenize(sql);
    let virtual_table = toks.get(1).is_some_and(|t| t.is_word("virtual"));
    let tail = toks
        .iter()
        .rposition(|t| t.depth == 0 && t.is_punct(")"))
        .map_or(&toks[..0], |i| &toks[i + 1..]);
    let without_rowid = tail
        .windows(2)
        .any(|w| w[0].is_word("without") && w[1].is_word("rowid"));
    let strict = tail.iter().any(|t| t.is_word("strict"));
    (without_rowid, strict, virtual_table)
}

/// Builds a schema by executing `sql` (any number of statements) on a fresh in-memory
/// database and reading it back, with the default ledger table name excluded.
pub fn schema_from_sql(sql: &str) -> Result<Schema, SchemaError> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(sql).map_err(SchemaError::Execute)?;
    read_schema(&conn, super::DEFAULT_LEDGER_TABLE)
}

/// Hex SHA-256 over every object's kind, name and canonical SQL (whitespace and comments
/// folded), tables first, then indexes, triggers and views, each in name order. Two
/// databases with the same schema written with different spacing get the same fingerprint.
pub fn schema_fingerprint(schema: &Schema) -> String {
    let mut hasher = Sha256::new();
    let mut feed = |kind: &str, name: &str, sql: &str| {
        for part in [kind, name, &canonical(sql)] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
    };
    for t in schema.tables.values() {
        feed("table", &t.name, &t.sql);
    }
    for i in schema.indexes.values() {
        feed("index", &i.name, i.sql.as_deref().unwrap_or(""));
    }
    for t in schema.triggers.values() {
        feed("trigger", &t.name, &t.sql);
    }
    for v in schema.views.values() {
        feed("view", &v.name, &v.sql);
    }
    hex::encode(hasher.finalize())
}

/// Exact `count(*)` of every user table (same exclusions as [`read_schema`]; views and
/// virtual-table shadow tables are not counted).
pub fn table_row_counts(
    conn: &Connection,
    ledger_table: &str,
) -> Result<BTreeMap<String, u64>, SchemaError> {
    let mut counts = BTreeMap::new();
    for info in user_tables(conn, ledger_table)? {
        let sql = format!("SELECT count(*) FROM main.{}", quote_ident(&info.name));
        let count: i64 = conn
            .query_row(&sql, [], |row| row.get(0))
            .map_err(|source| SchemaError::Count {
                table: info.name.clone(),
                source,
            })?;
        // count(*) is never negative; clamp rather than trust that with a panic.
        counts.insert(info.name, u64::try_from(count).unwrap_or(0));
    }
    Ok(counts)
}

/// A user table as listed by `sqlite_schema` and `pragma_table_list`.
struct TableInfo {
    name: String,
    sql: String,
    without_rowid: bool,
    strict: bool,
    virtual_table: bool,
}

fn user_tables(conn: &Connection, ledger_table: &str) -> Result<Vec<TableInfo>, SchemaError> {
    // `pragma_table_list` knows WITHOUT ROWID, STRICT and which tables are virtual-table
    // shadows; `sqlite_schema` has the SQL. Each is read once and joined here: SQLite would
    // run the pragma again for every table (a join on a table-valued pragma has no index),
    // which made reading 10,000 tables take a minute.
    let mut flags: HashMap<String, (String, bool, bool)> = HashMap::new();
    let mut list =
        conn.prepare("SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'")?;
    let listed = list.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            (
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, bool>(3)?,
            ),
        ))
    })?;
    for row in listed {
        let (name, f) = row?;
        flags.insert(name, f);
    }
    let mut stmt = conn
        .prepare("SELECT name, sql FROM main.sqlite_schema WHERE type = 'table' ORDER BY name")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, sql) = row?;
        let (kind, without_rowid, strict) = flags
            .remove(&name)
            .unwrap_or_else(|| ("table".to_string(), false, false));
        if kind == "shadow" || is_internal_name(&name, ledger_table) {
            continue;
        }
        let sql = sql.unwrap_or_default();
        let virtual_table = kind == "virtual";
        out.push(TableInfo {
            name,
            sql,
            without_rowid,
            strict,
            virtual_table,
        });
    }
    Ok(out)
}

fn read_table(conn: &Connection, info: TableInfo) -> Result<Table, SchemaError> {
    let wrap = |source| SchemaError::Object {
        kind: "table",
        name: info.name.clone(),
        source,
    };
    let read = read_columns(conn, &info.name)
        .and_then(|cols| Ok((cols, read_foreign_keys(conn, &info.name)?)));
    let (columns, foreign_keys) = match read {
        Ok(parts) => parts,
        // A virtual table whose module this SQLite lacks cannot be inspected; its SQL is
        // still known and still diffable.
        Err(_) if info.virtual_table => (Vec::new(), Vec::new()),
        Err(e) => return Err(wrap(e)),
    };
    Ok(Table {
        name: info.name,
        sql: info.sql,
        columns,
        foreign_keys,
        without_rowid: info.without_rowid,
        strict: info.strict,
    })
}

fn read_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
         FROM pragma_table_xinfo(?1, 'main') ORDER BY cid",
    )?;
    let rows = stmt.query_map(params![table], |row| {
        Ok(Column {
            name: row.get(0)?,
            decl_type: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            not_null: row.get(2)?,
            default: row.get(3)?,
            pk: row.get(4)?,
            hidden: row.get(5)?,
        })
    })?;
    rows.collect()
}

fn read_foreign_keys(conn: &Connection, table: &str) -> rusqlite::Result<Vec<ForeignKey>> {
    let mut stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
         FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq",
    )?;
    let rows = stmt.query_map(params![table], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
        ))
    })?;
    let mut fks: Vec<ForeignKey> = Vec::new();
    for row in rows {
        let (id, parent, from, to, on_update, on_delete) = row?;
        match fks.last_mut() {
            Some(fk) if fk.id == id => {
                fk.from.push(from);
                fk.to.push(to.unwrap_or_default());
            }
            _ => fks.push(ForeignKey {
                id,
                table: parent,
                from: vec![from],
                to: vec![to.unwrap_or_default()],
                on_delete,
                on_update,
            }),
        }
    }
    Ok(fks)
}

fn read_index(
    conn: &Connection,
    name: String,
    table: String,
    sql: String,
) -> Result<Index, SchemaError> {
    let wrap = |source| SchemaError::Object {
        kind: "index",
        name: name.clone(),
        source,
    };
    let (unique, partial) = conn
        .query_row(
            "SELECT \"unique\", partial FROM pragma_index_list(?1, 'main') WHERE name = ?2",
            params![table, name],
            |row| Ok((row.get::<_, bool>(0)?, row.get::<_, bool>(1)?)),
        )
        .map_err(wrap)?;
    let columns = conn
        .prepare("SELECT name FROM pragma_index_info(?1, 'main') ORDER BY seqno")
        .and_then(|mut stmt| {
            stmt.query_map(params![name], |row| {
                Ok(row
                    .get::<_, Option<String>>(0)?
                    .unwrap_or_else(|| "<expr>".to_string()))
            })?
            .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(wrap)?;
    Ok(Index {
        name,
        table,
        sql: Some(sql),
        unique,
        columns,
        partial,
    })
}
