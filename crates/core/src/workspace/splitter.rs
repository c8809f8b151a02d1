//! Splits migration SQL into statements the way SQLite itself would.
//!
//! A lightweight scanner finds `;` outside strings, quoted identifiers and comments; each
//! candidate is confirmed with SQLite's own `sqlite3_complete()`, so trigger bodies with inner
//! `;` (`BEGIN ... ; ... END;`) stay whole. Owns no I/O.
use std::ffi::CString;

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

/// Whether `sql` ends a complete statement by SQLite's own rules.
fn sqlite_complete(sql: &str) -> Option<bool> {
    let c = CString::new(sql).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; sqlite3_complete
    // only reads it and needs no initialised library.
    Some(unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) } != 0)
}

/// Splits `text` into statements. Comments and whitespace between statements are not
/// statements; a final statement without `;` is accepted when SQLite would accept it.
pub fn split_statements(text: &str) -> Result<Split, SplitError> {
    let bytes = text.as_bytes();
    let mut out = Split::default();
    let mut line = 1usize;
    // Start of the current statement's region (after the previous `;`).
    let mut region_start = 0usize;
    // Byte offset and line of the current statement's first token.
    let mut first_token: Option<(usize, usize)> = None;
    let mut comments: Vec<String> = Vec::new();
    // End of the last token that is not a comment (a final statement ends there).
    let mut token_end = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'\0' => return Err(SplitError::Nul { line }),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                comments.push(text[i + 2..end].trim().to_string());
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start_line = line;
                let Some(n) = text[i + 2..].find("*/") else {
                    return Err(SplitError::Unterminated {
                        line: start_line,
                        what: "/* comment",
                    });
                };
                let body = &text[i + 2..i + 2 + n];
                line += body.matches('\n').count();
                comments.push(body.trim().to_string());
                i += n + 4;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if b == b'[' { b']' } else { b };
                let start_line = line;
                first_token.get_or_insert((i, line));
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => {
                            return Err(SplitError::Unterminated {
                                line: start_line,
                                what: match b {
                                    b'\'' => "string literal",
                                    _ => "quoted identifier",
                                },
                            });
                        }
                        Some(&c) if c == close => {
                            // A doubled quote is an escaped quote (not for `[...]`).
                            if close != b']' && bytes.get(j + 1) == Some(&close) {
                                j += 2;
                                continue;
                            }
                            break;
                        }
                        Some(&b'\n') => line += 1,
                        Some(&b'\0') => return Err(SplitError::Nul { line }),
                        Some(_) => {}
                    }
                    j += 1;
                }
                i = j + 1;
                token_end = i;
            }
            b';' => {
                let candidate = &text[region_start..=i];
                if first_token.is_none() {
                    // An empty statement (`;;`): SQLite skips it, so do we.
                    region_start = i + 1;
                } else if sqlite_complete(candidate).unwrap_or(true) {
                    push(&mut out, text, first_token.take(), i, &mut comments);
                    region_start = i + 1;
                }
                i += 1;
                token_end = i;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                first_token.get_or_insert((i, line));
                i += 1;
                token_end = i;
            }
        }
    }
    if let Some((start, start_line)) = first_token {
        let rest = &text[region_start..];
        if sqlite_complete(&format!("{rest};")).unwrap_or(false) {
            push(
                &mut out,
                text,
                Some((start, start_line)),
                token_end,
                &mut comments,
            );
        } else {
            return Err(SplitError::Unterminated {
                line: start_line,
                what: "statement (a CREATE TRIGGER without END;?)",
            });
        }
    }
    out.trailing_comments = comments;
    Ok(out)
}

fn push(
    out: &mut Split,
    text: &str,
    first: Option<(usize, usize)>,
    end: usize,
    comments: &mut Vec<String>,
) {
    if let Some((start, line)) = first {
        out.statements.push(Statement {
            sql: text[start..end].trim_end().to_string(),
            line,
            comments: std::mem::take(comments),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[(&str, usize)]) {
        let got = split_statements(text).unwrap();
        let got: Vec<(&str, usize)> = got
            .statements
            .iter()
            .map(|s| (s.sql.as_str(), s.line))
            .collect();
        assert_eq!(got, expected, "splitting {text:?}");
    }

    #[test]
    fn simple_statements_and_lines() {
        check(
            "CREATE TABLE a(x);\n\nINSERT INTO a VALUES (1);",
            &[("CREATE TABLE a(x)", 1), ("INSERT INTO a VALUES (1)", 3)],
        );
    }

    #[test]
    fn semicolons_inside_strings_identifiers_and_comments() {
        check(
            "INSERT INTO a VALUES ('x;y', 'it''s;');\n-- a; comment\n/* b; */ SELECT \"c;d\", [e;f], `g;h`;",
            &[
                ("INSERT INTO a VALUES ('x;y', 'it''s;')", 1),
                ("SELECT \"c;d\", [e;f], `g;h`", 3),
            ],
        );
    }

    #[test]
    fn trigger_body_stays_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\n  DELETE FROM b;\nEND;\nSELECT 1;";
        let s = split_statements(sql).unwrap();
        assert_eq!(s.statements.len(), 2);
        assert!(s.statements[0].sql.ends_with("END"));
        assert_eq!(s.statements[1].line, 5);
    }

    #[test]
    fn last_statement_without_semicolon() {
        check(
            "SELECT 1;\nSELECT 2\n-- done\n",
            &[("SELECT 1", 1), ("SELECT 2", 2)],
        );
    }

    #[test]
    fn comments_attach_to_following_statement() {
        let s = split_statements("-- d1ops:allow lint.x because\nDROP TABLE a;\n-- tail").unwrap();
        assert_eq!(s.statements[0].comments, vec!["d1ops:allow lint.x because"]);
        assert_eq!(s.trailing_comments, vec!["tail"]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = split_statements("SELECT 1;\nINSERT INTO a VALUES ('oops);\n").unwrap_err();
        assert_eq!(
            e,
            SplitError::Unterminated {
                line: 2,
                what: "string literal"
            }
        );
        let e = split_statements("SELECT 1;\n/* open").unwrap_err();
        assert_eq!(e.line(), 2);
        let e = split_statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;").unwrap_err();
        assert_eq!(e.line(), 1);
    }

    #[test]
    fn empty_statements_skipped() {
        check(";;SELECT 1;;", &[("SELECT 1", 1)]);
        check("-- only a comment\n", &[]);
    }
}
