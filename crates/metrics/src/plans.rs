//! Capacity plans: the limits a workspace lives within. Built-in profiles mirror Cloudflare
//! D1 Free and Workers Paid; custom plans come from `[plans.NAME]` in `d1ops.toml`.
//! Plain data; no I/O.
use serde::{Deserialize, Serialize};

const MB: u64 = 1_000_000;
const GB: u64 = 1_000_000_000;

/// One plan's limits. `None` means unlimited (or not metered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Maximum size of one database.
    pub database_size_bytes: u64,
    /// Maximum storage across all databases of the account.
    #[serde(default)]
    pub total_storage_bytes: Option<u64>,
    #[serde(default)]
    pub max_databases: Option<u64>,
    #[serde(default)]
    pub rows_read_per_day: Option<u64>,
    #[serde(default)]
    pub rows_written_per_day: Option<u64>,
    /// Included per month (paid plans bill overage instead of blocking).
    #[serde(default)]
    pub rows_read_per_month: Option<u64>,
    #[serde(default)]
    pub rows_written_per_month: Option<u64>,
    /// Overage prices in USD.
    #[serde(default)]
    pub usd_per_million_rows_read: Option<f64>,
    #[serde(default)]
    pub usd_per_million_rows_written: Option<f64>,
    #[serde(default)]
    pub usd_per_gb_month_storage: Option<f64>,
    /// Storage included before `usd_per_gb_month_storage` applies.
    #[serde(default)]
    pub included_storage_bytes: Option<u64>,
}

/// The built-in profiles by name.
pub fn builtin(name: &str) -> Option<Plan> {
    match name {
        "d1-free" => Some(Plan {
            database_size_bytes: 500 * MB,
            total_storage_bytes: Some(5 * GB),
            max_databases: Some(10),
            rows_read_per_day: Some(5_000_000),
            rows_written_per_day: Some(100_000),
            rows_read_per_month: None,
            rows_written_per_month: None,
            usd_per_million_rows_read: None,
            usd_per_million_rows_written: None,
            usd_per_gb_month_storage: None,
            included_storage_bytes: None,
        }),
        "workers-paid" => Some(Plan {
            database_size_bytes: 10 * GB,
            total_storage_bytes: Some(1_000 * GB),
            // Raised from 50,000 in 2026; the first 100,000 are included, each one above
            // costs $0.10 a month (not projected: d1ops counts databases, not their months).
            max_databases: Some(1_000_000),
            rows_read_per_day: None,
            rows_written_per_day: None,
            rows_read_per_month: Some(25_000_000_000),
            rows_written_per_month: Some(50_000_000),
            usd_per_million_rows_read: Some(0.001),
            usd_per_million_rows_written: Some(1.0),
            usd_per_gb_month_storage: Some(0.75),
            included_storage_bytes: Some(5 * GB),
        }),
        _ => None,
    }
}

/// The day the built-in profiles were last checked against Cloudflare's D1 limits page
/// (<https://developers.cloudflare.com/d1/platform/limits/>) and pricing page: databases per
/// account 10 / 1,000,000, database size 500 MB / 10 GB, storage 5 GB / 1 TB, Free 5 M rows
/// read and 100,000 written a day, Paid 25 B read and 50 M written a month included at $0.001
/// and $1.00 per million above, 5 GB storage included at $0.75 per GB-month above.
pub const CHECKED: &str = "2026-12-07";

/// The names of the built-in profiles.
pub const BUILTIN: [&str; 2] = ["d1-free", "workers-paid"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_exist_and_are_ordered() {
        let free = builtin("d1-free").unwrap();
        let paid = builtin("workers-paid").unwrap();
        assert_eq!(free.database_size_bytes, 500_000_000);
        assert!(paid.database_size_bytes > free.database_size_bytes);
        assert!(builtin("nope").is_none());
        // Cloudflare's D1 limits page, as of CHECKED.
        assert_eq!(paid.max_databases, Some(1_000_000));
        assert_eq!(free.max_databases, Some(10));
        assert_eq!(paid.total_storage_bytes, Some(1_000_000_000_000));
    }
}
