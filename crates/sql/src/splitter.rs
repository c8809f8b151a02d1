//! The one statement splitter: where SQL text ends one statement and starts the next, by
//! SQLite's own rules.
//!
//! A lightweight scanner finds each `;` outside strings, quoted identifiers and comments;
//! each candidate is confirmed with SQLite's `sqlite3_complete()`, so trigger bodies with
//! inner `;` (`BEGIN ... ; ... END;`) stay whole. [`pieces`] is the core; the two shapes
//! d1ops needs are thin adapters over it: [`split_statements`] for migration files (lines,
//! comments, errors naming the line) and [`batch_statements`] for a `/query` batch item
//! (D1's split: every piece of text, nothing refused). Owns no I/O.
use std::ffi::CString;

/// One stretch of text the scanner cut: everything after the previous piece up to and
/// including the `;` that completes a statement (the last piece: up to the end of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The piece's whole text: leading whitespace and comments included.
    pub text: &'a str,
    /// The statement in it, from its first token to its `;` (excluded) or, in the last
    /// piece, to its last token; `None` when it holds only whitespace, comments and `;`.
    pub sql: Option<&'a str>,
    /// 1-based line of the statement's first token (of the piece's start without one).
    pub line: usize,
    /// The piece's comments without their `--` / `/* */` markers, trimmed.
    pub comments: Vec<&'a str>,
    /// Whether a `;` ends the piece (every piece but the last).
    pub terminated: bool,
}

impl Piece<'_> {
    /// Whether SQLite takes the piece as a complete statement: it ends in its `;`, or would
    /// with one appended (a trigger still missing its `END` would not; nor would text
    /// holding a NUL byte).
    pub fn is_complete(&self) -> bool {
        self.terminated || sqlite_complete(&format!("{};", self.text)).unwrap_or(false)
    }
}

/// The pieces of a text, in order; the last one (possibly blank) runs to the end of the
/// text. Scanning never stops early: the first malformed construct (an unterminated string,
/// identifier or comment, a NUL byte) is kept in [`Pieces::error`] for callers that refuse
/// malformed text.
pub fn pieces(text: &str) -> Pieces<'_> {
    Pieces {
        text,
        pos: 0,
        line: 1,
        error: None,
        done: false,
    }
}

/// The iterator [`pieces`] returns.
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    text: &'a str,
    /// Where the next piece starts, and its line.
    pos: usize,
    line: usize,
    error: Option<SplitError>,
    done: bool,
}

impl Pieces<'_> {
    /// The first malformed construct scanned so far.
    pub fn error(&self) -> Option<&SplitError> {
        self.error.as_ref()
    }

    fn fail(&mut self, e: SplitError) {
        self.error.get_or_insert(e);
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.done {
            return None;
        }
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.pos;
        let start_line = self.line;
        // Byte offset and line of the statement's first token.
        let mut first: Option<(usize, usize)> = None;
        let mut comments = Vec::new();
        // End of the last token that is not a comment (a final statement ends there).
        let mut token_end = start;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    self.line += 1;
                    i += 1;
                }
                b'\0' => {
                    self.fail(SplitError::Nul { line: self.line });
                    first.get_or_insert((i, self.line));
                    i += 1;
                    token_end = i;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                    comments.push(text[i + 2..end].trim());
                    i = end;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => match text[i + 2..].find("*/") {
                    Some(n) => {
                        let body = &text[i + 2..i + 2 + n];
                        self.line += body.matches('\n').count();
                        comments.push(body.trim());
                        i += n + 4;
                    }
                    None => {
                        self.fail(SplitError::Unterminated {
                            line: self.line,
                            what: "/* comment",
                        });
                        i = bytes.len();
                    }
                },
                open @ (b'\'' | b'"' | b'`' | b'[') => {
                    first.get_or_insert((i, self.line));
                    i = self.quoted(i, open);
                    token_end = i;
                }
                b';' => {
                    // A `;` with no statement before it (`;;`) ends an empty piece, as
                    // SQLite skips it; an inner `;` of a trigger body ends nothing.
                    if first.is_none() || sqlite_complete(&text[start..=i]).unwrap_or(true) {
                        self.pos = i + 1;
                        return Some(Piece {
                            text: &text[start..=i],
                            sql: first.map(|(f, _)| text[f..i].trim_end()),
                            line: first.map_or(start_line, |(_, l)| l),
                            comments,
                            terminated: true,
                        });
                    }
                    i += 1;
                    token_end = i;
                }
                c if c.is_ascii_whitespace() => i += 1,
                _ => {
                    first.get_or_insert((i, self.line));
                    i += 1;
                    token_end = i;
                }
            }
        }
        self.done = true;
        self.pos = bytes.len();
        Some(Piece {
            text: &text[start..],
            sql: first.map(|(f, _)| text[f..token_end].trim_end()),
            line: first.map_or(start_line, |(_, l)| l),
            comments,
            terminated: false,
        })
    }
}

impl Pieces<'_> {
    /// Skips the string or quoted identifier opened at `open_at`; returns the offset after
    /// its closing quote (the end of the text when it has none).
    fn quoted(&mut self, open_at: usize, open: u8) -> usize {
        let bytes = self.text.as_bytes();
        let close = if open == b'[' { b']' } else { open };
        let start_line = self.line;
        let mut j = open_at + 1;
        loop {
            match bytes.get(j) {
                None => {
                    self.fail(SplitError::Unterminated {
                        line: start_line,
                        what: match open {
                            b'\'' => "string literal",
                            _ => "quoted identifier",
                        },
                    });
                    return bytes.len();
                }
                Some(&c) if c == close => {
                    // A doubled quote is an escaped quote (not for `[...]`).
                    if close != b']' && bytes.get(j + 1) == Some(&close) {
                        j += 2;
                        continue;
                    }
                    return j + 1;
                }
                Some(&b'\n') => self.line += 1,
                Some(&b'\0') => self.fail(SplitError::Nul { line: self.line }),
                Some(_) => {}
            }
            j += 1;
        }
    }
}

/// Whether `sql` ends a complete statement by SQLite's own rules; `None` when it holds a
/// NUL byte (SQLite would stop reading there).
fn sqlite_complete(sql: &str) -> Option<bool> {
    let c = CString::new(sql).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; sqlite3_complete
    // only reads it and needs no initialised library.
    Some(unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) } != 0)
}

/// One statement of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement text from its first token up to, not including, the terminating `;`.
    pub sql: String,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// Comments that precede the statement (after the previous one) or sit inside it, without
    /// their `--` / `/* */` markers, trimmed.
    pub comments: Vec<String>,
}

/// The statements of a text plus the comments after the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub statements: Vec<Statement>,
    pub trailing_comments: Vec<String>,
}

impl Split {
    /// Every comment of the text, in order.
    pub fn all_comments(&self) -> impl Iterator<Item = &str> {
        self.statements
            .iter()
            .flat_map(|s| s.comments.iter())
            .chain(self.trailing_comments.iter())
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("line {line}: unterminated {what}")]
    Unterminated { line: usize, what: &'static str },
    #[error("line {line}: NUL byte in SQL text")]
    Nul { line: usize },
}

impl SplitError {
    pub fn line(&self) -> usize {
        match self {
            SplitError::Unterminated { line, .. } | SplitError::Nul { line } => *line,
        }
    }
}

/// Splits a migration file into statements. Comments and whitespace between statements are
/// not statements (their comments go to the next one); a final statement without `;` is
/// accepted when SQLite would accept it. Malformed text is refused, naming the line.
pub fn split_statements(text: &str) -> Result<Split, SplitError> {
    let mut scan = pieces(text);
    let mut out = Split::default();
    let mut comments: Vec<String> = Vec::new();
    let mut incomplete = None;
    for piece in scan.by_ref() {
        comments.extend(piece.comments.iter().map(|c| c.to_string()));
        let Some(sql) = piece.sql else { continue };
        if !piece.is_complete() {
            incomplete = Some(piece.line);
            continue;
        }
        out.statements.push(Statement {
            sql: sql.to_string(),
            line: piece.line,
            comments: std::mem::take(&mut comments),
        });
    }
    if let Some(e) = scan.error() {
        return Err(e.clone());
    }
    if let Some(line) = incomplete {
        return Err(SplitError::Unterminated {
            line,
            what: "statement (a CREATE TRIGGER without END;?)",
        });
    }
    out.trailing_comments = comments;
    Ok(out)
}

/// Splits one batch item the way D1's `/query` does: at every `;` that completes a
/// statement. Each piece is trimmed and loses its final `;`; blank pieces are dropped, while
/// a piece of comments alone is kept (SQLite prepares it to nothing). Refuses nothing:
/// malformed SQL is SQLite's to report when it runs.
pub fn batch_statements(sql: &str) -> Vec<&str> {
    pieces(sql)
        .map(|p| p.text.trim().trim_end_matches(';').trim_end())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
#[path = "splitter_tests.rs"]
mod tests;
