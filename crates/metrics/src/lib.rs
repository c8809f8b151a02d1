//! Query metrics and capacity: events, SQL fingerprints, latency histograms, the rollup
//! store (`.d1ops/metrics.sqlite`), daily usage against plans, and limit forecasts. This is
//! the data layer under `query`/`serve`/`traffic`/`ingest`, the Monitor and Capacity tabs and
//! the weekly report; it must not print, run user SQL, or know about the console or releases
//! beyond an event's release id.
//!
//! Flow: a traffic source builds [`QueryEvent`]s → [`MetricsStore::record`] aggregates a batch
//! in memory and upserts minute, hour, day and week rollups (merging histograms) in one
//! transaction → readers ([`MetricsStore::series`], [`MetricsStore::top_queries`], …) read
//! rollups only, so their cost depends on the window, not on how many events arrived.
//! [`MetricsStore::maintain`] applies retention. Rows read/written are whatever the source
//! reports (D1's `meta.rows_read` / `rows_written` for app logs); measuring them for
//! statements d1ops runs itself belongs to the executor, not here.
use chrono::{DateTime, NaiveDate, Utc};

pub mod analytics;
pub mod event;
pub mod fingerprint;
pub mod forecast;
pub mod histogram;
mod maintain;
pub mod plans;
mod query;
mod record;
mod rollup;
pub mod source;
mod store;
#[cfg(test)]
mod testing;
pub mod usage;

pub use event::{QueryError, QueryEvent, parse_line};
pub use fingerprint::{fingerprint, fingerprint_id};
pub use histogram::Histogram;
pub use maintain::MaintainReport;
pub use query::{
    DailyTraffic, MAX_POINTS, QueryStat, RecentError, SeriesPoint, TopBy, WindowStats,
};
pub use rollup::{Resolution, Rollup};
pub use store::{METRICS_FILE, MetricsSettings, MetricsStore};

/// What went wrong in the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("metrics store {path}: cannot create its folder: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "metrics store {path} has schema version {found}, newer than this d1ops understands ({known}); upgrade d1ops"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("metrics store is locked by another d1ops process (busy for more than 10 s)")]
    Busy,
    #[error("metrics store: {0}")]
    Sql(#[source] rusqlite::Error),
    #[error("metrics store holds an unreadable histogram: {0}")]
    Histogram(#[from] histogram::HistogramError),
    #[error("metrics store holds an unreadable value in {what}: {value}")]
    Corrupt { what: &'static str, value: String },
    #[error("{0}")]
    Invalid(String),
}

impl From<rusqlite::Error> for MetricsError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                MetricsError::Busy
            }
            _ => MetricsError::Sql(e),
        }
    }
}

pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

const DAY_SECS: i64 = 86_400;

/// Unix seconds → UTC time (out-of-range values clamp to the epoch).
pub(crate) fn time_of(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// The UTC day starting at `secs`.
pub(crate) fn day_of(secs: i64) -> NaiveDate {
    time_of(secs.div_euclid(DAY_SECS) * DAY_SECS).date_naive()
}

/// Unix seconds at the start of a UTC day.
pub(crate) fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}
