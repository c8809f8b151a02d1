//! Where an analytics event falls: its dimension values (formatted as the API formats them)
//! and whether it passes a GraphQL `filter` (`databaseId`, `databaseId_in`,
//! `databaseId_neq`, `query`, time bounds on every time dimension, `AND` lists).
use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde_json::Value;

use super::analytics::Point;

const TIME_DIMS: [&str; 6] = [
    "date",
    "datetime",
    "datetimeMinute",
    "datetimeFiveMinutes",
    "datetimeFifteenMinutes",
    "datetimeHour",
];

/// A point's value for a dimension, formatted as the API formats it.
pub fn dimension(p: &Point, dim: &str) -> String {
    let t = p.at;
    let minute = |step: u32| {
        let m = t.minute() - t.minute() % step;
        format!("{}:{m:02}:00Z", t.format("%Y-%m-%dT%H"))
    };
    match dim {
        "date" => t.format("%Y-%m-%d").to_string(),
        "datetime" => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "datetimeMinute" => minute(1),
        "datetimeFiveMinutes" => minute(5),
        "datetimeFifteenMinutes" => minute(15),
        "datetimeHour" => t.format("%Y-%m-%dT%H:00:00Z").to_string(),
        "databaseId" => p.db.clone(),
        "query" => p.query.clone().unwrap_or_default(),
        "servedByRegion" => p.region.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// One filter condition.
#[derive(Debug)]
pub enum Cond {
    Db(Vec<String>),
    DbNot(String),
    Query(String),
    /// The point's `dim` value compared with `bound` (same format), `ok` for the wanted order.
    Time {
        dim: &'static str,
        bound: String,
        ok: fn(Ordering) -> bool,
    },
}

/// Reads a GraphQL `filter` object (its `AND` lists merged in).
pub fn conditions(filter: &Value, out: &mut Vec<Cond>) -> Result<(), String> {
    let Value::Object(map) = filter else {
        return match filter {
            Value::Null => Ok(()),
            _ => Err("filter must be an object".into()),
        };
    };
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        let text = || {
            v.as_str()
                .map(str::to_string)
                .ok_or(format!("{key} must be a string"))
        };
        match key.as_str() {
            "AND" => {
                for f in v.as_array().ok_or("AND must be a list")? {
                    conditions(f, out)?;
                }
            }
            "databaseId" => out.push(Cond::Db(vec![text()?])),
            "databaseId_neq" => out.push(Cond::DbNot(text()?)),
            "databaseId_in" => out.push(Cond::Db(
                v.as_array()
                    .ok_or("databaseId_in must be a list")?
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            )),
            "query" => out.push(Cond::Query(text()?)),
            _ => out.push(time_condition(key, &text()?)?),
        }
    }
    Ok(())
}

fn time_condition(key: &str, raw: &str) -> Result<Cond, String> {
    let (dim, op) = key.split_once('_').unwrap_or((key, "eq"));
    let Some(dim) = TIME_DIMS.iter().copied().find(|d| *d == dim) else {
        return Err(format!(
            "unknown filter field \"{key}\" (the contract server honours databaseId, \
             databaseId_in, databaseId_neq, query and time bounds)"
        ));
    };
    let ok: fn(Ordering) -> bool = match op {
        "eq" => |o| o == Ordering::Equal,
        "geq" => |o| o != Ordering::Less,
        "gt" => |o| o == Ordering::Greater,
        "leq" => |o| o != Ordering::Greater,
        "lt" => |o| o == Ordering::Less,
        _ => return Err(format!("unknown filter field \"{key}\"")),
    };
    let at = parse_time(raw).ok_or(format!("error parsing args: {key}: {raw:?} is not a time"))?;
    let bound = if dim == "date" {
        at.format("%Y-%m-%d").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    Ok(Cond::Time { dim, bound, ok })
}

/// An RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

pub fn matches(p: &Point, conds: &[Cond]) -> bool {
    conds.iter().all(|c| match c {
        Cond::Db(ids) => ids.contains(&p.db),
        Cond::DbNot(id) => &p.db != id,
        Cond::Query(q) => p.query.as_deref() == Some(q.as_str()),
        Cond::Time { dim, bound, ok } => ok(dimension(p, dim).as_str().cmp(bound.as_str())),
    })
}
