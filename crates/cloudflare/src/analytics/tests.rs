use chrono::TimeZone;

use super::*;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).single().unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

fn request() -> Request {
    Request {
        nodes: vec![
            Node::Queries {
                databases: vec!["db-a".into(), "db-b".into()],
                from: t(12, 0),
                to: t(12, 7),
                bucket: Bucket::Minute,
            },
            Node::Daily {
                databases: vec!["db-a".into()],
                from: day(1),
                to: day(2),
            },
            Node::Storage {
                databases: vec!["db-a".into()],
                from: day(1),
                to: day(2),
            },
        ],
    }
}

#[test]
fn one_request_names_every_dataset_with_documented_fields() {
    let (text, vars) = query::build(&request(), "acct");
    for needle in [
        "query D1OpsSync($accountTag: string!",
        "accounts(filter: {accountTag: $accountTag})",
        "n0: d1QueriesAdaptiveGroups(limit: 10000, filter: {databaseId_in: $db0, datetime_geq: $from0, datetime_lt: $to0}, orderBy: [datetimeMinute_ASC])",
        "sum { queryDurationMs rowsRead rowsWritten rowsReturned }",
        "quantiles { queryDurationMsP50 queryDurationMsP95 queryDurationMsP99 }",
        "dimensions { databaseId query datetimeMinute }",
        "n1: d1AnalyticsAdaptiveGroups(limit: 10000, filter: {databaseId_in: $db1, date_geq: $from1, date_leq: $to1}, orderBy: [date_ASC])",
        "sum { readQueries writeQueries rowsRead rowsWritten }",
        "n2: d1StorageAdaptiveGroups(",
        "max { databaseSizeBytes }",
        "$from0: Time!",
        "$from1: Date!",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(vars["accountTag"], "acct");
    assert_eq!(vars["db0"], json!(["db-a", "db-b"]));
    assert_eq!(vars["from0"], "2026-03-02T12:00:00Z");
    assert_eq!(vars["to0"], "2026-03-02T12:07:00Z");
    assert_eq!(vars["from2"], "2026-03-01");
}

#[test]
fn answers_are_read_per_node() {
    let body = json!({
        "data": {"viewer": {"accounts": [{
            "n0": [
                {
                    "count": 3,
                    "sum": {"queryDurationMs": 4.5, "rowsRead": 30, "rowsWritten": 0, "rowsReturned": 3},
                    "quantiles": {"queryDurationMsP50": 1.2, "queryDurationMsP95": 2.0, "queryDurationMsP99": 2.1},
                    "dimensions": {"databaseId": "db-a", "query": "SELECT 1", "datetimeMinute": "2026-03-02T12:03:00Z"}
                },
                {
                    "count": 1,
                    "sum": {"queryDurationMs": 1.0},
                    "quantiles": {},
                    "dimensions": {"databaseId": "db-a", "query": "", "datetimeMinute": "2026-03-02T12:04:00Z"}
                }
            ],
            "n1": [{"sum": {"readQueries": 10, "writeQueries": 2.0, "rowsRead": 100, "rowsWritten": 4},
                    "dimensions": {"databaseId": "db-a", "date": "2026-03-02"}}],
            "n2": null
        }]}},
        "errors": null
    });
    let answers = query::read(&request(), &body).unwrap();
    let Answer::Queries { groups, full } = &answers[0] else {
        panic!("{answers:?}")
    };
    assert!(!full);
    assert_eq!(groups.len(), 1, "a group without query text is skipped");
    let g = &groups[0];
    assert_eq!((g.count, g.rows_read, g.rows_returned), (3, 30, 3));
    assert_eq!(g.start, t(12, 3));
    assert_eq!((g.p50_ms, g.p99_ms), (1.2, 2.1));
    assert_eq!(
        answers[1],
        Answer::Daily(vec![DailyGroup {
            database_id: "db-a".into(),
            date: day(2),
            read_queries: 10,
            write_queries: 2,
            rows_read: 100,
            rows_written: 4
        }])
    );
    assert_eq!(answers[2], Answer::Storage(Vec::new()));
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    for body in [
        json!({}),
        json!({"data": {"viewer": {"accounts": []}}}),
        json!({"data": {"viewer": {"accounts": [{"n0": [], "n1": []}]}}}),
        json!({"data": {"viewer": {"accounts": [{"n0": {}, "n1": [], "n2": []}]}}}),
        json!({"data": {"viewer": {"accounts": [{"n0": [{"count": "x", "dimensions": {"query": "q", "databaseId": "d", "datetimeMinute": "2026-03-02T12:03:00Z"}}], "n1": [], "n2": []}]}}}),
        json!({"data": {"viewer": {"accounts": [{"n0": [{"dimensions": {"query": "q", "databaseId": "d", "datetimeMinute": "noon"}}], "n1": [], "n2": []}]}}}),
        json!({"data": {"viewer": {"accounts": [{"n0": [], "n1": [{"dimensions": {"databaseId": "d"}}], "n2": []}]}}}),
    ] {
        assert!(query::read(&request(), &body).is_err(), "{body}");
    }
}

#[test]
fn graphql_errors_keep_message_and_path() {
    let body = json!({"data": null, "errors": [{
        "message": "cannot request data older than 2678400s",
        "path": ["viewer", "accounts", 0, "n0"],
        "extensions": {"timestamp": "2026-03-02T12:00:00Z"}
    }]});
    let (message, path) = first_error(&body).unwrap();
    assert_eq!(message, "cannot request data older than 2678400s");
    assert_eq!(path.as_deref(), Some("viewer.accounts.0.n0"));
    assert!(first_error(&json!({"data": {}, "errors": null})).is_none());
    assert!(first_error(&json!({"data": {}, "errors": []})).is_none());
    let e = AnalyticsError::Graphql { message, path };
    assert_eq!(
        e.to_string(),
        "Cloudflare's GraphQL Analytics API refused the query (at viewer.accounts.0.n0): cannot request data older than 2678400s"
    );
    assert!(!e.is_rate_limited());
    let limited = AnalyticsError::Graphql {
        message: "rate limiter budget depleted, try again after 5 minutes".into(),
        path: None,
    };
    assert!(limited.is_rate_limited());
}
