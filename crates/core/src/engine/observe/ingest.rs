//! `ingest`: query events from an app's own logs, one JSON object per line (the schema is
//! documented on [`crate::metrics::event`]). A malformed line is counted and reported with
//! its line number, never fatal; blank lines are skipped. A line longer than
//! [`MAX_LINE_BYTES`] stops the import with an error (no log line is that long; a device or
//! a binary file is not a log), so `ingest` always ends. Reads and records only.
use std::io::{BufRead, Read};
use std::path::Path;

use serde::Serialize;

use crate::metrics::{MetricsError, MetricsStore, QueryEvent, parse_line};

/// Events per metrics-store transaction.
const BATCH: usize = 10_000;
/// Bad lines listed in the report (all of them are counted).
const LISTED: usize = 5;
/// Longest line read (1 MiB): far above any query event, small enough to keep memory flat.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

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
    #[error(
        "line {line} is longer than {} MiB, so the import stopped there ({imported} event(s) before it were imported); ingest reads JSON lines, one query event per line",
        MAX_LINE_BYTES / (1024 * 1024)
    )]
    LineTooLong { line: u64, imported: u64 },
    #[error("{path}: is {kind}; ingest reads a regular file, a pipe, or - for stdin")]
    NotReadable { path: String, kind: &'static str },
    #[error("{path}: cannot read: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Opens what `ingest FILE` names: `-` is stdin; otherwise a regular file or a pipe (a
/// FIFO, or `<(…)` process substitution) is read, and a directory, socket or device is
/// refused before it is opened.
pub fn open_input(file: &str) -> Result<Box<dyn BufRead>, IngestError> {
    if file == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let path = Path::new(file);
    let open_err = |source| IngestError::Open {
        path: file.to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if !is_streamable(&meta) {
        return Err(IngestError::NotReadable {
            path: file.to_string(),
            kind: crate::workspace::files::kind_of(&meta),
        });
    }
    let f = std::fs::File::open(path).map_err(open_err)?;
    let opened = f.metadata().map_err(open_err)?;
    if !is_streamable(&opened) {
        return Err(IngestError::NotReadable {
            path: file.to_string(),
            kind: crate::workspace::files::kind_of(&opened),
        });
    }
    Ok(Box::new(std::io::BufReader::new(f)))
}

fn is_streamable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_fifo() {
            return true;
        }
    }
    meta.is_file()
}

/// Reads one line (without its `\n` / `\r\n`) into `buf`, at most [`MAX_LINE_BYTES`].
/// `Ok(false)` at the end of input; `Ok(true)` with `too_long` set when the line was longer.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<(bool, bool)> {
    buf.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let n = input.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok((false, false));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > MAX_LINE_BYTES {
        return Ok((true, true));
    }
    Ok((true, false))
}

/// Imports every event line of `input` into `store` in batches.
pub fn ingest(
    mut input: impl BufRead,
    store: &mut MetricsStore,
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport::default();
    let mut batch: Vec<QueryEvent> = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    let mut n: u64 = 0;
    loop {
        n += 1;
        let (more, too_long) = loop {
            match read_line(&mut input, &mut buf) {
                Ok(r) => break r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(IngestError::Read { line: n, source }),
            }
        };
        if !more {
            break;
        }
        if too_long {
            store.record(&batch)?;
            report.imported += batch.len() as u64;
            return Err(IngestError::LineTooLong {
                line: n,
                imported: report.imported,
            });
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l,
            // Not UTF-8: that line is bad, the rest may be fine.
            Err(_) => {
                note_bad(&mut report, n, "not valid UTF-8".into());
                continue;
            }
        };
        if line.trim().is_empty() {
            report.blank += 1;
            continue;
        }
        match parse_line(line) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_input(dir.path().to_str().unwrap()).err().unwrap();
        assert!(err.to_string().contains("is a directory"), "{err}");
        #[cfg(unix)]
        {
            let err = open_input("/dev/zero").err().unwrap().to_string();
            assert!(err.contains("/dev/zero: is a character device"), "{err}");
        }
        let missing = dir.path().join("nope.jsonl");
        let err = open_input(missing.to_str().unwrap()).err().unwrap();
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
    }

    #[test]
    fn an_endless_line_ends_the_import() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetricsStore::open(dir.path()).unwrap();
        let good = "{\"at\":\"2025-03-01T12:00:00Z\",\"sql\":\"SELECT 1\",\"duration_ms\":1}\n";
        // Two good lines, then a line of NULs with no end (like /dev/zero).
        let input = std::io::Cursor::new(good.repeat(2)).chain(std::io::repeat(0));
        let err = ingest(std::io::BufReader::new(input), &mut store).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::LineTooLong {
                    line: 3,
                    imported: 2
                }
            ),
            "{err}"
        );
        // CRLF, blank and non-UTF-8 lines are handled line by line.
        let mut bytes = format!("{}\r\n\r\n", good.trim_end()).into_bytes();
        bytes.extend_from_slice(b"\xff\n\xfe{}\n");
        let report = ingest(std::io::Cursor::new(bytes), &mut store).unwrap();
        assert_eq!((report.imported, report.blank, report.bad), (1, 1, 2));
    }
}
