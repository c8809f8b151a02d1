//! The query event: one executed statement as every traffic source reports it (`query`,
//! `serve`, `traffic`, probes, and app logs through `ingest`), and the JSON-lines schema
//! `ingest` reads. Owns parsing and validation of one line; it must not do I/O or decide what
//! a caller does with a bad line (`ingest` counts and reports those).
//!
//! # `ingest` JSON-lines schema
//!
//! One JSON object per line. Unknown fields are ignored, so app logs can carry their own.
//!
//! | field | type | required | meaning |
//! |---|---|---|---|
//! | `at` | RFC 3339 string, or integer epoch **milliseconds** | yes | when the statement ran |
//! | `sql` | string | one of `sql` / `fingerprint` | the statement; fingerprinted on import |
//! | `fingerprint` | string | one of `sql` / `fingerprint` | already-normalised text (normalised again, which is harmless) |
//! | `duration_ms` (alias `duration`) | number ≥ 0 | yes | execution time in milliseconds |
//! | `env` | string | no, default `production` | environment name |
//! | `release` | string | no | release id that served it |
//! | `rows_read` / `rows_written` / `rows_returned` | integer ≥ 0 | no, default 0 | D1's `meta.rows_read` / `rows_written` and the result length |
//! | `ok` | bool | no | `false` without `error` means "failed, no detail" |
//! | `error` | string, `{"code", "message"}` or null | no | the failure; a string is the message, code `ERROR` |
//!
//! ```json
//! {"at":"2025-03-01T12:00:00.250Z","env":"production","sql":"SELECT * FROM users WHERE id = 7","duration_ms":1.8,"rows_read":1,"rows_returned":1,"ok":true}
//! {"at":1740830400250,"fingerprint":"INSERT INTO events(kind) VALUES (?)","duration":0.4,"rows_written":1,"error":{"code":"SQLITE_CONSTRAINT","message":"UNIQUE constraint failed: events.id"}}
//! ```
//!
//! Blank lines are the caller's to skip; [`parse_line`] reports them as errors.
use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::fingerprint::fingerprint;

/// Environment assumed when an ingested line names none.
pub const DEFAULT_ENV: &str = "production";
/// Error code used when a failure carries no code.
pub const DEFAULT_ERROR_CODE: &str = "ERROR";

/// One executed statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryEvent {
    pub at: DateTime<Utc>,
    pub env: String,
    pub release: Option<String>,
    /// Normalised SQL text (see [`fingerprint`]).
    pub fingerprint: String,
    pub duration_ms: f64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_returned: u64,
    pub error: Option<QueryError>,
}

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryError {
    pub code: String,
    pub message: String,
}

impl QueryEvent {
    /// A successful event for `sql` in `env`, now, with zero row counts; set the rest after.
    pub fn for_sql(env: &str, sql: &str, duration_ms: f64) -> QueryEvent {
        QueryEvent {
            at: d1ops_sql::clock::now_utc(),
            env: env.to_string(),
            release: None,
            fingerprint: fingerprint(sql),
            duration_ms,
            rows_read: 0,
            rows_written: 0,
            rows_returned: 0,
            error: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    at: Option<At>,
    #[serde(default, borrow)]
    env: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    release: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sql: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    fingerprint: Option<Cow<'a, str>>,
    #[serde(default, alias = "duration")]
    duration_ms: Option<f64>,
    #[serde(default)]
    rows_read: Option<u64>,
    #[serde(default)]
    rows_written: Option<u64>,
    #[serde(default)]
    rows_returned: Option<u64>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    error: Option<LineError>,
}

/// Parses one JSON line of the `ingest` schema into an event. The error is one sentence
/// naming the field at fault.
pub fn parse_line(line: &str) -> Result<QueryEvent, String> {
    if line.trim().is_empty() {
        return Err("empty line".into());
    }
    let raw: Line = serde_json::from_str(line).map_err(|e| format!("not a valid event: {e}"))?;
    let at = raw
        .at
        .ok_or("missing `at` (RFC 3339 time or epoch milliseconds)")?
        .0;
    let text = match (&raw.sql, &raw.fingerprint) {
        (Some(sql), _) => sql,
        (None, Some(fp)) => fp,
        (None, None) => return Err("needs `sql` or `fingerprint`".into()),
    };
    if text.trim().is_empty() {
        return Err("`sql` is empty".into());
    }
    let duration_ms = raw.duration_ms.ok_or("missing `duration_ms`")?;
    if !duration_ms.is_finite() || duration_ms < 0.0 {
        return Err(format!(
            "`duration_ms` must be a number ≥ 0, not {duration_ms}"
        ));
    }
    let error = match (raw.ok, raw.error) {
        (Some(true), Some(LineError(Some(_)))) => {
            return Err("`ok` is true but `error` is set".into());
        }
        (_, Some(LineError(Some(e)))) => Some(e),
        (Some(false), _) => Some(QueryError {
            code: DEFAULT_ERROR_CODE.into(),
            message: "query failed (no detail logged)".into(),
        }),
        _ => None,
    };
    Ok(QueryEvent {
        at,
        env: raw
            .env
            .map_or_else(|| DEFAULT_ENV.to_string(), Cow::into_owned),
        release: raw.release.map(Cow::into_owned),
        fingerprint: fingerprint(text),
        duration_ms,
        rows_read: raw.rows_read.unwrap_or(0),
        rows_written: raw.rows_written.unwrap_or(0),
        rows_returned: raw.rows_returned.unwrap_or(0),
        error,
    })
}

/// `at`: an RFC 3339 string or epoch milliseconds.
struct At(DateTime<Utc>);

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<At, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = At;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`at` as an RFC 3339 time or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<At, E> {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| At(t.with_timezone(&Utc)))
                    .map_err(|_| E::custom(format!("`at` {s:?} is not an RFC 3339 time")))
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<At, E> {
                DateTime::from_timestamp_millis(ms)
                    .map(At)
                    .ok_or_else(|| E::custom(format!("`at` {ms} is out of range")))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<At, E> {
                let ms = i64::try_from(ms)
                    .map_err(|_| E::custom(format!("`at` {ms} is out of range")))?;
                self.visit_i64(ms)
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<At, E> {
                if !ms.is_finite() {
                    return Err(E::custom("`at` is not a finite number"));
                }
                self.visit_i64(ms.round() as i64)
            }
        }
        d.deserialize_any(V)
    }
}

/// `error`: a message string, a `{code, message}` object, or null.
struct LineError(Option<QueryError>);

impl<'de> Deserialize<'de> for LineError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineError, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineError;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`error` as a message string or {\"code\", \"message\"}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<LineError, E> {
                Ok(LineError(None))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LineError, E> {
                Ok(LineError(Some(QueryError {
                    code: DEFAULT_ERROR_CODE.into(),
                    message: s.to_string(),
                })))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineError, A::Error> {
                let (mut code, mut message) = (None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "code" => code = Some(map.next_value::<CodeValue>()?.0),
                        "message" => message = map.next_value::<Option<String>>()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(LineError(Some(QueryError {
                    code: code.unwrap_or_else(|| DEFAULT_ERROR_CODE.into()),
                    message: message.unwrap_or_default(),
                })))
            }
        }
        d.deserialize_any(V)
    }
}

/// An error code given as a string or a number (D1 uses numeric codes like 7500).
struct CodeValue(String);

impl<'de> Deserialize<'de> for CodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CodeValue, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(CodeValue(s)),
            serde_json::Value::Number(n) => Ok(CodeValue(n.to_string())),
            serde_json::Value::Null => Ok(CodeValue(DEFAULT_ERROR_CODE.into())),
            _ => Err(de::Error::custom("`error.code` must be a string or number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_line_parses() {
        let e = parse_line(
            r#"{"at":"2025-03-01T12:00:00.250Z","env":"preview-x","release":"r1","sql":"select * from t where id = 7","duration_ms":1.5,"rows_read":3,"rows_written":0,"rows_returned":1,"ok":true,"extra":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(e.at.timestamp_millis(), 1_740_830_400_250);
        assert_eq!(e.env, "preview-x");
        assert_eq!(e.release.as_deref(), Some("r1"));
        assert_eq!(e.fingerprint, "SELECT * FROM t WHERE id = ?");
        assert_eq!((e.rows_read, e.rows_returned), (3, 1));
        assert!(e.error.is_none());
    }

    #[test]
    fn defaults_epoch_ms_and_error_shapes() {
        let e =
            parse_line(r#"{"at":1740830400250,"fingerprint":"SELECT ?","duration":2}"#).unwrap();
        assert_eq!(e.env, DEFAULT_ENV);
        assert_eq!(e.at.timestamp_millis(), 1_740_830_400_250);
        assert_eq!(e.duration_ms, 2.0);
        let e = parse_line(r#"{"at":0,"sql":"x","duration_ms":1,"error":"boom"}"#).unwrap();
        assert_eq!(e.error.unwrap().message, "boom");
        let e = parse_line(
            r#"{"at":0,"sql":"x","duration_ms":1,"error":{"code":7500,"message":"m","x":1}}"#,
        )
        .unwrap();
        let err = e.error.unwrap();
        assert_eq!((err.code.as_str(), err.message.as_str()), ("7500", "m"));
        let e = parse_line(r#"{"at":0,"sql":"x","duration_ms":1,"ok":false}"#).unwrap();
        assert_eq!(e.error.unwrap().code, DEFAULT_ERROR_CODE);
        let e = parse_line(r#"{"at":0,"sql":"x","duration_ms":1,"error":null}"#).unwrap();
        assert!(e.error.is_none());
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, needle) in [
            ("", "empty"),
            ("{not json", "not a valid event"),
            (r#"{"sql":"x","duration_ms":1}"#, "missing `at`"),
            (
                r#"{"at":"yesterday","sql":"x","duration_ms":1}"#,
                "RFC 3339",
            ),
            (r#"{"at":0,"duration_ms":1}"#, "`sql` or `fingerprint`"),
            (r#"{"at":0,"sql":"x"}"#, "missing `duration_ms`"),
            (r#"{"at":0,"sql":"x","duration_ms":-1}"#, "≥ 0"),
            (
                r#"{"at":0,"sql":"x","duration_ms":1,"ok":true,"error":"e"}"#,
                "`ok` is true",
            ),
            (
                r#"{"at":0,"sql":"x","duration_ms":1,"rows_read":-3}"#,
                "not a valid event",
            ),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }

    #[test]
    fn events_round_trip_through_serde() {
        let e = QueryEvent::for_sql("production", "SELECT 1", 0.5);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<QueryEvent>(&json).unwrap(), e);
    }
}
