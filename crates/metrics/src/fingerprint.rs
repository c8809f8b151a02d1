//! SQL fingerprints: the normalised text that groups "the same query with different values"
//! (literals and parameters → `?`, `IN (…)` lists → `IN (?…)`, repeated `VALUES` rows → one,
//! comments dropped, whitespace canonical, keywords upper-cased) and its short stable id.
//! A small hand-written lexer that follows SQLite's token rules; it never parses or
//! validates SQL, and never fails: text it does not understand passes through.
use sha2::{Digest, Sha256};

mod lexer;

use lexer::{ELLIPSIS, Tok, lex};

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
                || matches!(
                    tok,
                    Tok::Punct(b')' | b',' | b'.' | b';') | Tok::Op(ELLIPSIS)
                )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: &str) {
        let got = fingerprint(sql);
        assert_eq!(got, expected, "fingerprint of {sql:?}");
        assert_eq!(fingerprint(&got), got, "idempotent for {sql:?}");
    }

    #[test]
    fn literals_become_placeholders() {
        check(
            "select * from users where id = 42",
            "SELECT * FROM users WHERE id = ?",
        );
        check(
            "SELECT 'it''s', 1.5e-3, .5, 0xFF, x'CAFE'",
            "SELECT ?, ?, ?, ?, ?",
        );
        check(
            "select a from t where a = -5 and b > +2",
            "SELECT a FROM t WHERE a = ? AND b > ?",
        );
        check(
            "select a - 5, a-5, (-5) from t",
            "SELECT a - ?, a - ?, (?) FROM t",
        );
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
        check(
            "select * from t where id in (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (?…)",
        );
        check(
            "select * from t where id in (?)",
            "SELECT * FROM t WHERE id IN (?…)",
        );
        check(
            "select * from t where id IN (:a,:b)",
            "SELECT * FROM t WHERE id IN (?…)",
        );
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
        check(
            "select cast(a as text) from t",
            "SELECT CAST(a AS text) FROM t",
        );
        check(
            "select a||b, a->>'$.x' from t",
            "SELECT a || b, a ->> ? FROM t",
        );
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
