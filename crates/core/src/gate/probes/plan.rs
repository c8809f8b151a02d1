//! Reading `EXPLAIN QUERY PLAN`: the plan as an indented tree, which tables each step
//! SEARCHes or SCANs (aliases resolved from the probe's SQL), and what `plan.scan` flags when
//! the plan before migrations is compared with the plan after.
use std::collections::{BTreeMap, BTreeSet};

use super::report::PlanFinding;
use crate::backend::PlanStep;
use crate::gate::thousands;
use crate::model::CheckStatus;

/// The plan as lines, two spaces of indent per level (the `sqlite3` shell's tree).
pub fn render(steps: &[PlanStep]) -> Vec<String> {
    fn walk(steps: &[PlanStep], parent: i64, depth: usize, out: &mut Vec<String>) {
        for s in steps
            .iter()
            .filter(|s| s.parent == parent && s.id != parent)
        {
            out.push(format!("{}{}", "  ".repeat(depth), s.detail));
            walk(steps, s.id, depth + 1, out);
        }
    }
    let mut out = Vec::with_capacity(steps.len());
    walk(steps, 0, 0, &mut out);
    // Steps whose parent is missing (never seen from SQLite) still show.
    if out.len() < steps.len() {
        let ids: BTreeSet<i64> = steps.iter().map(|s| s.id).collect();
        for s in steps
            .iter()
            .filter(|s| s.parent != 0 && !ids.contains(&s.parent))
        {
            out.push(s.detail.clone());
        }
    }
    out
}

/// How a plan step reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// SEARCH (through an index or key) rather than SCAN (every row or index entry).
    pub search: bool,
    /// The name the plan printed (an alias when the SQL gave one).
    pub shown: String,
    /// What follows the name: `USING INDEX idx (a=?)`, `USING INTEGER PRIMARY KEY (rowid=?)`.
    pub using: String,
    pub detail: String,
}

impl Access {
    /// A SEARCH through an automatic index: SQLite builds it by scanning the table each run.
    fn automatic(&self) -> bool {
        self.using.contains("AUTOMATIC")
    }
    /// Reads every row or index entry (a SCAN, or an automatic index built from one).
    pub fn full(&self) -> bool {
        (!self.search || self.automatic()) && !self.using.contains("VIRTUAL TABLE")
    }
    /// A SEARCH through a real index or key.
    pub fn indexed(&self) -> bool {
        self.search && !self.automatic()
    }
    /// A SCAN in index order (`SCAN t USING [COVERING] INDEX i`): with a LIMIT it stops early.
    fn ordered(&self) -> bool {
        !self.search && self.using.contains("INDEX")
    }
}

/// The table accesses of a plan, in order.
pub fn accesses(steps: &[PlanStep]) -> Vec<Access> {
    steps.iter().filter_map(|s| access(&s.detail)).collect()
}

fn access(detail: &str) -> Option<Access> {
    let mut words = detail.split_whitespace().peekable();
    let search = match words.next()? {
        "SEARCH" => true,
        "SCAN" => false,
        _ => return None,
    };
    if words.peek() == Some(&"TABLE") {
        words.next();
    }
    let mut shown = words.next()?.to_string();
    if shown == "CONSTANT" || shown.starts_with('(') {
        return None;
    }
    // SQLite before 3.36 printed `SCAN TABLE users AS u`.
    if words.peek() == Some(&"AS") {
        words.next();
        shown = words.next().unwrap_or(&shown).to_string();
    }
    Some(Access {
        search,
        shown,
        using: words.collect::<Vec<_>>().join(" "),
        detail: detail.to_string(),
    })
}

/// Names a plan may print for tables: each table itself and every alias the SQL gives one.
pub fn aliases(sql: &str, tables: &BTreeSet<String>) -> BTreeMap<String, String> {
    const NOT_ALIAS: &[&str] = &[
        "WHERE",
        "ON",
        "USING",
        "JOIN",
        "LEFT",
        "RIGHT",
        "FULL",
        "INNER",
        "OUTER",
        "CROSS",
        "NATURAL",
        "ORDER",
        "GROUP",
        "HAVING",
        "LIMIT",
        "WINDOW",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "SET",
        "VALUES",
        "INDEXED",
        "NOT",
        "DEFAULT",
        "SELECT",
        "RETURNING",
        "AS",
        "FROM",
    ];
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let known = |w: &str| tables.iter().find(|t| t.eq_ignore_ascii_case(w));
    let mut out: BTreeMap<String, String> = tables
        .iter()
        .map(|t| (t.to_lowercase(), t.clone()))
        .collect();
    for (i, w) in words.iter().enumerate() {
        let Some(table) = known(w) else { continue };
        let mut next = words.get(i + 1);
        if next.is_some_and(|n| n.eq_ignore_ascii_case("AS")) {
            next = words.get(i + 2);
        }
        if let Some(alias) = next
            && !NOT_ALIAS.iter().any(|k| k.eq_ignore_ascii_case(alias))
            && known(alias).is_none()
        {
            out.insert(alias.to_lowercase(), table.clone());
        }
    }
    out
}

/// What `plan.scan` compares for one probe.
pub struct PlanInput<'a> {
    pub sql: &'a str,
    /// `None` when the probe did not run before migrations (new table, error).
    pub before: Option<&'a [PlanStep]>,
    pub after: &'a [PlanStep],
    /// Row counts after migrations, by table.
    pub rows: &'a BTreeMap<String, u64>,
    pub scan_rows_warn: u64,
}

/// SEARCH → SCAN of the same table fails; a SCAN of a table above `scan_rows_warn` rows and
/// a temporary B-tree warn (noting when production's plan did the same).
pub fn findings(input: &PlanInput<'_>) -> Vec<PlanFinding> {
    let tables: BTreeSet<String> = input.rows.keys().cloned().collect();
    let names = aliases(input.sql, &tables);
    let before = input.before.map(accesses).unwrap_or_default();
    let after = accesses(input.after);
    let before_details: BTreeSet<&str> = input
        .before
        .unwrap_or_default()
        .iter()
        .map(|s| s.detail.as_str())
        .collect();
    let as_before = |detail: &str| {
        if before_details.contains(detail) {
            " (as on production)"
        } else {
            ""
        }
    };
    let has_limit = input
        .sql
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("LIMIT"));
    let mut out = Vec::new();
    let mut regressed = BTreeSet::new();
    let shown: BTreeSet<&str> = after.iter().map(|a| a.shown.as_str()).collect();
    for name in shown {
        let count = |list: &[Access], f: fn(&Access) -> bool| {
            list.iter().filter(|a| a.shown == name && f(a)).count()
        };
        let scans_after = count(&after, Access::full);
        if count(&before, Access::indexed) > 0 && scans_after > count(&before, Access::full) {
            let was = before.iter().find(|a| a.shown == name && a.indexed());
            let now = after.iter().find(|a| a.shown == name && a.full());
            if let (Some(was), Some(now)) = (was, now) {
                let table = match names.get(&name.to_lowercase()) {
                    Some(t) if !t.eq_ignore_ascii_case(name) => format!(" ({name} is {t})"),
                    _ => String::new(),
                };
                out.push(PlanFinding {
                    status: CheckStatus::Fail,
                    message: format!("{} → {}{table}", was.detail, now.detail),
                });
                regressed.insert(name.to_string());
            }
        }
    }
    for a in after
        .iter()
        .filter(|a| a.full() && !regressed.contains(&a.shown))
    {
        if a.ordered() && has_limit {
            continue;
        }
        let Some(table) = names.get(&a.shown.to_lowercase()) else {
            continue;
        };
        let rows = input.rows.get(table).copied().unwrap_or(0);
        if rows > input.scan_rows_warn {
            let what = if a.automatic() {
                format!("{} builds an automatic index by scanning", a.detail)
            } else {
                a.detail.clone()
            };
            out.push(PlanFinding {
                status: CheckStatus::Warn,
                message: format!(
                    "{what}: {} rows of {table} (over scan_rows_warn {}){}",
                    thousands(rows),
                    thousands(input.scan_rows_warn),
                    as_before(&a.detail)
                ),
            });
        }
    }
    for s in input
        .after
        .iter()
        .filter(|s| s.detail.starts_with("USE TEMP B-TREE"))
    {
        out.push(PlanFinding {
            status: CheckStatus::Warn,
            message: format!(
                "{}: rows are sorted in a temporary B-tree on every run{}",
                s.detail,
                as_before(&s.detail)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(lines: &[(i64, i64, &str)]) -> Vec<PlanStep> {
        lines
            .iter()
            .map(|(id, parent, d)| PlanStep {
                id: *id,
                parent: *parent,
                detail: d.to_string(),
            })
            .collect()
    }

    fn check(sql: &str, before: &[&str], after: &[&str], expect: &[(CheckStatus, &str)]) {
        let to_steps = |l: &[&str]| -> Vec<PlanStep> {
            l.iter()
                .enumerate()
                .map(|(i, d)| PlanStep {
                    id: i as i64 + 2,
                    parent: 0,
                    detail: d.to_string(),
                })
                .collect()
        };
        let rows: BTreeMap<String, u64> = [("users", 50_000), ("scores", 200_000), ("games", 4)]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect();
        let (b, a) = (to_steps(before), to_steps(after));
        let got = findings(&PlanInput {
            sql,
            before: Some(&b),
            after: &a,
            rows: &rows,
            scan_rows_warn: 10_000,
        });
        assert_eq!(got.len(), expect.len(), "{sql}: {got:?}");
        for (g, (status, needle)) in got.iter().zip(expect) {
            assert_eq!(g.status, *status, "{g:?}");
            assert!(g.message.contains(needle), "{g:?} lacks {needle}");
        }
    }

    #[test]
    fn tree_rendering() {
        let plan = steps(&[
            (2, 0, "SEARCH users USING INTEGER PRIMARY KEY (rowid=?)"),
            (6, 0, "LIST SUBQUERY 1"),
            (9, 6, "SEARCH scores USING INDEX gs (game_id=?)"),
        ]);
        assert_eq!(
            render(&plan),
            [
                "SEARCH users USING INTEGER PRIMARY KEY (rowid=?)",
                "LIST SUBQUERY 1",
                "  SEARCH scores USING INDEX gs (game_id=?)"
            ]
        );
    }

    #[test]
    fn plan_cases() {
        use CheckStatus::{Fail, Warn};
        let q = "SELECT * FROM users WHERE username = ?";
        let search = "SEARCH users USING INDEX idx_users_username (username=?)";
        check(q, &[search], &[search], &[]);
        check(q, &[search], &["SCAN users"], &[(Fail, "→ SCAN users")]);
        check(
            q,
            &["SCAN users"],
            &["SCAN users"],
            &[(Warn, "(as on production)")],
        );
        check(q, &[], &["SCAN users"], &[(Warn, "50,000 rows of users")]);
        // Aliases resolve to their table for the row count.
        let j = "SELECT * FROM scores AS s JOIN users u ON u.id = s.user_id";
        check(
            j,
            &["SCAN s", "SEARCH u USING INTEGER PRIMARY KEY (rowid=?)"],
            &["SCAN s", "SEARCH u USING INTEGER PRIMARY KEY (rowid=?)"],
            &[(Warn, "200,000 rows of scores")],
        );
        check("SELECT * FROM games", &[], &["SCAN games"], &[]);
        check(
            "SELECT * FROM users ORDER BY username LIMIT 5",
            &[],
            &["SCAN users USING INDEX idx_users_username"],
            &[],
        );
        check(
            "SELECT count(*) FROM users",
            &[],
            &["SCAN users USING COVERING INDEX idx_users_username"],
            &[(Warn, "50,000")],
        );
        check(
            "SELECT * FROM users ORDER BY first_name",
            &[],
            &["SCAN users", "USE TEMP B-TREE FOR ORDER BY"],
            &[(Warn, "SCAN users"), (Warn, "USE TEMP B-TREE FOR ORDER BY")],
        );
        check(
            "SELECT * FROM scores WHERE game_id = ?",
            &["SEARCH scores USING INDEX gs (game_id=?)"],
            &["SEARCH scores USING AUTOMATIC COVERING INDEX (game_id=?)"],
            &[(Fail, "AUTOMATIC")],
        );
    }

    #[test]
    fn alias_map() {
        let tables: BTreeSet<String> = ["users", "items"].map(String::from).into();
        let m = aliases(
            "SELECT * FROM items i JOIN users AS owner ON owner.id = i.owner_id WHERE i.id = 1",
            &tables,
        );
        assert_eq!(m.get("i").map(String::as_str), Some("items"));
        assert_eq!(m.get("owner").map(String::as_str), Some("users"));
        let m = aliases("SELECT * FROM users WHERE id = 1", &tables);
        assert!(!m.contains_key("where"));
    }
}
