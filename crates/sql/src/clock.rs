//! The one clock every crate reads: UTC now, shifted by the demo's offset or frozen by
//! snapshot tests; the store's timestamp format and its parser. No I/O.
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Shifts this process's clock (the demo builds a month of history in seconds). Zero in
/// normal operation.
pub fn set_clock_offset(offset: chrono::Duration) {
    CLOCK_OFFSET_MS.store(
        offset.num_milliseconds(),
        std::sync::atomic::Ordering::SeqCst,
    );
}

static CLOCK_FROZEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The frozen instant and how many times it was read.
static FROZEN_AT: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, i64)>> =
    std::sync::Mutex::new(None);

/// Stops this process's clock at `at` (tests that snapshot what the console draws): every
/// read returns `at` plus one microsecond per earlier read, so successive stamps stay
/// ordered while nothing depends on how long the machine took.
pub fn freeze_clock(at: chrono::DateTime<chrono::Utc>) {
    if let Ok(mut frozen) = FROZEN_AT.lock() {
        *frozen = Some((at, 0));
        CLOCK_FROZEN.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The current UTC time (plus the demo's clock offset, normally zero; or the frozen test
/// clock).
pub fn now_utc() -> chrono::DateTime<chrono::Utc> {
    if CLOCK_FROZEN.load(std::sync::atomic::Ordering::Relaxed)
        && let Ok(mut frozen) = FROZEN_AT.lock()
        && let Some((at, reads)) = frozen.as_mut()
    {
        *reads += 1;
        return *at + chrono::Duration::microseconds(*reads);
    }
    chrono::Utc::now()
        + chrono::Duration::milliseconds(CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::SeqCst))
}

/// The current UTC time in the store's format (RFC 3339, milliseconds, `Z`).
pub fn now() -> String {
    now_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses a stored timestamp.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}
