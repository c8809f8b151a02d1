//! The SQL lexer under fingerprints: SQLite's token rules (quotes, blobs, numbers, the
//! five parameter styles, comments, multi-character operators), with literals and
//! parameters already reduced to one placeholder token. Never fails: bytes it does not know
//! pass through as operators. Must not decide spacing or collapse lists (the parent does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok<'a> {
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

pub(super) const ELLIPSIS: &str = "…";

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

pub(super) fn lex(sql: &str) -> Vec<Tok<'_>> {
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
                i = s[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(s.len(), |p| i + p);
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
                i = s[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(s.len(), |p| i + p + 1);
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

/// SQLite's keywords (sqlite.org/lang_keywords.html) plus TRUE and FALSE, sorted.
#[rustfmt::skip]
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

pub(super) fn is_keyword(word: &str) -> bool {
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

    #[test]
    fn keywords_are_sorted_and_unique() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_keyword("select") && is_keyword("Current_Timestamp"));
        assert!(!is_keyword("users") && !is_keyword("données"));
    }

    #[test]
    fn literals_and_parameters_are_one_token() {
        let toks = lex("x = 'a''b' AND y IN (?1, :n) -- c");
        assert_eq!(toks.iter().filter(|t| **t == Tok::Param).count(), 3);
        assert!(!toks.iter().any(|t| matches!(t, Tok::Word("c", _))));
    }
}
