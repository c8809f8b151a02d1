//! Copies of local databases: the online-backup copy into a temporary file renamed into place,
//! clones for previews, recovery points (snapshots) and restores from them, deleting a
//! snapshot, and the room and writability checks made before anything is written. Never
//! copies a file byte for byte: a database in use is copied through SQLite's backup API.
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::local_errors::{io_error, io_obstacle, shown_db};
use super::{
    BUSY_TIMEOUT, Backend, BackendError, DatabaseRef, LocalBackend, Result, SnapshotRef, file_size,
    open_path, sql,
};
use crate::backend::Obstacle;
use crate::backend::space::{self, human as human_bytes};

impl LocalBackend {
    /// Copies a database with the online backup API into `to` (via a temporary file renamed into
    /// place). `durable` fsyncs the copy first: recovery points need it, previews do not.
    fn copy(&self, from: &Path, to: &Path, durable: bool) -> Result<u64> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let tmp = to.with_extension("sqlite.tmp");
        let _ = std::fs::remove_file(&tmp);
        let copied = copy_into(from, &tmp, durable)
            .and_then(|()| std::fs::rename(&tmp, to).map_err(|e| io_error(to, e)));
        if copied.is_err() {
            // A full disk or a read-only folder must not leave a half copy behind.
            let _ = std::fs::remove_file(&tmp);
        }
        copied?;
        Ok(file_size(to))
    }

    /// Refuses when `folder` lacks `needed` bytes for `what` (see [`space::shortfall`]).
    pub(super) fn ensure_room(&self, folder: &Path, needed: u64, what: &str) -> Result<()> {
        match space::shortfall(folder, needed, what) {
            Some(sentence) => Err(BackendError::Environment {
                obstacle: Obstacle::NoSpace,
                sentence,
            }),
            None => Ok(()),
        }
    }

    /// `Backend::clone_database`: a consistent copy of `from` named `name`.
    pub(super) fn clone_file(&self, from: &DatabaseRef, name: &str) -> Result<DatabaseRef> {
        let src = self.path(from)?;
        if !src.is_file() {
            return Err(BackendError::NotFound(from.id.clone()));
        }
        let to = DatabaseRef::new(name);
        let dst = self.path(&to)?;
        if dst.exists() {
            return Err(BackendError::Exists(name.to_string()));
        }
        let size = source_bytes(&src);
        self.ensure_room(
            &self.db_dir,
            space::copy_needs(size),
            &format!("the copy of {} ({}) for {name}", from.id, human_bytes(size)),
        )?;
        self.copy(&src, &dst, false)?;
        Ok(to)
    }

    /// `Backend::preflight_write`: the files are writable and the disks have room for a
    /// recovery point and the apply.
    pub(super) fn preflight_files(&self, db: &DatabaseRef) -> Result<()> {
        let path = self.path(db)?;
        if !path.is_file() {
            return Ok(());
        }
        let read_only = |sentence: String| BackendError::Environment {
            obstacle: Obstacle::ReadOnly,
            sentence,
        };
        if let Some(s) = space::unwritable_sentence(&shown_db(&path), &path) {
            return Err(read_only(s));
        }
        if self.snapshot_dir.is_dir()
            && let Some(why) = space::not_writable(&self.snapshot_dir, true)
        {
            return Err(read_only(format!(
                "the recovery-point folder {} {why}, so no recovery point of {} can be taken",
                self.snapshot_dir.display(),
                db.id
            )));
        }
        // A recovery point (a copy) and then the apply's journal and growth.
        let size = source_bytes(&path);
        let what = format!(
            "a recovery point of {} ({}) and the apply",
            db.id,
            human_bytes(size)
        );
        if space::mount_point(&self.snapshot_dir) == space::mount_point(&self.db_dir) {
            let needed = space::copy_needs(size).saturating_add(size / 10);
            self.ensure_room(&self.db_dir, needed, &what)
        } else {
            self.ensure_room(&self.snapshot_dir, space::copy_needs(size), &what)?;
            self.ensure_room(&self.db_dir, space::apply_needs(size), &what)
        }
    }

    /// `Backend::snapshot`: a durable copy under the snapshot folder.
    pub(super) fn snapshot_file(&self, db: &DatabaseRef, label: &str) -> Result<SnapshotRef> {
        let src = self.path(db)?;
        if !src.is_file() {
            return Ok(SnapshotRef {
                location: None,
                size_bytes: 0,
            });
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
        let location = format!("{}-{label}-{stamp}.sqlite", db.id);
        let path = self.snapshot_path(&location)?;
        let size = source_bytes(&src);
        self.ensure_room(
            &self.snapshot_dir,
            space::copy_needs(size),
            &format!("a recovery point of {} ({})", db.id, human_bytes(size)),
        )?;
        let size_bytes = self.copy(&src, &path, true)?;
        Ok(SnapshotRef {
            location: Some(location),
            size_bytes,
        })
    }

    /// `Backend::restore`: the recovery point backed up into the live file.
    pub(super) fn restore_file(&self, db: &DatabaseRef, snapshot: &SnapshotRef) -> Result<()> {
        let Some(location) = &snapshot.location else {
            return self.delete_database(db);
        };
        let snap = self.snapshot_path(location)?;
        if !snap.is_file() {
            return Err(BackendError::NotFound(format!("snapshot {location}")));
        }
        let dst_path = self.path(db)?;
        if !dst_path.is_file() {
            self.copy(&snap, &dst_path, true)?;
            return Ok(());
        }
        let src = open_path(
            &snap,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut dst = self.open(db)?;
        // Backing up INTO the live file is one write transaction: readers see before or after.
        backup_all(&src, &mut dst, &snap)
    }

    /// `Backend::delete_snapshot`.
    pub(super) fn delete_snapshot_file(&self, snapshot: &SnapshotRef) -> Result<()> {
        if let Some(location) = &snapshot.location {
            let path = self.snapshot_path(location)?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(BackendError::Io {
                        what: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Fills `tmp` with a consistent copy of the database at `from`.
fn copy_into(from: &Path, tmp: &Path, durable: bool) -> Result<()> {
    // One call copies the whole file, so the stage shows its size and time, then the end.
    let bytes = source_bytes(from);
    let mut progress = crate::progress::stage("copy", Some(bytes), crate::progress::Unit::Bytes);
    // Opened read-write so that SQLite rolls back a hot journal a crashed writer left.
    let src = open_path(
        from,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mode: String = src
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sql(from))?;
    if mode.eq_ignore_ascii_case("wal") {
        // WAL: committed pages may live in the -wal file; only the backup API sees them.
        copy_with_backup_api(&src, from, tmp)?;
    } else {
        // Rollback journal: while we hold a read transaction (SHARED lock) no writer can
        // change the database file, so the file itself is a consistent copy — the same
        // guarantee the backup API gives, at the speed of an in-kernel file copy.
        src.execute_batch("BEGIN")
            .and_then(|()| src.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
            .map_err(sql(from))?;
        let copied = std::fs::copy(from, tmp);
        let _ = src.execute_batch("COMMIT");
        if let Err(e) = copied {
            let _ = std::fs::remove_file(tmp);
            if io_obstacle(&e).is_some() {
                // A full disk or a read-only folder stops the backup API the same way.
                return Err(io_error(tmp, e));
            }
            copy_with_backup_api(&src, from, tmp)?;
        }
    }
    if durable {
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(tmp, e))?;
    }
    progress.set(bytes);
    Ok(())
}

/// A fresh database at `tmp` filled from `src` with SQLite's online backup API.
fn copy_with_backup_api(src: &Connection, from: &Path, tmp: &Path) -> Result<()> {
    let mut dst = open_path(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The copy is private until renamed into place: no journal, no fsync per page.
    dst.pragma_update(None, "journal_mode", "OFF")
        .map_err(sql(tmp))?;
    dst.pragma_update(None, "synchronous", "OFF")
        .map_err(sql(tmp))?;
    backup_all(src, &mut dst, from)?;
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql(tmp))?;
    Ok(())
}

/// Copies every page from `src` into `dst` with the online backup API, waiting out busy
/// writers instead of failing.
fn backup_all(src: &Connection, dst: &mut Connection, shown: &Path) -> Result<()> {
    let backup = Backup::new(src, dst).map_err(sql(shown))?;
    let started = Instant::now();
    loop {
        match backup.step(-1).map_err(sql(shown))? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if started.elapsed() > BUSY_TIMEOUT {
                    return Err(BackendError::Locked {
                        db: shown.display().to_string(),
                        seconds: BUSY_TIMEOUT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
    }
}

/// Bytes of a database with its `-wal` (what a copy of it holds at most).
pub(super) fn source_bytes(path: &Path) -> u64 {
    file_size(path).saturating_add(file_size(&path.with_extension("sqlite-wal")))
}
