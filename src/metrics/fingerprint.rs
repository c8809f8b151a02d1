//! SQL fingerprints: the normalised text that groups "the same query with different values"
//! (literals and parameters → `?`, `IN (…)` lists → `IN (?…)`, repeated `VALUES` rows → one,
//! comments dropped, whitespace canonical, keywords upper-cased) and its short stable id.
//! A small hand-written lexer that follows SQLite's token rules; it never parses or
//! validates SQL, and never fails: text it does not understand passes through.
use sha2::{Digest, Sha256};

/// The normalised form of `sql`. Idempotent: `fingerprint(&fingerprint(s)) == fingerprint(s)`.
pub fn fingerprint(sql: &str) -> String {
    let mut tokens = lex(sql);
    collapse_lists(&mut tokens);
    while matches!(tokens.last(), Some(Tok::Punct(b';'))) {
        tokens.pop();
    }
    render(&tokens, sql.len())
}

/// A short stable id for a fingerprint: the first 12 hex digits of its SHA-256.
pub fn fingerprint_id(fingerprint: &str) -> String {
    let digest = Sha256::digest(fingerprint.as_bytes());
    hex::encode(&digest[..6])
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    /// An unquoted word; `true` when it is a keyword (rendered upper-case).
    Word(&'a str, bool),
    /// A quoted identifier, verbatim.
    Quoted(&'a str),
    /// A literal or a parameter.
    Param,
    /// A collapsed list of parameters.
    ParamList,
    Punct(u8),
    Op(&'a str),
}

const ELLIPSIS: &str = "…";

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn lex(sql: &str) -> Vec<Tok<'_>> {
    let s = sql.as_bytes();
    let mut out: Vec<Tok> = Vec::with_capacity(s.len() / 4);
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let next = s.get(i + 1).copied().unwrap_or(0);
        let start = i;
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if next == b'-' => {
                i = s[i..].iter().position(|&c| c == b'\n').map_or(s.len(), |p| i + p);
            }
            b'/' if next == b'*' => {
                i = s[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(s.len(), |p| i + 2 + p + 2);
            }
            b'\'' => {
                i = quoted_end(s, i, b'\'');
                push_literal(&mut out);
            }
            b'x' | b'X' if next == b'\'' => {
                i = quoted_end(s, i + 1, b'\'');
                push_literal(&mut out);
            }
            b'"' | b'`' => {
                i = quoted_end(s, i, b);
                out.push(Tok::Quoted(&sql[start..i]));
            }
            b'[' => {
                i = s[i..].iter().position(|&c| c == b']').map_or(s.len(), |p| i + p + 1);
                out.push(Tok::Quoted(&sql[start..i]));
            }
            b'0'..=b'9' => {
                i = number_end(s, i);
                push_literal(&mut out);
            }
            b'.' if next.is_ascii_digit() => {
                i = number_end(s, i);
                push_literal(&mut out);
            }
            b'?' => {
                i += 1;
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
                if sql[i..].starts_with(ELLIPSIS) {
                    i += ELLIPSIS.len();
                    out.push(Tok::ParamList);
                } else {
                    out.push(Tok::Param);
                }
            }
            b':' | b'@' | b'$' if is_ident(next) => {
                i += 1;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                out.push(Tok::Param);
            }
            b'(' | b')' | b',' | b';' | b'.' => {
                i += 1;
                out.push(Tok::Punct(b));
            }
            _ if sql[i..].starts_with(ELLIPSIS) => {
                i += ELLIPSIS.len();
                out.push(Tok::Op(ELLIPSIS));
            }
            _ if is_ident(b) => {
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                let word = &sql[start..i];
                out.push(Tok::Word(word, is_keyword(word)));
            }
            _ => {
                i += operator_len(&s[i..]);
                // Stay on a char boundary for anything we do not know.
                while !sql.is_char_boundary(i) {
                    i += 1;
                }
                out.push(Tok::Op(&sql[start..i]));
            }
        }
    }
    out
}

/// End (exclusive) of a quoted run starting at `i`, where a doubled quote escapes itself.
fn quoted_end(s: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < s.len() {
        if s[i] == quote {
            if s.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    s.len()
}

fn number_end(s: &[u8], mut i: usize) -> usize {
    if s[i] == b'0' && matches!(s.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < s.len() && s[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    let mut prev = 0u8;
    while i < s.len() {
        let c = s[i];
        let ok = c.is_ascii_digit()
            || c == b'.'
            || c == b'_'
            || matches!(c, b'e' | b'E')
            || (matches!(c, b'+' | b'-') && matches!(prev, b'e' | b'E'));
        if !ok {
            break;
        }
        prev = c;
        i += 1;
    }
    // A malformed tail such as `1abc` stays inside the literal.
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    i
}

fn operator_len(s: &[u8]) -> usize {
    const LONG: [&[u8]; 10] = [
        b"->>", b"||", b"<=", b">=", b"<>", b"!=", b"==", b"<<", b">>", b"->",
    ];
    LONG.iter()
        .find(|op| s.starts_with(op))
        .map_or(1, |op| op.len())
}

/// Pushes a literal, folding a unary sign in front of it (`= -5` → `= ?`).
fn push_literal(out: &mut Vec<Tok>) {
    let n = out.len();
    if n > 0 && matches!(out[n - 1], Tok::Op("-" | "+")) {
        let operand_before = n >= 2 && is_operand(&out[n - 2]);
        if !operand_before {
            out.pop();
        }
    }
    out.push(Tok::Param);
}

fn is_operand(t: &Tok) -> bool {
    match t {
        Tok::Word(w, kw) => {
            !kw || ["NULL", "TRUE", "FALSE", "END"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
                || (w.len() > 8 && w[..8].eq_ignore_ascii_case("CURRENT_"))
        }
        Tok::Quoted(_) | Tok::Param | Tok::ParamList | Tok::Punct(b')') => true,
        _ => false,
    }
}

fn word_is(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w, true)) if w.eq_ignore_ascii_case(kw))
}

/// `IN (?, ?, ?)` → `IN (?…)`; `VALUES (?, ?), (?, ?)` → `VALUES (?, ?)…`.
fn collapse_lists(tokens: &mut Vec<Tok>) {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i]);
        i += 1;
        if word_is(out.last(), "IN") {
            if let Some(end) = param_list_end(tokens, i) {
                out.extend([Tok::Punct(b'('), Tok::ParamList, Tok::Punct(b')')]);
                i = end;
            }
        } else if word_is(out.last(), "VALUES") {
            i = collapse_rows(tokens, i, &mut out);
        }
    }
    *tokens = out;
}

/// With `(` at `i` followed only by parameters and commas, the index after its `)`.
fn param_list_end(t: &[Tok], i: usize) -> Option<usize> {
    if t.get(i) != Some(&Tok::Punct(b'(')) {
        return None;
    }
    let mut j = i + 1;
    loop {
        match t.get(j)? {
            Tok::Param | Tok::ParamList => j += 1,
            _ => return None,
        }
        match t.get(j)? {
            Tok::Punct(b',') => j += 1,
            Tok::Punct(b')') => return Some(j + 1),
            _ => return None,
        }
    }
}

/// Copies the first `VALUES` row; identical rows after it become one `…`.
fn collapse_rows<'a>(t: &[Tok<'a>], i: usize, out: &mut Vec<Tok<'a>>) -> usize {
    let Some(row_end) = group_end(t, i) else {
        return i;
    };
    let row = &t[i..row_end];
    out.extend_from_slice(row);
    let mut j = row_end;
    let mut repeated = false;
    while t.get(j) == Some(&Tok::Punct(b',')) && t[j + 1..].starts_with(row) {
        j += 1 + row.len();
        repeated = true;
    }
    if t.get(j) == Some(&Tok::Op(ELLIPSIS)) {
        j += 1;
        repeated = true;
    }
    if repeated {
        out.push(Tok::Op(ELLIPSIS));
    }
    j
}

/// With `(` at `i`, the index after its matching `)`.
fn group_end(t: &[Tok], i: usize) -> Option<usize> {
    if t.get(i) != Some(&Tok::Punct(b'(')) {
        return None;
    }
    let mut depth = 0usize;
    for (k, tok) in t.iter().enumerate().skip(i) {
        match tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Keywords that read as function names: no space before their `(`.
const CALL_LIKE: [&str; 3] = ["CAST", "RAISE", "REPLACE"];

fn render(tokens: &[Tok], capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut prev: Option<&Tok> = None;
    for tok in tokens {
        if let Some(p) = prev {
            let tight = matches!(p, Tok::Punct(b'(' | b'.'))
                || matches!(tok, Tok::Punct(b')' | b',' | b'.' | b';') | Tok::Op(ELLIPSIS))
                || (matches!(tok, Tok::Punct(b'('))
                    && match p {
                        Tok::Word(w, kw) => {
                            !kw || CALL_LIKE.iter().any(|k| w.eq_ignore_ascii_case(k))
                        }
                        Tok::Quoted(_) => true,
                        _ => false,
                    });
            if !tight {
                out.push(' ');
            }
        }
        match tok {
            Tok::Word(w, true) => out.extend(w.chars().map(|c| c.to_ascii_uppercase())),
            Tok::Word(w, false) | Tok::Quoted(w) | Tok::Op(w) => out.push_str(w),
            Tok::Param => out.push('?'),
            Tok::ParamList => {
                out.push('?');
                out.push_str(ELLIPSIS);
            }
            Tok::Punct(c) => out.push(*c as char),
        }
        prev = Some(tok);
    }
    out
}

/// SQLite's keywords (sqlite.org/lang_keywords.html) plus TRUE and FALSE, sorted.
const KEYWORDS: [&str; 149] = [
    "ABORT", "ACTION", "ADD", "AFTER", "ALL", "ALTER", "ALWAYS", "ANALYZE", "AND", "AS", "ASC",
    "ATTACH", "AUTOINCREMENT", "BEFORE", "BEGIN", "BETWEEN", "BY", "CASCADE", "CASE", "CAST",
    "CHECK", "COLLATE", "COLUMN", "COMMIT", "CONFLICT", "CONSTRAINT", "CREATE", "CROSS",
    "CURRENT", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "DATABASE", "DEFAULT",
    "DEFERRABLE", "DEFERRED", "DELETE", "DESC", "DETACH", "DISTINCT", "DO", "DROP", "EACH",
    "ELSE", "END", "ESCAPE", "EXCEPT", "EXCLUDE", "EXCLUSIVE", "EXISTS", "EXPLAIN", "FAIL",
    "FALSE", "FILTER", "FIRST", "FOLLOWING", "FOR", "FOREIGN", "FROM", "FULL", "GENERATED",
    "GLOB", "GROUP", "GROUPS", "HAVING", "IF", "IGNORE", "IMMEDIATE", "IN", "INDEX", "INDEXED",
    "INITIALLY", "INNER", "INSERT", "INSTEAD", "INTERSECT", "INTO", "IS", "ISNULL", "JOIN",
    "KEY", "LAST", "LEFT", "LIKE", "LIMIT", "MATCH", "MATERIALIZED", "NATURAL", "NO", "NOT",
    "NOTHING", "NOTNULL", "NULL", "NULLS", "OF", "OFFSET", "ON", "OR", "ORDER", "OTHERS",
    "OUTER", "OVER", "PARTITION", "PLAN", "PRAGMA", "PRECEDING", "PRIMARY", "QUERY", "RAISE",
    "RANGE", "RECURSIVE", "REFERENCES", "REGEXP", "REINDEX", "RELEASE", "RENAME", "REPLACE",
    "RESTRICT", "RETURNING", "RIGHT", "ROLLBACK", "ROW", "ROWS", "SAVEPOINT", "SELECT", "SET",
    "TABLE", "TEMP", "TEMPORARY", "THEN", "TIES", "TO", "TRANSACTION", "TRIGGER", "TRUE",
    "UNBOUNDED", "UNION", "UNIQUE", "UPDATE", "USING", "VACUUM", "VALUES", "VIEW", "VIRTUAL",
    "WHEN", "WHERE", "WINDOW", "WITH", "WITHOUT",
];

fn is_keyword(word: &str) -> bool {
    if word.len() > 17 || !word.is_ascii() {
        return false;
    }
    let mut buf = [0u8; 17];
    let upper = &mut buf[..word.len()];
    upper.copy_from_slice(word.as_bytes());
    upper.make_ascii_uppercase();
    KEYWORDS
        .binary_search_by(|k| k.as_bytes().cmp(upper))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: &str) {
        let got = fingerprint(sql);
        assert_eq!(got, expected, "fingerprint of {sql:?}");
        assert_eq!(fingerprint(&got), got, "idempotent for {sql:?}");
    }

    #[test]
    fn keywords_are_sorted_and_unique() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn literals_become_placeholders() {
        check("select * from users where id = 42", "SELECT * FROM users WHERE id = ?");
        check("SELECT 'it''s', 1.5e-3, .5, 0xFF, x'CAFE'", "SELECT ?, ?, ?, ?, ?");
        check("select a from t where a = -5 and b > +2", "SELECT a FROM t WHERE a = ? AND b > ?");
        check("select a - 5, a-5, (-5) from t", "SELECT a - ?, a - ?, (?) FROM t");
        check("select true, false, NULL", "SELECT TRUE, FALSE, NULL");
        check("select t1.c2 from t1", "SELECT t1.c2 FROM t1");
        check("select null - 1", "SELECT NULL - ?");
    }

    #[test]
    fn every_parameter_style_becomes_a_question_mark() {
        check(
            "update t set a = ?1, b = :b, c = @c, d = $d, e = ? where id = ?123",
            "UPDATE t SET a = ?, b = ?, c = ?, d = ?, e = ? WHERE id = ?",
        );
    }

    #[test]
    fn whitespace_and_comments_fold() {
        check(
            "  SELECT\n\t a ,b -- trailing\nFROM /* hint */ t  ;\n",
            "SELECT a, b FROM t",
        );
        check("select count( * ) from t", "SELECT count(*) FROM t");
        check("select a-- unterminated at end", "SELECT a");
        check("select /* never closed", "SELECT");
    }

    #[test]
    fn lists_collapse() {
        check("select * from t where id in (1, 2, 3)", "SELECT * FROM t WHERE id IN (?…)");
        check("select * from t where id in (?)", "SELECT * FROM t WHERE id IN (?…)");
        check("select * from t where id IN (:a,:b)", "SELECT * FROM t WHERE id IN (?…)");
        check(
            "select * from t where id in (select id from u)",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
        );
        check(
            "insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z')",
            "INSERT INTO t(a, b) VALUES (?, ?)…",
        );
        check("insert into t values (1, 2)", "INSERT INTO t VALUES (?, ?)");
        check(
            "insert into t values (1, 2), (3, now())",
            "INSERT INTO t VALUES (?, ?), (?, now())",
        );
    }

    #[test]
    fn identifiers_and_quoting_are_kept() {
        check(
            r#"SELECT "Weird ""Col""", `b`, [c d] FROM "T""#,
            r#"SELECT "Weird ""Col""", `b`, [c d] FROM "T""#,
        );
        check("select données from été", "SELECT données FROM été");
        check("select cast(a as text) from t", "SELECT CAST(a AS text) FROM t");
        check("select a||b, a->>'$.x' from t", "SELECT a || b, a ->> ? FROM t");
        check("select 'unterminated", "SELECT ?");
    }

    #[test]
    fn ids_are_short_and_stable() {
        let id = fingerprint_id("SELECT ?");
        assert_eq!(id.len(), 12);
        assert_eq!(id, fingerprint_id("SELECT ?"));
        assert_ne!(id, fingerprint_id("SELECT ?, ?"));
    }
}
