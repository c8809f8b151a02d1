//! D1's datasets in Cloudflare's GraphQL Analytics API (`POST {base}/graphql`):
//! `d1QueriesAdaptiveGroups` (per query text: count, total duration, rows, p50/p95/p99),
//! `d1AnalyticsAdaptiveGroups` (per database and day: read/write queries, rows read and
//! written) and `d1StorageAdaptiveGroups` (per database and day: the largest size). Several
//! datasets and databases travel in one request (aliased nodes, `databaseId_in` filters),
//! because every request counts against the user's budget of 300 per 5 minutes.
//!
//! Owns building the query text, sending it (one HTTP request per [`Request`], never retried
//! here: the caller counts each one) and reading the answer, including GraphQL errors that
//! arrive with HTTP 200. Knows nothing of environments, the metrics store or when to sync.
//! Field names follow developers.cloudflare.com/d1/observability/metrics-analytics/ and
//! wrangler's `d1 insights`/`d1 info` queries.
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Call, Client};
use super::error::{CloudflareError, Permission};

mod query;

pub use query::PAGE_SIZE;

/// The time dimension a query node groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// `datetimeMinute`
    Minute,
    /// `datetimeHour`
    Hour,
}

/// One dataset node of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `d1QueriesAdaptiveGroups` for queries that ran at `from <= t < to` (exact event
    /// times), grouped by database, query text and `bucket`.
    Queries {
        databases: Vec<String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    },
    /// `d1AnalyticsAdaptiveGroups` per database and day, `from..=to`.
    Daily {
        databases: Vec<String>,
        from: NaiveDate,
        to: NaiveDate,
    },
    /// `d1StorageAdaptiveGroups` per database and day, `from..=to`.
    Storage {
        databases: Vec<String>,
        from: NaiveDate,
        to: NaiveDate,
    },
}

/// One GraphQL request: its nodes, answered together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub nodes: Vec<Node>,
}

/// A query text's numbers in one bucket of one database (`d1QueriesAdaptiveGroups`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryGroup {
    pub database_id: String,
    /// The SQL as D1 captured it (bound parameters are never captured).
    pub query: String,
    pub bucket: Bucket,
    pub start: DateTime<Utc>,
    pub count: u64,
    pub duration_ms: f64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_returned: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One database's day (`d1AnalyticsAdaptiveGroups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyGroup {
    pub database_id: String,
    pub date: NaiveDate,
    pub read_queries: u64,
    pub write_queries: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// One database's largest size on a day (`d1StorageAdaptiveGroups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageGroup {
    pub database_id: String,
    pub date: NaiveDate,
    pub bytes: u64,
}

/// What one node answered. `full` is true when it returned [`PAGE_SIZE`] groups: there may
/// be more (ask again from the last bucket).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Queries { groups: Vec<QueryGroup>, full: bool },
    Daily(Vec<DailyGroup>),
    Storage(Vec<StorageGroup>),
}

/// Why analytics could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),
    #[error("Cloudflare's GraphQL Analytics API refused the query{}: {message}", path.as_deref().map(|p| format!(" (at {p})")).unwrap_or_default())]
    Graphql {
        message: String,
        path: Option<String>,
    },
    #[error("Cloudflare's GraphQL Analytics API answered in an unexpected shape: {0}")]
    Shape(String),
}

impl AnalyticsError {
    /// Whether Cloudflare says the user's GraphQL budget is used up.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            AnalyticsError::Cloudflare(e) => {
                matches!(e, CloudflareError::RateLimited { .. })
                    || matches!(e, CloudflareError::Api { status: 429, .. })
            }
            AnalyticsError::Graphql { message, .. } => message.contains("rate limiter"),
            AnalyticsError::Shape(_) => false,
        }
    }
}

/// Sends one request (exactly one HTTP request) and reads every node's answer, in order.
pub fn send(client: &Client, request: &Request) -> Result<Vec<Answer>, AnalyticsError> {
    let (text, variables) = query::build(request, client.account_id());
    let call = Call::new(
        "read D1 analytics",
        Method::POST,
        "/graphql".into(),
        Permission::AnalyticsRead,
    )
    .body(json!({ "query": text, "variables": variables }))
    .idempotent(true)
    .retries(0);
    let body = client.send_raw(&call)?;
    if let Some(e) = first_error(&body) {
        return Err(AnalyticsError::Graphql {
            message: client.redact(&e.0),
            path: e.1,
        });
    }
    query::read(request, &body).map_err(|e| AnalyticsError::Shape(client.redact(&e)))
}

/// Sends one GraphQL query of the caller's own (exactly one HTTP request, never retried) and
/// returns the answer's `data`; a GraphQL error is [`AnalyticsError::Graphql`], its message
/// redacted.
pub fn query(
    client: &Client,
    operation: &str,
    text: &str,
    variables: Value,
) -> Result<Value, AnalyticsError> {
    let call = Call::new(
        operation,
        Method::POST,
        "/graphql".into(),
        Permission::AnalyticsRead,
    )
    .body(json!({ "query": text, "variables": variables }))
    .idempotent(true)
    .retries(0);
    let mut body = client.send_raw(&call)?;
    if let Some(e) = first_error(&body) {
        return Err(AnalyticsError::Graphql {
            message: client.redact(&e.0),
            path: e.1,
        });
    }
    Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
}

/// The first entry of a GraphQL `errors` list (`null` or `[]` when there are none), as
/// (message, dotted path).
fn first_error(body: &Value) -> Option<(String, Option<String>)> {
    let e = body.get("errors")?.as_array()?.first()?;
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_string();
    let path = e.get("path").and_then(Value::as_array).map(|p| {
        p.iter()
            .map(|s| match s {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    });
    Some((message, path.filter(|p| !p.is_empty())))
}

#[cfg(test)]
mod tests;
