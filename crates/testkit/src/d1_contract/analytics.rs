//! The events behind the GraphQL datasets and their aggregation: one point per request
//! (`d1AnalyticsAdaptiveGroups`), per statement (`d1QueriesAdaptiveGroups`) and per storage
//! sample (`d1StorageAdaptiveGroups`); groups by the selected dimensions, filters, orders
//! and projects them. No parsing here (see `graphql.rs`).
use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::filter::{conditions, dimension, matches};
use super::graphql::Field;
use super::sql::{Ran, reads_only};

/// One event: when, which database, the statement (queries dataset) and its numbers.
#[derive(Debug, Clone)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub db: String,
    pub query: Option<String>,
    /// `servedByRegion`: the region of the instance that answered (requests and statements).
    pub region: Option<String>,
    pub values: Vec<(&'static str, f64)>,
}

impl Point {
    fn get(&self, key: &str) -> f64 {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0.0, |(_, v)| *v)
    }
}

/// The region the server's one instance answers from (as `meta.served_by_region` says).
pub const SERVED_BY_REGION: &str = "WEUR";

#[derive(Default)]
pub struct Analytics {
    pub batches: Vec<Point>,
    pub statements: Vec<Point>,
    pub storage: Vec<Point>,
    /// Answer `d1QueriesAdaptiveGroups` without its `quantiles` block (as D1 does for some
    /// accounts and datasets): the client must read the percentiles as unknown, not 0.
    pub omit_quantiles: bool,
}

impl Analytics {
    /// A successful `/query` or `/raw` request and its statements.
    pub fn record_batch(
        &mut self,
        db: &str,
        at: DateTime<Utc>,
        ran: &[(String, Ran)],
        response_bytes: usize,
    ) {
        let reads = ran.iter().filter(|(_, r)| r.readonly).count();
        self.batches.push(Point {
            at,
            db: db.to_string(),
            query: None,
            region: Some(SERVED_BY_REGION.into()),
            values: vec![
                ("readQueries", reads as f64),
                ("writeQueries", (ran.len() - reads) as f64),
                (
                    "rowsRead",
                    ran.iter().map(|(_, r)| r.rows_read as f64).sum(),
                ),
                (
                    "rowsWritten",
                    ran.iter().map(|(_, r)| r.rows_written as f64).sum(),
                ),
                ("queryBatchResponseBytes", response_bytes as f64),
                (
                    "queryBatchTimeMs",
                    ran.iter().map(|(_, r)| r.duration_ms).sum(),
                ),
                ("sampleInterval", 1.0),
            ],
        });
        for (sql, r) in ran {
            self.statements.push(statement_point(
                db,
                at,
                sql,
                r.duration_ms,
                r.rows_read,
                r.rows_written,
                r.rows.len() as u64,
            ));
        }
    }

    /// [`Analytics::record_history`] answered by `region` (a replica's region, or the
    /// primary's): the events carry it as `servedByRegion`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_history_from(
        &mut self,
        region: &str,
        db: &str,
        at: DateTime<Utc>,
        sql: &str,
        count: u64,
        duration_ms: f64,
        rows_read: u64,
    ) {
        let (b, s) = (self.batches.len(), self.statements.len());
        self.record_history(db, at, sql, count, duration_ms, rows_read, 0);
        for p in self.batches[b..]
            .iter_mut()
            .chain(&mut self.statements[s..])
        {
            p.region = Some(region.to_string());
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record_history(
        &mut self,
        db: &str,
        at: DateTime<Utc>,
        sql: &str,
        count: u64,
        duration_ms: f64,
        rows_read: u64,
        rows_written: u64,
    ) {
        let read = reads_only(sql);
        for _ in 0..count {
            self.batches.push(Point {
                at,
                db: db.to_string(),
                query: None,
                region: Some(SERVED_BY_REGION.into()),
                values: vec![
                    ("readQueries", if read { 1.0 } else { 0.0 }),
                    ("writeQueries", if read { 0.0 } else { 1.0 }),
                    ("rowsRead", rows_read as f64),
                    ("rowsWritten", rows_written as f64),
                    ("queryBatchResponseBytes", 0.0),
                    ("queryBatchTimeMs", duration_ms),
                    ("sampleInterval", 1.0),
                ],
            });
            self.statements.push(statement_point(
                db,
                at,
                sql,
                duration_ms,
                rows_read,
                rows_written,
                0,
            ));
        }
    }

    pub fn record_storage(&mut self, db: &str, at: DateTime<Utc>, bytes: u64) {
        self.storage.push(Point {
            at,
            db: db.to_string(),
            query: None,
            region: None,
            values: vec![("databaseSizeBytes", bytes as f64)],
        });
    }
}

fn statement_point(
    db: &str,
    at: DateTime<Utc>,
    sql: &str,
    duration_ms: f64,
    rows_read: u64,
    rows_written: u64,
    rows_returned: u64,
) -> Point {
    Point {
        at,
        db: db.to_string(),
        query: Some(sql.to_string()),
        region: Some(SERVED_BY_REGION.into()),
        values: vec![
            ("queryDurationMs", duration_ms),
            ("rowsRead", rows_read as f64),
            ("rowsWritten", rows_written as f64),
            ("rowsReturned", rows_returned as f64),
            ("sampleInterval", 1.0),
        ],
    }
}

/// What a dataset offers.
pub struct Dataset {
    pub name: &'static str,
    pub dims: &'static [&'static str],
    pub sum: &'static [&'static str],
    pub avg: &'static [&'static str],
    pub max: &'static [&'static str],
    /// `(field, source value, quantile)`.
    pub quantiles: &'static [(&'static str, &'static str, f64)],
    pub count: bool,
}

pub const DATASETS: [Dataset; 3] = [
    Dataset {
        name: "d1AnalyticsAdaptiveGroups",
        dims: &[
            "date",
            "datetime",
            "datetimeMinute",
            "datetimeFiveMinutes",
            "datetimeFifteenMinutes",
            "datetimeHour",
            "databaseId",
            "servedByRegion",
        ],
        sum: &[
            "readQueries",
            "writeQueries",
            "rowsRead",
            "rowsWritten",
            "queryBatchResponseBytes",
        ],
        avg: &["queryBatchTimeMs", "sampleInterval"],
        max: &[],
        quantiles: &[
            ("queryBatchTimeMsP50", "queryBatchTimeMs", 0.5),
            ("queryBatchTimeMsP90", "queryBatchTimeMs", 0.9),
            ("queryBatchTimeMsP99", "queryBatchTimeMs", 0.99),
        ],
        count: true,
    },
    Dataset {
        name: "d1StorageAdaptiveGroups",
        dims: &["date", "datetimeHour", "databaseId"],
        sum: &[],
        avg: &[],
        max: &["databaseSizeBytes"],
        quantiles: &[],
        count: false,
    },
    Dataset {
        name: "d1QueriesAdaptiveGroups",
        dims: &[
            "query",
            "databaseId",
            "date",
            "datetime",
            "datetimeMinute",
            "datetimeFiveMinutes",
            "datetimeFifteenMinutes",
            "datetimeHour",
            "servedByRegion",
        ],
        sum: &["queryDurationMs", "rowsRead", "rowsWritten", "rowsReturned"],
        avg: &[
            "queryDurationMs",
            "rowsRead",
            "rowsWritten",
            "rowsReturned",
            "sampleInterval",
        ],
        max: &[],
        quantiles: &[
            ("queryDurationMsP50", "queryDurationMs", 0.5),
            ("queryDurationMsP95", "queryDurationMs", 0.95),
            ("queryDurationMsP99", "queryDurationMs", 0.99),
        ],
        count: true,
    },
];

/// Metrics that count things answer as integers.
const INTEGERS: [&str; 7] = [
    "readQueries",
    "writeQueries",
    "rowsRead",
    "rowsWritten",
    "rowsReturned",
    "queryBatchResponseBytes",
    "databaseSizeBytes",
];

/// A group's numbers, by `count`, `sum_x`, `avg_x`, `max_x` or a quantile field name.
fn metric(ds: &Dataset, points: &[&Point], name: &str) -> Option<f64> {
    let n = points.len() as f64;
    let sum = |k: &str| points.iter().map(|p| p.get(k)).sum::<f64>();
    if name == "count" {
        return Some(n);
    }
    if let Some(k) = name.strip_prefix("sum_") {
        return ds.sum.contains(&k).then(|| sum(k));
    }
    if let Some(k) = name.strip_prefix("avg_") {
        return ds
            .avg
            .contains(&k)
            .then(|| if n > 0.0 { sum(k) / n } else { 0.0 });
    }
    if let Some(k) = name.strip_prefix("max_") {
        return ds
            .max
            .contains(&k)
            .then(|| points.iter().map(|p| p.get(k)).fold(0.0, f64::max));
    }
    let field = name.strip_prefix("quantiles_").unwrap_or(name);
    let (_, source, q) = ds.quantiles.iter().find(|(f, _, _)| *f == field)?;
    let mut v: Vec<f64> = points.iter().map(|p| p.get(source)).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    Some(v.get(rank).copied().unwrap_or(0.0))
}

fn number(key: &str, v: f64, integer_ok: bool) -> Value {
    if integer_ok && (key == "count" || INTEGERS.contains(&key)) {
        json!(v.round() as i64)
    } else {
        json!(v)
    }
}

/// Answers one dataset node: `args` are its `limit`, `filter`, `orderBy`.
pub fn answer(
    ds: &Dataset,
    points: &[Point],
    args: &Map<String, Value>,
    selection: &[Field],
) -> Result<Value, String> {
    answer_with(ds, points, args, selection, false)
}

/// [`answer`], leaving out every group's `quantiles` block when `omit_quantiles`.
pub fn answer_with(
    ds: &Dataset,
    points: &[Point],
    args: &Map<String, Value>,
    selection: &[Field],
    omit_quantiles: bool,
) -> Result<Value, String> {
    let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(0);
    if !(1..=10_000).contains(&limit) {
        return Err("limit must be positive number and not greater than 10000".into());
    }
    let mut conds = Vec::new();
    conditions(args.get("filter").unwrap_or(&Value::Null), &mut conds)?;
    let mut dims: Vec<&'static str> = Vec::new();
    for f in selection {
        check_field(ds, f)?;
        if f.name == "dimensions" {
            for d in &f.selection {
                let known = ds.dims.iter().copied().find(|k| *k == d.name);
                dims.push(known.ok_or(format!("unknown field \"{}\"", d.name))?);
            }
        }
    }
    let mut groups: BTreeMap<Vec<String>, Vec<&Point>> = BTreeMap::new();
    for p in points.iter().filter(|p| matches(p, &conds)) {
        let key = dims.iter().map(|d| dimension(p, d)).collect();
        groups.entry(key).or_default().push(p);
    }
    let mut groups: Vec<(Vec<String>, Vec<&Point>)> = groups.into_iter().collect();
    let order = order_keys(ds, args.get("orderBy"))?;
    groups.sort_by(|a, b| {
        for (key, desc) in &order {
            let o = match dims.iter().position(|d| d == key) {
                Some(i) => a.0[i].cmp(&b.0[i]),
                None if ds.dims.contains(&key.as_str()) => Ordering::Equal,
                None => {
                    let x = metric(ds, &a.1, key).unwrap_or(0.0);
                    let y = metric(ds, &b.1, key).unwrap_or(0.0);
                    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
                }
            };
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    groups.truncate(limit as usize);
    Ok(groups
        .iter()
        .map(|(key, pts)| {
            let mut v = project(ds, selection, &dims, key, pts);
            if omit_quantiles && let Value::Object(m) = &mut v {
                for f in selection.iter().filter(|f| f.name == "quantiles") {
                    m.remove(&f.key());
                }
            }
            v
        })
        .collect())
}

fn check_field(ds: &Dataset, f: &Field) -> Result<(), String> {
    let unknown = |name: &str| Err(format!("unknown field \"{name}\""));
    let allowed: &[&str] = match f.name.as_str() {
        "count" if ds.count => return Ok(()),
        "dimensions" => return Ok(()),
        "sum" => ds.sum,
        "avg" => ds.avg,
        "max" => ds.max,
        "quantiles" => {
            for s in &f.selection {
                if !ds.quantiles.iter().any(|(q, _, _)| *q == s.name) {
                    return unknown(&s.name);
                }
            }
            return Ok(());
        }
        other => return unknown(other),
    };
    if allowed.is_empty() {
        return unknown(&f.name);
    }
    for s in &f.selection {
        if !allowed.contains(&s.name.as_str()) {
            return unknown(&s.name);
        }
    }
    Ok(())
}

/// `orderBy: [date_ASC, sum_rowsRead_DESC]` as `(key, descending)`.
fn order_keys(ds: &Dataset, v: Option<&Value>) -> Result<Vec<(String, bool)>, String> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one) => vec![one],
    };
    let mut out = Vec::new();
    for item in items {
        let s = item.as_str().ok_or("orderBy takes enum values")?;
        let (key, desc) = if let Some(k) = s.strip_suffix("_DESC") {
            (k, true)
        } else if let Some(k) = s.strip_suffix("_ASC") {
            (k, false)
        } else {
            return Err(format!("unknown orderBy value {s}"));
        };
        let dummy: [&Point; 0] = [];
        if !ds.dims.contains(&key) && metric(ds, &dummy, key).is_none() {
            return Err(format!("unknown orderBy value {s}"));
        }
        out.push((key.to_string(), desc));
    }
    Ok(out)
}

fn project(
    ds: &Dataset,
    selection: &[Field],
    dims: &[&str],
    key: &[String],
    pts: &[&Point],
) -> Value {
    let mut out = Map::new();
    for f in selection {
        let value = match f.name.as_str() {
            "count" => number("count", pts.len() as f64, true),
            "dimensions" => {
                let mut m = Map::new();
                for d in &f.selection {
                    let i = dims.iter().position(|x| *x == d.name).unwrap_or(0);
                    m.insert(
                        d.key(),
                        Value::from(key.get(i).cloned().unwrap_or_default()),
                    );
                }
                Value::Object(m)
            }
            block => {
                let mut m = Map::new();
                for s in &f.selection {
                    let name = if block == "quantiles" {
                        s.name.clone()
                    } else {
                        format!("{block}_{}", s.name)
                    };
                    let v = metric(ds, pts, &name).unwrap_or(0.0);
                    m.insert(s.key(), number(&s.name, v, block != "avg"));
                }
                Value::Object(m)
            }
        };
        out.insert(f.key(), value);
    }
    Value::Object(out)
}
