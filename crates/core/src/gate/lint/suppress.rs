//! Per-statement suppression: `-- d1ops:allow <id>[,<id>...] <reason>` in a comment attached
//! to a statement (just before it, inside it, or after its `;` on the same line). The id may
//! be a finding id or a lint check id; a directive without a reason suppresses nothing and is
//! itself a finding.
//!
//! Reads comments only; it does not decide severities (that is `catalogue.rs`).
use super::Drafts;
use super::catalogue::{self, Rule};
use crate::workspace::Migration;

const PREFIX: &str = "d1ops:allow";

/// One `d1ops:allow` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Directive {
    pub targets: Vec<String>,
    /// `None` when no reason was written.
    pub reason: Option<String>,
}

/// The directives attached to each statement of `m`, by statement index.
pub(super) fn directives(m: &Migration) -> Vec<Vec<Directive>> {
    comments_per_statement(m)
        .iter()
        .map(|comments| comments.iter().flat_map(|c| parse(c)).collect())
        .collect()
}

/// The reason a directive in `list` gives for suppressing `rule`, if any does.
pub(super) fn matching(list: &[Directive], rule: &Rule) -> Option<String> {
    // Findings about the directives themselves cannot be suppressed by them, nor a
    // statement that does not apply.
    if rule.id.starts_with("lint.suppression") || rule.id == "lint.apply-failed" {
        return None;
    }
    list.iter().find_map(|d| {
        let hit = d.targets.iter().any(|t| t == rule.id || t == rule.check);
        if hit { d.reason.clone() } else { None }
    })
}

/// Findings about malformed directives: no reason, or an id lint does not know.
pub(super) fn check_directives(per_statement: &[Vec<Directive>], out: &mut Drafts<'_>) {
    for (si, list) in per_statement.iter().enumerate() {
        for d in list {
            if d.targets.is_empty() {
                out.push(
                    "lint.suppression-without-reason",
                    Some(si),
                    "`-- d1ops:allow` names no finding id and gives no reason, so it suppresses nothing".into(),
                );
                continue;
            }
            for t in &d.targets {
                if !catalogue::is_known(t) {
                    out.push(
                        "lint.suppression-unknown-id",
                        Some(si),
                        format!("`-- d1ops:allow {t}`: {t} is not a lint finding or check id, so it suppresses nothing"),
                    );
                } else if d.reason.is_none() {
                    let check = catalogue::rule_of(t).map_or(t.as_str(), |r| r.check);
                    out.push_in_check(
                        "lint.suppression-without-reason",
                        check,
                        Some(si),
                        format!(
                            "`-- d1ops:allow {t}` gives no reason, so it does not suppress {t}"
                        ),
                    );
                }
            }
        }
    }
}

/// Parses the directives in one comment (a block comment may hold several lines).
fn parse(comment: &str) -> Vec<Directive> {
    comment
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('*').trim_start();
            let rest = line.strip_prefix(PREFIX)?;
            // `d1ops:allow-data-loss` is a different directive.
            if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return None;
            }
            let rest = rest.trim();
            let (ids, reason) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(a, b)| (a, b.trim()));
            Some(Directive {
                targets: ids
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                reason: reason
                    .chars()
                    .any(char::is_alphanumeric)
                    .then(|| reason.to_string()),
            })
        })
        .collect()
}

/// Each statement's comments, plus a comment that follows its `;` on the same line (which
/// the splitter attaches to the next statement).
fn comments_per_statement(m: &Migration) -> Vec<Vec<String>> {
    let mut per: Vec<Vec<String>> = m.statements.iter().map(|s| s.comments.clone()).collect();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(m.sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut from = 0usize;
    for (i, st) in m.statements.iter().enumerate() {
        let start = line_starts
            .get(st.line.saturating_sub(1))
            .copied()
            .unwrap_or(0)
            .max(from);
        let Some(pos) = m.sql.get(start..).and_then(|s| s.find(&st.sql)) else {
            continue;
        };
        let end = start + pos + st.sql.len();
        from = end;
        let Some(trailing) = same_line_comment(&m.sql[end..]) else {
            continue;
        };
        if let Some(next) = per.get_mut(i + 1)
            && next.first() == Some(&trailing)
        {
            next.remove(0);
        }
        per[i].push(trailing);
    }
    per
}

/// `; -- text` at the start of `rest`, before the end of the line.
fn same_line_comment(rest: &str) -> Option<String> {
    let line = rest.split('\n').next()?;
    let after = line.trim_start().strip_prefix(';')?;
    let text = after.trim_start().strip_prefix("--")?;
    Some(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(sql: &str) -> Migration {
        Migration::from_sql("1.sql", "1.sql", sql.into(), false).unwrap()
    }

    #[test]
    fn parses_ids_and_reasons() {
        assert_eq!(
            parse("d1ops:allow destructive.drop-table,risk.cascade-rebuild  table is unused "),
            [Directive {
                targets: vec![
                    "destructive.drop-table".into(),
                    "risk.cascade-rebuild".into()
                ],
                reason: Some("table is unused".into())
            }]
        );
        assert_eq!(
            parse("d1ops:allow destructive.drop-table"),
            [Directive {
                targets: vec!["destructive.drop-table".into()],
                reason: None
            }]
        );
        assert!(parse("d1ops:allow-data-loss users").is_empty());
    }

    #[test]
    fn same_line_comment_belongs_to_its_statement() {
        let m = migration(
            "DROP TABLE a; -- d1ops:allow destructive.drop-table gone\nDROP TABLE b;\n-- d1ops:allow lint.destructive also gone\nDROP TABLE c; -- d1ops:allow x y",
        );
        let d = directives(&m);
        assert_eq!(d[0][0].targets, ["destructive.drop-table"]);
        assert!(d[1].is_empty(), "{:?}", d[1]);
        assert_eq!(d[2].len(), 2);
        assert_eq!(d[2][1].reason.as_deref(), Some("y"));
    }
}
