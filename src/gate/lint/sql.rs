//! Just enough reading of one migration statement for the lint rules: a forgiving tokenizer
//! and a classification of the statement kinds the rules care about (DDL targets, UPDATE /
//! DELETE without WHERE, transaction control, PRAGMA).
//!
//! It must not try to validate SQL: anything it does not recognise is [`Kind::Other`], and
//! SQLite itself (the in-memory replay) is the judge of what applies.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokKind {
    /// A bare word: keyword, identifier or number.
    Word,
    /// A quoted identifier: `"x"`, `` `x` `` or `[x]`.
    Quoted,
    /// A string or blob literal.
    Str,
    Punct,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tok<'a> {
    pub kind: TokKind,
    pub raw: &'a str,
    /// Byte offset in the statement.
    pub offset: usize,
    /// Whether whitespace or a comment preceded it.
    pub space_before: bool,
    /// Parenthesis depth the token sits at (a `(` is at the outer depth).
    pub depth: usize,
}

impl Tok<'_> {
    pub fn is_kw(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.raw.eq_ignore_ascii_case(w)
    }

    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == TokKind::Punct && self.raw == p
    }

    /// The identifier this token names, unquoted; `None` for literals and punctuation.
    pub fn name(&self) -> Option<String> {
        match self.kind {
            TokKind::Word => Some(self.raw.to_string()),
            TokKind::Quoted => {
                let open = self.raw.chars().next()?;
                let close = if open == '[' { ']' } else { open };
                let inner = self.raw.strip_prefix(open).unwrap_or(self.raw);
                let inner = inner.strip_suffix(close).unwrap_or(inner);
                Some(if open == '[' {
                    inner.to_string()
                } else {
                    inner.replace(&format!("{close}{close}"), &close.to_string())
                })
            }
            TokKind::Str | TokKind::Punct => None,
        }
    }
}

fn quoted_len(s: &str, close: char) -> usize {
    let mut iter = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = iter.next() {
        if c == close {
            if close != ']' && iter.peek().map(|&(_, n)| n) == Some(close) {
                iter.next();
                continue;
            }
            return i + c.len_utf8();
        }
    }
    s.len()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Tokens of `sql`, comments and whitespace dropped. Unterminated quotes run to the end.
pub(super) fn tokenize(sql: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let (mut pos, mut depth, mut space) = (0usize, 0usize, false);
    while let Some(c) = sql[pos..].chars().next() {
        let rest = &sql[pos..];
        if c.is_whitespace() {
            space = true;
            pos += c.len_utf8();
            continue;
        }
        if rest.starts_with("--") {
            space = true;
            pos += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        if let Some(body) = rest.strip_prefix("/*") {
            space = true;
            pos += body.find("*/").map_or(rest.len(), |i| i + 4);
            continue;
        }
        let (kind, len) = match c {
            '\'' => (TokKind::Str, quoted_len(rest, '\'')),
            '"' => (TokKind::Quoted, quoted_len(rest, '"')),
            '`' => (TokKind::Quoted, quoted_len(rest, '`')),
            '[' => (TokKind::Quoted, quoted_len(rest, ']')),
            'x' | 'X' if rest[1..].starts_with('\'') => {
                (TokKind::Str, 1 + quoted_len(&rest[1..], '\''))
            }
            c if is_word_char(c) => (
                TokKind::Word,
                rest.find(|ch: char| !is_word_char(ch))
                    .unwrap_or(rest.len()),
            ),
            c => (TokKind::Punct, c.len_utf8()),
        };
        if c == ')' {
            depth = depth.saturating_sub(1);
        }
        out.push(Tok {
            kind,
            raw: &rest[..len],
            offset: pos,
            space_before: space,
            depth,
        });
        if c == '(' {
            depth += 1;
        }
        space = false;
        pos += len;
    }
    out
}

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
    if toks.get(i).is_some_and(|t| t.is_kw("if")) {
        i += 1;
        if toks.get(i).is_some_and(|t| t.is_kw("not")) {
            i += 1;
        }
        if toks.get(i).is_some_and(|t| t.is_kw("exists")) {
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
        "DROP" if toks.get(1)?.is_kw("table") => {
            qualified(toks, skip_if(toks, 2)).map(|(n, _)| Kind::DropTable(n))
        }
        "ALTER" if toks.get(1)?.is_kw("table") => classify_alter(toks),
        "UPDATE" | "DELETE" => classify_dml(toks, 0),
        "WITH" => {
            let verb = toks.iter().position(|t| {
                t.depth == 0
                    && ["update", "delete", "insert", "replace", "select"]
                        .iter()
                        .any(|w| t.is_kw(w))
            })?;
            classify_dml(toks, verb)
        }
        _ => None,
    }
}

fn classify_create(toks: &[Tok]) -> Option<Kind> {
    let mut i = 1;
    let unique = toks.get(i)?.is_kw("unique");
    if unique {
        i += 1;
    }
    if toks.get(i)?.is_kw("temp") || toks.get(i)?.is_kw("temporary") {
        i += 1;
    }
    let what = toks.get(i)?;
    if what.is_kw("table") {
        let (name, _) = qualified(toks, skip_if(toks, i + 1))?;
        return Some(Kind::CreateTable(name));
    }
    if what.is_kw("index") {
        let (name, next) = qualified(toks, skip_if(toks, i + 1))?;
        if !toks.get(next)?.is_kw("on") {
            return None;
        }
        let (table, _) = qualified(toks, next + 1)?;
        return Some(Kind::CreateIndex {
            name,
            table,
            unique,
        });
    }
    if what.is_kw("trigger") {
        let (name, _) = qualified(toks, skip_if(toks, i + 1))?;
        let body_offset = toks
            .iter()
            .find(|t| t.depth == 0 && t.is_kw("begin"))
            .map(|t| t.offset);
        return Some(Kind::CreateTrigger { name, body_offset });
    }
    None
}

fn classify_alter(toks: &[Tok]) -> Option<Kind> {
    let (table, mut i) = qualified(toks, 2)?;
    let action = toks.get(i)?;
    i += 1;
    if action.is_kw("rename") {
        if toks.get(i)?.is_kw("to") {
            let (to, _) = qualified(toks, i + 1)?;
            return Some(Kind::RenameTable { table, to });
        }
        if toks.get(i)?.is_kw("column") {
            i += 1;
        }
        let from = toks.get(i)?.name()?;
        if !toks.get(i + 1)?.is_kw("to") {
            return None;
        }
        let to = toks.get(i + 2)?.name()?;
        return Some(Kind::RenameColumn { table, from, to });
    }
    if toks.get(i).is_some_and(|t| t.is_kw("column")) {
        i += 1;
    }
    let column = toks.get(i)?.name()?;
    if action.is_kw("drop") {
        return Some(Kind::DropColumn { table, column });
    }
    if !action.is_kw("add") {
        return None;
    }
    // The column definition's own constraints sit at depth 0; `CHECK (x IS NOT NULL)` and
    // the like sit inside parentheses.
    let def = &toks[i + 1..];
    let top = |w: &str| def.iter().any(|t| t.depth == 0 && t.is_kw(w));
    let not_null = def
        .windows(2)
        .any(|w| w[0].depth == 0 && w[0].is_kw("not") && w[1].is_kw("null"));
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
    let update = v.is_kw("update");
    if update {
        if toks.get(i)?.is_kw("or") {
            i += 2;
        }
    } else if v.is_kw("delete") {
        if !toks.get(i)?.is_kw("from") {
            return None;
        }
        i += 1;
    } else {
        return None;
    }
    let (table, next) = qualified(toks, i)?;
    let has_where = toks[next..]
        .iter()
        .any(|t| t.depth == 0 && t.is_kw("where"));
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
