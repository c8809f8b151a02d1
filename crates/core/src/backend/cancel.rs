//! Cancelling long local reads from another thread. A read that can run for seconds on a big
//! database (the loss comparison a restore shows first) registers its connection's
//! interrupt handle for as long as it runs; [`interrupt_reads`] interrupts every registered
//! one (SQLite's `sqlite3_interrupt`), so the read fails at once with "interrupted" and a
//! face (the console's Esc) can drop work nobody waits for any more.
//!
//! Reads only: nothing that writes registers here, so an interrupt never stops a write.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, InterruptHandle};

static NEXT: AtomicU64 = AtomicU64::new(1);
static READS: Mutex<Vec<(u64, InterruptHandle)>> = Mutex::new(Vec::new());

/// Keeps a read registered; dropping it unregisters the read.
pub struct CancellableRead(u64);

/// Registers `conn`'s read as cancellable until the guard is dropped.
pub fn cancellable(conn: &Connection) -> CancellableRead {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut reads) = READS.lock() {
        reads.push((id, conn.get_interrupt_handle()));
    }
    CancellableRead(id)
}

impl Drop for CancellableRead {
    fn drop(&mut self) {
        if let Ok(mut reads) = READS.lock() {
            reads.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Interrupts every cancellable read running now; returns how many there were.
pub fn interrupt_reads() -> usize {
    let Ok(reads) = READS.lock() else {
        return 0;
    };
    for (_, handle) in reads.iter() {
        handle.interrupt();
    }
    reads.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_read_fails_and_unregisters() {
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let conn = Connection::open_in_memory().expect("db");
            let guard = cancellable(&conn);
            let _ = tx.send(guard.0);
            // Endless unless interrupted.
            let r: rusqlite::Result<i64> = conn.query_row(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
                [],
                |row| row.get(0),
            );
            r.is_err()
        });
        let id = rx.recv().expect("registered");
        for _ in 0..1_000 {
            if reader.is_finished() {
                break;
            }
            interrupt_reads();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(reader.join().expect("reader"), "the interrupted read fails");
        let still = READS.lock().map(|r| r.iter().any(|(i, _)| *i == id));
        assert_eq!(still.ok(), Some(false), "the guard unregistered the read");
    }
}
