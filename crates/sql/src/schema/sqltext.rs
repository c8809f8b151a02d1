//! A small, forgiving SQL tokenizer for the text SQLite stores in `sqlite_schema`, and the
//! normal forms built on it: a canonical form for fingerprints, a folded form for display,
//! comparison keys, and the split of a `CREATE TABLE` into its definition segments.
//!
//! It must not try to *parse* SQL or reject anything: unknown input becomes tokens, an
//! unterminated quote runs to the end. Comments and whitespace are dropped.

/// What a token is, as far as normalisation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    /// A bare word: keyword, identifier or number.
    Word,
    /// A quoted identifier: `"x"`, `` `x` `` or `[x]`.
    Quoted,
    /// A string or blob literal, quotes included.
    Str,
    /// Punctuation or an operator.
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokKind,
    /// The token exactly as written.
    pub raw: &'a str,
    /// Byte offset in the text.
    pub offset: usize,
    /// Whether whitespace or a comment preceded it.
    pub space_before: bool,
    /// Parenthesis depth the token sits at (a `(` and its `)` are at the outer depth).
    pub depth: usize,
}

impl Token<'_> {
    /// Comparison key: names unquoted and lowercased (SQLite names are case-insensitive and
    /// `"users"` is `users`), everything else as written.
    pub fn key(&self) -> String {
        match self.kind {
            TokKind::Word => self.raw.to_lowercase(),
            TokKind::Quoted => unquote(self.raw).to_lowercase(),
            TokKind::Str | TokKind::Punct => self.raw.to_string(),
        }
    }

    pub fn is_name(&self) -> bool {
        matches!(self.kind, TokKind::Word | TokKind::Quoted)
    }

    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == TokKind::Punct && self.raw == p
    }

    pub fn is_word(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.raw.eq_ignore_ascii_case(w)
    }

    /// The identifier this token names, unquoted (case kept); `None` for literals and
    /// punctuation.
    pub fn name(&self) -> Option<String> {
        match self.kind {
            TokKind::Word => Some(self.raw.to_string()),
            TokKind::Quoted => Some(unquote(self.raw)),
            TokKind::Str | TokKind::Punct => None,
        }
    }
}

const OPERATORS: [&str; 10] = ["->>", "<=", ">=", "<>", "!=", "==", "||", "<<", ">>", "->"];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Byte length of a quoted run starting at `s[0]` and closed by `close`, where a doubled
/// `close` is an escape (unless `close` is `]`). Unterminated runs take the rest.
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

pub fn tokenize(sql: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut depth = 0usize;
    let mut space = false;
    while pos < sql.len() {
        let rest = &sql[pos..];
        let Some(c) = rest.chars().next() else { break };
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
            c if is_word_char(c) => {
                let len = rest
                    .find(|ch: char| !is_word_char(ch))
                    .unwrap_or(rest.len());
                (TokKind::Word, len)
            }
            c => {
                let len = OPERATORS
                    .iter()
                    .find(|op| rest.starts_with(*op))
                    .map_or(c.len_utf8(), |op| op.len());
                (TokKind::Punct, len)
            }
        };
        if c == ')' {
            depth = depth.saturating_sub(1);
        }
        out.push(Token {
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

/// The name inside a quoted identifier, escapes undone; bare text is returned as is.
pub fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    let (open, close) = match chars.next() {
        Some('"') => ('"', '"'),
        Some('`') => ('`', '`'),
        Some('[') => ('[', ']'),
        _ => return raw.to_string(),
    };
    let inner = raw.strip_prefix(open).unwrap_or(raw);
    let inner = inner.strip_suffix(close).unwrap_or(inner);
    if close == ']' {
        inner.to_string()
    } else {
        let doubled: String = [close, close].iter().collect();
        inner.replace(&doubled, &close.to_string())
    }
}

fn glue(prev: &Token, cur: &Token) -> bool {
    prev.is_punct("(")
        || prev.is_punct(".")
        || [")", ",", ";", ".", "("].iter().any(|p| cur.is_punct(p))
}

/// Canonical text: comments dropped, one space between tokens except around brackets,
/// commas, dots and semicolons. Two statements that differ only in whitespace or comments
/// have the same canonical text. Case and quoting are kept.
pub fn canonical(sql: &str) -> String {
    join(&tokenize(sql), |prev, cur| !glue(prev, cur))
}

/// Display text: comments dropped, whitespace runs folded to one space, no space just
/// inside brackets or before a comma. Otherwise spacing is as written.
pub fn fold(sql: &str) -> String {
    join_display(&tokenize(sql))
}

pub fn join_display(tokens: &[Token]) -> String {
    join(tokens, |prev, cur| {
        cur.space_before && !prev.is_punct("(") && !cur.is_punct(")") && !cur.is_punct(",")
    })
}

fn join(tokens: &[Token], space: impl Fn(&Token, &Token) -> bool) -> String {
    let mut out = String::new();
    let mut prev: Option<&Token> = None;
    for tok in tokens {
        if let Some(p) = prev
            && space(p, tok)
        {
            out.push(' ');
        }
        out.push_str(tok.raw);
        prev = Some(tok);
    }
    out
}

/// A `CREATE TABLE` split at its top-level definition list.
#[derive(Debug)]
pub struct TableParts<'a> {
    /// Column definitions and table constraints, in order, without separating commas.
    pub segments: Vec<Vec<Token<'a>>>,
    /// Everything after the closing bracket (`WITHOUT ROWID`, `STRICT`).
    pub tail: Vec<Token<'a>>,
}

/// Splits `CREATE [VIRTUAL] TABLE name (defs) tail`. `None` when there is no bracketed
/// definition list (which SQLite never stores for a table, but input is input).
pub fn table_parts(sql: &str) -> Option<TableParts<'_>> {
    let tokens = tokenize(sql);
    let open = tokens.iter().position(|t| t.is_punct("("))?;
    let mut depth = 0usize;
    let mut segments = vec![Vec::new()];
    for (i, tok) in tokens.iter().enumerate().skip(open + 1) {
        if tok.is_punct("(") {
            depth += 1;
        } else if tok.is_punct(")") {
            if depth == 0 {
                let tail = tokens[i + 1..].to_vec();
                segments.retain(|s: &Vec<Token>| !s.is_empty());
                return Some(TableParts { segments, tail });
            }
            depth -= 1;
        } else if tok.is_punct(",") && depth == 0 {
            segments.push(Vec::new());
            continue;
        }
        if let Some(last) = segments.last_mut() {
            last.push(*tok);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ignores_whitespace_and_comments() {
        let a = canonical("CREATE TABLE t(a INT, b TEXT DEFAULT 'x  y')");
        let b =
            canonical("CREATE  TABLE t (\n  a INT , -- note\n  b /* c */ TEXT DEFAULT 'x  y'\n)");
        assert_eq!(a, b);
        assert_eq!(a, "CREATE TABLE t(a INT, b TEXT DEFAULT 'x  y')");
    }

    #[test]
    fn tokens_cover_quotes_blobs_and_operators() {
        let toks = tokenize(r#"a "b""c" [d e] `f` 'g''h' x'00' >= -1"#);
        let raws: Vec<&str> = toks.iter().map(|t| t.raw).collect();
        assert_eq!(
            raws,
            [
                "a",
                r#""b""c""#,
                "[d e]",
                "`f`",
                "'g''h'",
                "x'00'",
                ">=",
                "-",
                "1"
            ]
        );
        assert_eq!(toks[1].key(), r#"b"c"#);
        assert_eq!(toks[2].key(), "d e");
    }

    #[test]
    fn fold_keeps_written_spacing() {
        assert_eq!(
            fold("CREATE TABLE t ( a INT DEFAULT -1 ,\n b )"),
            "CREATE TABLE t (a INT DEFAULT -1, b)"
        );
    }

    #[test]
    fn table_parts_split_top_level() {
        let parts =
            table_parts("CREATE TABLE t(a DECIMAL(10, 2), CHECK (a > 0)) STRICT").expect("parts");
        assert_eq!(parts.segments.len(), 2);
        assert_eq!(join_display(&parts.segments[0]), "a DECIMAL(10, 2)");
        assert_eq!(join_display(&parts.tail), "STRICT");
    }
}
