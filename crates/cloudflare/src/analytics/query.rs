//! The GraphQL text a [`Request`] becomes (one aliased node per [`Node`], `n0`, `n1`, …,
//! every value passed as a typed variable) and the reading of its answer.
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{Answer, Bucket, DailyGroup, Node, QueryGroup, Request, StorageGroup};

/// Most groups one node returns (the largest `limit` Cloudflare accepts).
pub const PAGE_SIZE: usize = 10_000;

impl Bucket {
    /// The dataset dimension that groups by this bucket.
    pub fn dimension(self) -> &'static str {
        match self {
            Bucket::Minute => "datetimeMinute",
            Bucket::Hour => "datetimeHour",
        }
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The query text and its variables.
pub(super) fn build(request: &Request, account: &str) -> (String, Value) {
    let mut decls = vec!["$accountTag: string!".to_string()];
    let mut vars = Map::new();
    vars.insert("accountTag".into(), json!(account));
    let mut nodes = String::new();
    for (i, node) in request.nodes.iter().enumerate() {
        let (databases, from, to, kind) = match node {
            Node::Queries {
                databases,
                from,
                to,
                ..
            } => (databases, time(from), time(to), "Time"),
            Node::Daily {
                databases,
                from,
                to,
            }
            | Node::Storage {
                databases,
                from,
                to,
            } => (databases, from.to_string(), to.to_string(), "Date"),
        };
        decls.push(format!(
            "$db{i}: [string!]!, $from{i}: {kind}!, $to{i}: {kind}!"
        ));
        vars.insert(format!("db{i}"), json!(databases));
        vars.insert(format!("from{i}"), json!(from));
        vars.insert(format!("to{i}"), json!(to));
        nodes.push_str(&node_text(i, node));
    }
    let text = format!(
        "query D1OpsSync({}) {{\n  viewer {{\n    accounts(filter: {{accountTag: $accountTag}}) {{\n{nodes}    }}\n  }}\n}}\n",
        decls.join(", ")
    );
    (text, Value::Object(vars))
}

fn node_text(i: usize, node: &Node) -> String {
    let (dataset, filter, order, fields) = match node {
        Node::Queries { bucket, .. } => {
            let dim = bucket.dimension();
            (
                "d1QueriesAdaptiveGroups",
                format!("databaseId_in: $db{i}, datetime_geq: $from{i}, datetime_lt: $to{i}"),
                dim,
                format!(
                    "count\n        sum {{ queryDurationMs rowsRead rowsWritten rowsReturned }}\n        \
                     quantiles {{ queryDurationMsP50 queryDurationMsP95 queryDurationMsP99 }}\n        \
                     dimensions {{ databaseId query {dim} }}"
                ),
            )
        }
        Node::Daily { .. } => (
            "d1AnalyticsAdaptiveGroups",
            format!("databaseId_in: $db{i}, date_geq: $from{i}, date_leq: $to{i}"),
            "date",
            "sum { readQueries writeQueries rowsRead rowsWritten }\n        \
             dimensions { databaseId date }"
                .to_string(),
        ),
        Node::Storage { .. } => (
            "d1StorageAdaptiveGroups",
            format!("databaseId_in: $db{i}, date_geq: $from{i}, date_leq: $to{i}"),
            "date",
            "max { databaseSizeBytes }\n        dimensions { databaseId date }".to_string(),
        ),
    };
    format!(
        "      n{i}: {dataset}(limit: {PAGE_SIZE}, filter: {{{filter}}}, orderBy: [{order}_ASC]) {{\n        {fields}\n      }}\n"
    )
}

type Parsed<T> = Result<T, String>;

/// Reads every node's groups from a GraphQL answer without errors.
pub(super) fn read(request: &Request, body: &Value) -> Parsed<Vec<Answer>> {
    let account = body
        .pointer("/data/viewer/accounts/0")
        .ok_or("no data.viewer.accounts[0] in the answer")?;
    let mut out = Vec::with_capacity(request.nodes.len());
    for (i, node) in request.nodes.iter().enumerate() {
        let key = format!("n{i}");
        let groups: &[Value] = match account.get(&key) {
            None => return Err(format!("the answer has no {key}")),
            Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => return Err(format!("{key} is not a list")),
        };
        out.push(match node {
            Node::Queries { bucket, .. } => Answer::Queries {
                full: groups.len() >= PAGE_SIZE,
                groups: (groups.iter())
                    .filter_map(|g| query_group(g, *bucket).transpose())
                    .collect::<Parsed<_>>()?,
            },
            Node::Daily { .. } => {
                Answer::Daily(groups.iter().map(daily_group).collect::<Parsed<_>>()?)
            }
            Node::Storage { .. } => {
                Answer::Storage(groups.iter().map(storage_group).collect::<Parsed<_>>()?)
            }
        });
    }
    Ok(out)
}

/// A number at `path` under `g` (missing or null: 0).
fn num(g: &Value, path: &str) -> Parsed<f64> {
    match g.pointer(path) {
        None | Some(Value::Null) => Ok(0.0),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or(format!("{path} is not a number: {v}")),
    }
}

fn count(g: &Value, path: &str) -> Parsed<u64> {
    Ok(num(g, path)?.round().max(0.0) as u64)
}

fn text<'a>(g: &'a Value, path: &str) -> Parsed<&'a str> {
    g.pointer(path)
        .and_then(Value::as_str)
        .ok_or(format!("{path} is missing"))
}

fn date(g: &Value) -> Parsed<NaiveDate> {
    let raw = text(g, "/dimensions/date")?;
    raw.parse::<NaiveDate>()
        .map_err(|_| format!("/dimensions/date is not a date: {raw}"))
}

/// A queries group; `None` for one without query text (nothing to fingerprint).
fn query_group(g: &Value, bucket: Bucket) -> Parsed<Option<QueryGroup>> {
    let query = match g.pointer("/dimensions/query").and_then(Value::as_str) {
        Some(q) if !q.trim().is_empty() => q.to_string(),
        _ => return Ok(None),
    };
    let path = format!("/dimensions/{}", bucket.dimension());
    let raw = text(g, &path)?;
    let start = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| format!("{path} is not a time: {raw}"))?
        .with_timezone(&Utc);
    Ok(Some(QueryGroup {
        database_id: text(g, "/dimensions/databaseId")?.to_string(),
        query,
        bucket,
        start,
        count: count(g, "/count")?,
        duration_ms: num(g, "/sum/queryDurationMs")?.max(0.0),
        rows_read: count(g, "/sum/rowsRead")?,
        rows_written: count(g, "/sum/rowsWritten")?,
        rows_returned: count(g, "/sum/rowsReturned")?,
        p50_ms: num(g, "/quantiles/queryDurationMsP50")?,
        p95_ms: num(g, "/quantiles/queryDurationMsP95")?,
        p99_ms: num(g, "/quantiles/queryDurationMsP99")?,
    }))
}

fn daily_group(g: &Value) -> Parsed<DailyGroup> {
    Ok(DailyGroup {
        database_id: text(g, "/dimensions/databaseId")?.to_string(),
        date: date(g)?,
        read_queries: count(g, "/sum/readQueries")?,
        write_queries: count(g, "/sum/writeQueries")?,
        rows_read: count(g, "/sum/rowsRead")?,
        rows_written: count(g, "/sum/rowsWritten")?,
    })
}

fn storage_group(g: &Value) -> Parsed<StorageGroup> {
    Ok(StorageGroup {
        database_id: text(g, "/dimensions/databaseId")?.to_string(),
        date: date(g)?,
        bytes: count(g, "/max/databaseSizeBytes")?,
    })
}
