//! `ingest`: query events from an app's own logs, one JSON object per line (the schema is
//! documented on [`crate::metrics::event`]). A malformed line is counted and reported with
//! its line number, never fatal; blank lines are skipped. Reads and records only.
use std::io::BufRead;

use serde::Serialize;

use crate::metrics::{MetricsError, MetricsStore, QueryEvent, parse_line};

/// Events per metrics-store transaction.
const BATCH: usize = 10_000;
/// Bad lines listed in the report (all of them are counted).
const LISTED: usize = 5;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub imported: u64,
    pub bad: u64,
    pub blank: u64,
    /// The first few bad lines.
    pub bad_lines: Vec<BadLine>,
}

/// A line that was not an event.
#[derive(Debug, Clone, Serialize)]
pub struct BadLine {
    /// 1-based.
    pub line: u64,
    pub error: String,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Imports every event line of `input` into `store` in batches.
pub fn ingest(input: impl BufRead, store: &mut MetricsStore) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport::default();
    let mut batch: Vec<QueryEvent> = Vec::with_capacity(BATCH);
    for (i, line) in input.lines().enumerate() {
        let n = i as u64 + 1;
        let line = match line {
            Ok(l) => l,
            // Not UTF-8: that line is bad, the rest may be fine.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                note_bad(&mut report, n, "not valid UTF-8".into());
                continue;
            }
            Err(source) => return Err(IngestError::Read { line: n, source }),
        };
        if line.trim().is_empty() {
            report.blank += 1;
            continue;
        }
        match parse_line(&line) {
            Ok(e) => batch.push(e),
            Err(error) => note_bad(&mut report, n, error),
        }
        if batch.len() >= BATCH {
            store.record(&batch)?;
            report.imported += batch.len() as u64;
            batch.clear();
        }
    }
    store.record(&batch)?;
    report.imported += batch.len() as u64;
    Ok(report)
}

fn note_bad(report: &mut IngestReport, line: u64, error: String) {
    report.bad += 1;
    if report.bad_lines.len() < LISTED {
        report.bad_lines.push(BadLine { line, error });
    }
}
