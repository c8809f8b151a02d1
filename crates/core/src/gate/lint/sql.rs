//! Just enough reading of one migration statement for the lint rules: a forgiving tokenizer
//! and a classification of the statement kinds the rules care about (DDL targets, UPDATE /
//! DELETE without WHERE, transaction control, PRAGMA).
//!
//! It must not try to validate SQL: anything it does not recognise is [`Kind::Other`], and
//! SQLite itself (the in-memory replay) is the judge of what applies.

// The tokenizer is the schema module's: one set of SQLite lexing rules in the crate.
pub(super) use crate::schema::sqltext::{Token as Tok, tokenize};

/// The statement on one line: comments dropped, whitespace runs folded to one space,
/// shortened to about `max` characters.
pub(super) fn one_line(sql: &str, max: usize) -> String {
    let mut out = String::new();
    for t in tokenize(sql) {
        if t.space_before && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&t.raw.replace(['\r', '\n', '\t'], " "));
    }
    if out.chars().count() > max {
        let cut: String = out.chars().take(max.saturating_sub(1)).collect();
        return format!("{}…", cut.trim_end());
    }
    out
}

/// The statement kinds the rules look at. Names are unquoted, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// BEGIN / COMMIT / END / ROLLBACK / SAVEPOINT / RELEASE; the keyword as written.
    Transaction(String),
    /// `PRAGMA [schema.]name ...`.
    Pragma(String),
    CreateTable(String),
    CreateIndex {
        name: String,
        table: String,
        unique: bool,
    },
    /// `CREATE TRIGGER`; `body_offset` is where its `BEGIN` starts.
    CreateTrigger {
        name: String,
        body_offset: Option<usize>,
    },
    DropTable(String),
    RenameTable {
        table: String,
        to: String,
    },
    RenameColumn {
        table: String,
        from: String,
        to: String,
    },
    AddColumn {
        table: String,
        column: String,
        /// `NOT NULL` without a `DEFAULT` (SQLite refuses it on a non-empty table).
        not_null_without_default: bool,
    },
    DropColumn {
        table: String,
        column: String,
    },
    Update {
        table: String,
        has_where: bool,
    },
    Delete {
        table: String,
        has_where: bool,
    },
    Other,
}

/// A `[schema.]name` starting at `toks[i]`: the name and the index after it.
fn qualified(toks: &[Tok], i: usize) -> Option<(String, usize)> {
    let first = toks.get(i)?.name()?;
    if toks.get(i + 1).is_some_and(|t| t.is_punct("."))
        && let Some(second) = toks.get(i + 2).and_then(Tok::name)
    {
        return Some((second, i + 3));
    }
    Some((first, i + 1))
}

/// Skips `IF EXISTS` / `IF NOT EXISTS` at `i`.
fn skip_if(toks: &[Tok], mut i: usize) -> usize {
    if toks.get(i).is_some_and(|t| t.is_word("if")) {
        i += 1;
        if toks.get(i).is_some_and(|t| t.is_word("not")) {
            i += 1;
        }
        if toks.get(i).is_some_and(|t| t.is_word("exists")) {
            i += 1;
        }
    }
    i
}

/// Classifies one statement.
pub(super) fn classify(sql: &str) -> Kind {
    let toks = tokenize(sql);
    classify_tokens(&toks).unwrap_or(Kind::Other)
}

fn classify_tokens(toks: &[Tok]) -> Option<Kind> {
    let first = toks.first()?;
    let kw = first.raw.to_ascii_uppercase();
    match kw.as_str() {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => {
            Some(Kind::Transaction(kw))
        }
        "PRAGMA" => qualified(toks, 1).map(|(name, _)| Kind::Pragma(name)),
        "CREATE" => classify_create(toks),
        "DROP" if toks.get(1)?.is_word("table") => {
            qualified(toks, skip_if(toks, 2)).map(|(n, _)| Kind::DropTable(n))
        }
        "ALTER" if toks.get(1)?.is_word("table") => classify_alter(toks),
        "UPDATE" | "DELETE" => classify_dml(toks, 0),
        "WITH" => {
            let verb = toks.iter().position(|t| {
                t.depth == 0
                    && ["update", "delete", "insert", "replace", "select"]
                        .iter()
                        .any(|w| t.is_word(w))
            })?;
            classify_dml(toks, verb)
        }
        _ => None,
    }
}

fn classify_create(toks: &[Tok]) -> Option<Kind> {
    let mut i = 1;
    let unique = toks.get(i)?.is_word("unique");
    if unique {
        i += 1;
    }
    if toks.get(i)?.is_word("temp") || toks.get(i)?.is_word("temporary") {
        i += 1;
    }
    let what = toks.get(i)?;
    if what.is_word("table") {
        let (name, _) = qualified(toks, skip_if(toks, i + 1))?;
        return Some(Kind::CreateTable(name));
    }
    if what.is_word("index") {
        let (name, next) = qualified(toks, skip_if(toks, i + 1))?;
        if !toks.get(next)?.is_word("on") {
            return None;
        }
        let (table, _) = qualified(toks, next + 1)?;
        return Some(Kind::CreateIndex {
            name,
            table,
            unique,
        });
    }
    if what.is_word("trigger") {
        let (name, _) = qualified(toks, skip_if(toks, i + 1))?;
        let body_offset = toks
            .iter()
            .find(|t| t.depth == 0 && t.is_word("begin"))
            .map(|t| t.offset);
        return Some(Kind::CreateTrigger { name, body_offset });
    }
    None
}

fn classify_alter(toks: &[Tok]) -> Option<Kind> {
    let (table, mut i) = qualified(toks, 2)?;
    let action = toks.get(i)?;
    i += 1;
    if action.is_word("rename") {
        if toks.get(i)?.is_word("to") {
            let (to, _) = qualified(toks, i + 1)?;
            return Some(Kind::RenameTable { table, to });
        }
        if toks.get(i)?.is_word("column") {
            i += 1;
        }
        let from = toks.get(i)?.name()?;
        if !toks.get(i + 1)?.is_word("to") {
            return None;
        }
        let to = toks.get(i + 2)?.name()?;
        return Some(Kind::RenameColumn { table, from, to });
    }
    if toks.get(i).is_some_and(|t| t.is_word("column")) {
        i += 1;
    }
    let column = toks.get(i)?.name()?;
    if action.is_word("drop") {
        return Some(Kind::DropColumn { table, column });
    }
    if !action.is_word("add") {
        return None;
    }
    // The column definition's own constraints sit at depth 0; `CHECK (x IS NOT NULL)` and
    // the like sit inside parentheses.
    let def = &toks[i + 1..];
    let top = |w: &str| def.iter().any(|t| t.depth == 0 && t.is_word(w));
    let not_null = def
        .windows(2)
        .any(|w| w[0].depth == 0 && w[0].is_word("not") && w[1].is_word("null"));
    let generated = top("generated") || top("as");
    Some(Kind::AddColumn {
        table,
        column,
        not_null_without_default: not_null && !top("default") && !generated,
    })
}

/// `UPDATE` / `DELETE` whose verb is `toks[verb]` (after a `WITH` clause, maybe).
fn classify_dml(toks: &[Tok], verb: usize) -> Option<Kind> {
    let v = toks.get(verb)?;
    let mut i = verb + 1;
    let update = v.is_word("update");
    if update {
        if toks.get(i)?.is_word("or") {
            i += 2;
        }
    } else if v.is_word("delete") {
        if !toks.get(i)?.is_word("from") {
            return None;
        }
        i += 1;
    } else {
        return None;
    }
    let (table, next) = qualified(toks, i)?;
    let has_where = toks[next..]
        .iter()
        .any(|t| t.depth == 0 && t.is_word("where"));
    Some(if update {
        Kind::Update { table, has_where }
    } else {
        Kind::Delete { table, has_where }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: Kind) {
        assert_eq!(classify(sql), expected, "{sql}");
    }

    #[test]
    fn ddl() {
        check(
            "CREATE UNIQUE INDEX IF NOT EXISTS main.\"ux\" ON [users] (name)",
            Kind::CreateIndex {
                name: "ux".into(),
                table: "users".into(),
                unique: true,
            },
        );
        check("drop table if exists `a``b`", Kind::DropTable("a`b".into()));
        check(
            "ALTER TABLE t RENAME COLUMN a TO b",
            Kind::RenameColumn {
                table: "t".into(),
                from: "a".into(),
                to: "b".into(),
            },
        );
        check(
            "ALTER TABLE t RENAME TO u",
            Kind::RenameTable {
                table: "t".into(),
                to: "u".into(),
            },
        );
        check(
            "ALTER TABLE t DROP c",
            Kind::DropColumn {
                table: "t".into(),
                column: "c".into(),
            },
        );
    }

    #[test]
    fn add_column_not_null() {
        let add = |sql: &str| match classify(sql) {
            Kind::AddColumn {
                not_null_without_default,
                ..
            } => not_null_without_default,
            k => panic!("{k:?}"),
        };
        assert!(add("ALTER TABLE t ADD COLUMN c TEXT NOT NULL"));
        assert!(!add("ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT ''"));
        assert!(!add("ALTER TABLE t ADD c TEXT CHECK (c IS NOT NULL)"));
        assert!(!add("ALTER TABLE t ADD c TEXT"));
    }

    #[test]
    fn dml_where() {
        check(
            "UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)",
            Kind::Update {
                table: "t".into(),
                has_where: false,
            },
        );
        check(
            "WITH d AS (SELECT 1) DELETE FROM main.t WHERE id IN d",
            Kind::Delete {
                table: "t".into(),
                has_where: true,
            },
        );
        check(
            "UPDATE OR IGNORE t SET a = 1 WHERE b",
            Kind::Update {
                table: "t".into(),
                has_where: true,
            },
        );
    }

    #[test]
    fn transaction_and_pragma() {
        check("begin transaction", Kind::Transaction("BEGIN".into()));
        check(
            "PRAGMA main.foreign_keys = OFF",
            Kind::Pragma("foreign_keys".into()),
        );
        let sql = "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END";
        match classify(sql) {
            Kind::CreateTrigger {
                body_offset: Some(at),
                ..
            } => assert!(sql[at..].starts_with("BEGIN")),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn one_line_folds_and_shortens() {
        assert_eq!(
            one_line("SELECT  1, -- c\n  'a  b'", 80),
            "SELECT 1, 'a  b'"
        );
        assert_eq!(one_line("SELECT 123456789", 8), "SELECT…");
    }
}
