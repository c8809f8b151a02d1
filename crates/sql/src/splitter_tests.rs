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
    // An empty statement does not drop the comments before it.
    let s = split_statements("-- kept\n;\nSELECT 1;").unwrap();
    assert_eq!(s.statements[0].comments, vec!["kept"]);
    let s = split_statements("SELECT 1 /* inner */ ;").unwrap();
    assert_eq!(s.statements[0].sql, "SELECT 1 /* inner */");
    assert_eq!(s.statements[0].comments, vec!["inner"]);
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
    let e = split_statements("SELECT 1;\n\nSELECT '\0';").unwrap_err();
    assert_eq!(e, SplitError::Nul { line: 3 });
    // The first malformed construct is the one reported.
    let e = split_statements("SELECT \"a;\nSELECT 'b").unwrap_err();
    assert_eq!(
        e,
        SplitError::Unterminated {
            line: 1,
            what: "quoted identifier"
        }
    );
}

#[test]
fn empty_statements_skipped() {
    check(";;SELECT 1;;", &[("SELECT 1", 1)]);
    check("-- only a comment\n", &[]);
}

#[test]
fn batches_split_where_sqlite_says_statements_end() {
    let cases: &[(&str, &[&str])] = &[
        ("SELECT 1; SELECT 2;", &["SELECT 1", "SELECT 2"]),
        (
            "SELECT ';' AS a; -- c;\nSELECT 2",
            &["SELECT ';' AS a", "-- c;\nSELECT 2"],
        ),
        (
            "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET y = 'x'; END; SELECT 1",
            &[
                "CREATE TRIGGER g AFTER INSERT ON t BEGIN UPDATE t SET y = 'x'; END",
                "SELECT 1",
            ],
        ),
        ("  ;; ", &[]),
        // A piece of comments alone is D1's to run (it prepares to nothing).
        ("-- c\n; SELECT 1", &["-- c", "SELECT 1"]),
        // Malformed text is not refused here: SQLite reports it when it runs.
        ("SELECT 'a; SELECT 2;", &["SELECT 'a; SELECT 2"]),
        (
            "SELECT 1; /* open; SELECT 2;",
            &["SELECT 1", "/* open; SELECT 2"],
        ),
        ("SELECT 1;;;", &["SELECT 1"]),
        // A `;` in a comment ends nothing, NUL byte or not (SQLite stops reading at the NUL,
        // so the text after it never runs).
        (
            "SELECT 1 -- \0;DROP TABLE t",
            &["SELECT 1 -- \0;DROP TABLE t"],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(batch_statements(sql), *expected, "splitting {sql:?}");
    }
}

#[test]
fn pieces_cover_the_text() {
    let text = "-- a\nSELECT 1;\n;SELECT 'x;y'\n";
    let all: Vec<Piece<'_>> = pieces(text).collect();
    assert_eq!(all.iter().map(|p| p.text).collect::<String>(), text);
    assert_eq!(
        all.iter()
            .map(|p| (p.sql, p.line, p.terminated))
            .collect::<Vec<_>>(),
        [
            (Some("SELECT 1"), 2, true),
            (None, 2, true),
            (Some("SELECT 'x;y'"), 3, false),
        ]
    );
    assert_eq!(all[0].comments, ["a"]);
    assert!(all[2].is_complete());
}
